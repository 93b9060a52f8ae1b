"""The sweep's loop (I/O): every `SWEEP_INTERVAL_SECONDS` (with a little jitter, so
processes started together do not look together), take or renew the leases of the
accounts nobody else is sweeping, and for each of them find the stuck sessions
(`selection`), claim each one for this recheck interval, ask Twilio about its open
legs (`calls_api`), and apply what Twilio says through the webhooks' own ingest path
(`answers`): the same resolution, commit and dead-letter replay as a callback. A
session that cannot be asked about is marked stale instead.

What it did is counted in this process's metrics (`TALLY.sweep`) and, per account,
in Redis (`keys.sweep_counts`), which `GET /sessions/sweep` and the console read."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import msgspec

from app.config import Settings
from app.domain.dtos import SessionInfo
from app.observability.tally import TALLY
from app.redis_io import REDIS_DOWN, Command
from app.redis_io.replies import raise_errors, text
from app.storage import keys
from app.storage.session_store import SessionStore, StoreUnavailable
from app.sweep import answers
from app.sweep.calls_api import ApiFailed, CallsApi
from app.sweep.counts import SweepCounts, from_hash
from app.sweep.lease import Leases
from app.sweep.selection import Ask, Stuck, Thresholds, candidates, stuck
from app.twilio.callbacks import CallStatus
from app.twilio.deadletters import Letter
from app.twilio.ingest import Ingest

log = logging.getLogger("app.sweep")
_info = msgspec.json.Decoder(SessionInfo)
Clock = Callable[[], datetime]


def thresholds(settings: Settings) -> Thresholds:
    return Thresholds(ringing_after=timedelta(seconds=settings.sweep_ringing_after_seconds),
                      in_progress_max=timedelta(seconds=settings.sweep_in_progress_max_seconds))


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Sweeper:
    def __init__(self, store: SessionStore, ingest: Ingest, api: CallsApi, settings: Settings,
                 clock: Clock = _utc_now, leases: Leases | None = None) -> None:
        self.store = store
        self.ingest = ingest
        self.api = api
        self.interval = settings.sweep_interval_seconds
        self.recheck = max(1, round(settings.sweep_recheck_seconds))
        self.thresholds = thresholds(settings)
        self.clock = clock
        self.leases = leases or Leases(store.redis, settings.sweep_lease_seconds)
        self._task: asyncio.Task[None] | None = None
        self._held: list[str] = []

    # -- the loop ------------------------------------------------------------------------
    async def start(self) -> None:
        if self.interval > 0 and self._task is None:
            self._task = asyncio.create_task(self._loop(), name="sweep")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._held:  # let another process take over at once rather than after the expiry
            with contextlib.suppress(StoreUnavailable, *REDIS_DOWN):
                await self.leases.release(self._held)
            self._held = []

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval * random.uniform(0.8, 1.2))
            try:
                await self.run_pass()
            except (StoreUnavailable, *REDIS_DOWN) as exc:
                TALLY.sweep["errors"] += 1
                log.warning("sweep: Redis unavailable, trying again next pass: %s", exc)
            except Exception:  # noqa: BLE001 - the loop must outlive any one pass
                TALLY.sweep["errors"] += 1
                log.exception("sweep pass failed")

    # -- one pass --------------------------------------------------------------------------
    async def run_pass(self) -> list[str]:
        """Sweep every account whose lease this process holds (or takes now); those accounts."""
        [members] = raise_errors(await self.store.redis.run([("SMEMBERS", keys.sweep_accounts())]))
        self._held = await self.leases.take(sorted(text(m) for m in members))
        TALLY.sweep["passes"] += 1
        for account_id in self._held:
            try:
                await self.sweep_account(account_id)
            except (StoreUnavailable, *REDIS_DOWN):
                raise  # every account needs Redis: the loop says so and tries next pass
            except Exception:  # noqa: BLE001 - one account's trouble must not stop the others' sweep
                TALLY.sweep["errors"] += 1
                log.exception("sweep of account %s failed", account_id)
        return list(self._held)

    async def sweep_account(self, account_id: str) -> Counter[str]:
        """Ask about the account's stuck sessions that nobody asked about within the
        recheck interval; what was done, counted."""
        now = self.clock()
        view = await self.store.view(account_id, None, whole_account=True)
        quiet = candidates((_info.decode(raw) for raw in view.sessions), now, self.thresholds)
        records = await asyncio.gather(*(self.store.get(account_id, sid) for sid in quiet))
        found = [s for sid, record in zip(quiet, records)
                 if record is not None and (s := stuck(sid, record, now, self.thresholds)) is not None]
        counts: Counter[str] = Counter()
        for item in await self._claim(account_id, found):
            counts.update(await self._resolve(account_id, item, now))
        await self._record(account_id, counts, now)
        return counts

    async def _claim(self, account_id: str, found: list[Stuck]) -> list[Stuck]:
        """The stuck sessions this pass may ask about: nobody (no process) asked within the
        recheck interval. One SET NX each, in one batch: a takeover never asks twice."""
        if not found:
            return []
        replies = raise_errors(await self.store.redis.run(
            [("SET", keys.sweep_asked(account_id, s.session_id), "1", "EX", self.recheck, "NX") for s in found]))
        return [s for s, won in zip(found, replies) if won]

    async def _resolve(self, account_id: str, item: Stuck, now: datetime) -> Counter[str]:
        counts: Counter[str] = Counter(asked=1)
        askable = [a for a in item.asks if self.api.can_ask(a.account_sid)]
        if not askable:
            marked = await self._mark_stale(account_id, item, self._why_not(item.asks), now)
            return counts + Counter(stale=int(marked))
        failures: list[str] = []
        for ask in askable:
            outcome = await self._ask(account_id, item.session_id, ask, now)
            counts[outcome] += 1
            if outcome == "errors":
                failures.append(ask.call_sid)
        if len(failures) == len(askable):  # nothing could be checked: say so on the session
            reason = f"Twilio's API did not answer about {', '.join(failures)}"
            counts["stale"] += int(await self._mark_stale(account_id, item, reason, now))
        return counts

    async def _ask(self, account_id: str, session_id: str, ask: Ask, now: datetime) -> str:
        """Fetch one call and apply the answer; which counter it goes to."""
        assert ask.account_sid is not None
        TALLY.sweep["fetches"] += 1
        try:
            answer = await self.api.fetch(ask.account_sid, ask.call_sid)
        except ApiFailed as exc:
            log.warning("sweep: asking Twilio about %s (session %s) failed: %s", ask.call_sid, session_id, exc)
            return "errors"
        fact = answers.fact_for(answer, ask.status, now)
        if fact is None:
            return "confirmed"  # Twilio says what the session already knew
        cb = answers.in_session(fact, account_id, session_id)
        outcome = await self.ingest.handle(_letter(account_id, session_id, cb, now), cb)
        if outcome != "applied":
            return "confirmed"
        log.info("sweep: session %s: call %s is %s, per Twilio", session_id, ask.call_sid, fact.call_status)
        return "lost" if isinstance(answer, answers.Gone) else f"resolved:{fact.call_status}"

    def _why_not(self, asks: tuple[Ask, ...]) -> str:
        if not asks:
            return "no open Twilio call to ask about"
        if not self.api.base_url:
            return "no Twilio REST API configured (TWILIO_API_URL)"
        sids = sorted({a.account_sid for a in asks if a.account_sid})
        return f"no Twilio credentials for {', '.join(sids)}" if sids else "no AccountSid known for its calls"

    async def _mark_stale(self, account_id: str, item: Stuck, reason: str, now: datetime) -> bool:
        """Whether the mark was filed (not when the session is already marked)."""
        entry = answers.stale_entry(item.heard_at, reason, now)
        result = await self.store.commit(account_id, item.session_id, lambda r: answers.mark_stale(r, entry))
        if result.status != "applied":
            return False
        log.info("sweep: session %s marked stale: %s", item.session_id, reason)
        return True

    async def _record(self, account_id: str, counts: Counter[str], now: datetime) -> None:
        for name, n in counts.items():
            TALLY.sweep[name] += n
        key = keys.sweep_counts(account_id)
        commands: list[Command] = [("HINCRBY", key, name, n) for name, n in sorted(counts.items())]
        commands.append(("HSET", key, "lastPassAt", answers.iso(now)))
        raise_errors(await self.store.redis.run(commands))


def _letter(account_id: str, session_id: str, cb: CallStatus, now: datetime) -> Letter:
    """The fact as a callback to `/twilio/status` with its session in the URL: what the
    webhooks' ingest path takes (and would keep, were it ever dead-lettered)."""
    query = urlencode({"accountId": account_id, "sessionId": session_id})
    return Letter(kind="status", query=query, form=answers.form_of(cb), received_at=answers.iso(now),
                  sids=[cb.call_sid])


async def account_counts(store: SessionStore, account_id: str, interval_seconds: float) -> SweepCounts:
    """What the sweep did for an account, as kept in Redis (every process's sweeps)."""
    try:
        [raw] = raise_errors(await store.redis.run([("HGETALL", keys.sweep_counts(account_id))]))
    except REDIS_DOWN as exc:
        raise StoreUnavailable(str(exc)) from exc
    pairs = dict(zip(raw[0::2], raw[1::2])) if isinstance(raw, list) else raw
    return from_hash(account_id, {text(k): text(v) for k, v in pairs.items()}, interval_seconds)
