"""Applying a verified, parsed Twilio callback (I/O): find its session, commit
the pure transition through the store's one atomic step (which also claims the
session for its account and, in the same round trip, links the SIDs the
callback names that are not linked yet), and replay any dead letters those new
links make resolvable.

In the common case (the URL names the account and session) that is one round
trip once this process has committed to the session (the store keeps the
record it wrote: `SessionStore.commit` with `keep`), else two: one read
(idempotency marker, record, owner, claimed in the same step for a session's
first callback, links), one commit.

A callback with no session is kept as a dead letter and answered like any
other. Races with the callback that would resolve it are closed from both
sides: the linker looks for letters after linking (in the commit's round
trip, so it costs nothing when there are none), and the dead-letterer looks for links
after filing the letter, so one of them always sees the other.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Literal

import msgspec

from app.storage import keys
from app.config import Settings
from app.redis_io import REDIS_DOWN
from app.observability import hooks
from app.storage.session_store import Link, OwnershipConflict, SessionStore, StoreUnavailable
from app.twilio.callbacks import Callback, CallbackInvalid, idempotency_key, parse
from app.twilio.deadletters import DeadLetters, Letter
from app.twilio.links import Links, Target, Unresolved, link_key, sids
from app.twilio.transitions import transition

log = logging.getLogger("app.twilio")

Outcome = Literal["applied", "duplicate", "unchanged", "dead-lettered"]


def letter_for(kind: str, query: str, form: list[tuple[str, str]], cb: Callback) -> Letter:
    return Letter(kind=kind, query=query, form=form, received_at=_now(), sids=[sid for _, sid in sids(cb)])


class Ingest:
    def __init__(self, store: SessionStore, settings: Settings) -> None:
        ttl = max(settings.ended_ttl_seconds, settings.dedupe_ttl_seconds)
        self.store = store
        self.links = Links(store.redis, ttl)
        self.dead = DeadLetters(store.redis, settings.dead_letter_max_len, ttl)

    async def handle(self, letter: Letter, cb: Callback) -> Outcome:
        """Apply `cb` (received as `letter`); StoreUnavailable if Redis is down."""
        try:
            outcome, linked = await self._apply(letter, cb)
            if outcome == "dead-lettered":
                linked = [sid for _, sid in sids(cb)]  # filed: now look for links that beat us
            await self._replay(linked)
            return outcome
        except REDIS_DOWN as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def _apply(self, letter: Letter, cb: Callback) -> tuple[Outcome, list[str]]:
        target = await self.links.resolve(cb)
        if isinstance(target, Unresolved):
            await self._dead_letter(letter, target.reason)
            return "dead-lettered", []
        try:
            return await self._commit(letter, cb, target)
        except OwnershipConflict as exc:
            await self._dead_letter(letter, str(exc))
            return "dead-lettered", []

    async def _commit(self, letter: Letter, cb: Callback, target: Target) -> tuple[Outcome, list[str]]:
        """Commit `cb` into `target`; the SIDs it newly linked that have dead
        letters waiting on them."""
        pairs = sids(cb)
        links = [Link(link_key(kind, sid), keys.dead_letter_index(sid)) for kind, sid in pairs]
        key = idempotency_key(letter.kind, letter.query, letter.form)
        result = await self.store.commit(target.account_id, target.session_id, transition(cb), key,
                                         claim=True, links=links, link_ttl=self.links.ttl, keep=True)
        return result.status, [pairs[i][1] for i in result.woken]

    async def _dead_letter(self, letter: Letter, reason: str) -> None:
        await self.dead.add(msgspec.structs.replace(letter, reason=reason))
        hooks.outcome("dead-lettered")
        log.warning("twilio %s callback dead-lettered (%s): %s", letter.kind, ", ".join(letter.sids), reason)

    async def _replay(self, linked: list[str]) -> None:
        """Apply the dead letters waiting on newly linked SIDs, and on whatever
        SIDs applying them links in turn."""
        pending, seen = list(linked), set()
        while pending:
            sid = pending.pop()
            if sid in seen:
                continue
            seen.add(sid)
            for raw, waiting in await self.dead.naming(sid):
                try:
                    cb = parse(waiting.kind, waiting.query, waiting.form)
                except CallbackInvalid:  # cannot happen for a letter we filed; never retry it
                    await self.dead.remove(raw, waiting)
                    continue
                target = await self.links.resolve(cb)
                if isinstance(target, Unresolved):
                    continue
                try:
                    outcome, more = await self._commit(waiting, cb, target)
                except OwnershipConflict:
                    continue
                await self.dead.remove(raw, waiting)
                log.info("twilio dead letter (%s) replayed into %s: %s", sid, target.session_id, outcome)
                pending.extend(more)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
