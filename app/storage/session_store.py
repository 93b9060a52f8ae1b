"""The session store: Redis (or the embedded in-process Redis) behind a few verbs.

Writes are read -> pure transition -> one atomic Lua commit that fails on a
concurrent change (optimistic revision check) and is then retried with the
fresh state, which the failed commit sends back (no second read). A commit that
asks for it (`keep`: the Twilio webhooks) is remembered (`_Known`), and the
session's next such commit in this process starts from that record with no
read at all: one round trip, the script's revision and epoch checks deciding.
Reads of a view are one Lua call returning the view and the cursor it is
current at."""

from __future__ import annotations

import asyncio
import time
import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from os import urandom
from typing import Any, Literal

import msgspec
import redis.asyncio as aioredis

from app.storage import keys, scripts
from app.storage.scripts import Script
from app.domain.changes import Change, ChangeEntry, LogRead, entry_decoder, entry_encoder, make_entry
from app.config import Settings
from app.domain.dtos import SessionInfo
from app.domain.records import SessionRecord
from app.redis_io import REDIS_DOWN, Command, Redis, wrap
from app.redis_io.replies import raise_errors, text
from app.domain.visibility import Visibility, is_active

Transition = Callable[[SessionRecord | None], SessionRecord | None]
"""Pure: the record after an input, or None when the input changes nothing."""

_info_decoder = msgspec.json.Decoder(SessionInfo)
_json = msgspec.json.Encoder()
_MAX_ATTEMPTS = 64
KNOWN_MAX = 4096
"""Sessions whose last kept commit a store remembers (least recently committed dropped first)."""
KNOWN_SECONDS = 30.0
"""How long a kept commit vouches for the keys outside the account's slot (owner, links) that
Redis confirmed then: past it the owner is claimed and the links are made again, as a read would,
so a key lost with a failed-over node is back within this long (never past its own expiry)."""
_MARGIN = 1.0  # seconds taken off every expiry learned from Redis (its clock and ours)


class StoreUnavailable(Exception):
    """Redis could not be reached (or, with REDIS_WAIT_REPLICAS, did not confirm
    the write on enough replicas in time): the caller answers 503, and a retry
    of the same input is safe (every commit is idempotent)."""


class OwnershipConflict(Exception):
    def __init__(self, session_id: str, owner: str) -> None:
        super().__init__(f"Session {session_id!r} belongs to another account")
        self.session_id = session_id
        self.owner = owner


@dataclass(frozen=True, slots=True)
class Link:
    """A key outside the account (a Twilio link) that a commit sets to
    `"<accountId> <sessionId>"` unless it already exists (first link wins), and
    a key whose existence it reports when it made the link (dead letters that
    the link may now resolve)."""

    key: str
    watch: str


@dataclass(frozen=True, slots=True)
class CommitResult:
    status: Literal["applied", "duplicate", "unchanged"]
    change: Change | None = None
    record: SessionRecord | None = None
    woken: tuple[int, ...] = ()  # indices of the links this commit made whose watch key exists


@dataclass(frozen=True, slots=True)
class _Read:
    seen: bool
    record: SessionRecord | None = None
    owner: str | None = None
    owner_ms: int = -2  # the owner key's PTTL, read after its claim (-2: not read)
    link_ms: tuple[int, ...] = ()  # each link's PTTL: -2 it does not exist, -1 no expiry


@dataclass(frozen=True, slots=True)
class _Conflict:
    """commit.lua did not commit: another commit came first (`record`: the session as it
    left it), or with `another_history` the kept record's epoch is not the account's now."""

    record: SessionRecord | None
    another_history: bool = False


@dataclass(slots=True)
class _Known:
    """What a store knows of a session since its last kept commit (monotonic seconds): the
    record it wrote and the epoch it wrote it under (a commit from it is checked against both
    by commit.lua, so a record another process changed since is never written over), until
    when the owner key provably names this account (so no claim is needed), and until when
    each link key provably exists (so none is made again)."""

    record: SessionRecord
    epoch: str
    owner_until: float
    links: dict[str, float]


def _until(sent: float, pttl: int) -> float:
    """Until when (monotonic, at the latest) a key Redis answered `PTTL` for, in a batch
    sent at `sent`, exists and is vouched for (`KNOWN_SECONDS`)."""
    if pttl == -2:
        return 0.0
    horizon = sent + KNOWN_SECONDS
    return horizon if pttl == -1 else min(horizon, sent + pttl / 1000 - _MARGIN)


@dataclass(frozen=True, slots=True)
class View:
    epoch: str
    cursor: int
    sessions: list[bytes]  # SessionInfo wire JSON, one per session


def new_epoch() -> str:
    """A random id for a new incarnation of an account's log (64 bits, hex);
    every commit proposes one (used only when the account has none)."""
    return urandom(8).hex()


class SessionStore:
    def __init__(self, redis: Redis | aioredis.Redis, settings: Settings) -> None:
        self.redis: Redis = wrap(redis)
        self._settings = settings
        self._commit_lua = Script("commit.lua", generation=True)
        self._view_lua = Script("view.lua", generation=True)
        self._epoch_lua = Script("epoch.lua", generation=True)
        self._bodies = {s.sha: s.body for s in (self._commit_lua, self._view_lua, self._epoch_lua)}
        self._known: dict[tuple[str, str], _Known] = {}  # oldest first (see `_keep`)

    # -- reads ------------------------------------------------------------------
    async def health(self) -> dict[str, Any]:
        """Whether every slot the accounts need is served (and by what)."""
        return await self.redis.health()

    async def get(self, account_id: str, session_id: str) -> SessionRecord | None:
        [reply] = await self._run([("HMGET", keys.session(account_id, session_id), "info", "meta", "rev")])
        return _record(*reply)

    async def _read_for_commit(
        self, account_id: str, session_id: str, marker: str | None, claim: bool, links: Sequence[Link],
        keep: bool = False,
    ) -> _Read:
        """Whether the idempotency key was seen, the record, and (when asked) the
        owner, claimed in the same step if nobody owned it (and with `keep` its
        expiry), and each link's expiry (missing or not): one round trip, one batch
        of single-slot commands (the owner and link keys are not the account's)."""
        commands: list[Command] = []
        if marker:
            commands.append(("EXISTS", marker))
        owner = keys.owner(session_id)
        commands.append(("HMGET", keys.session(account_id, session_id), "info", "meta", "rev"))
        if claim:  # claim it now, atomically: SET NX GET answers the owner from before
            commands.append(("SET", owner, account_id, "EX", self.owner_ttl, "NX", "GET"))
            if keep:
                commands.append(("PTTL", owner))
        commands.extend(("PTTL", link.key) for link in links)
        replies = raise_errors(await self._run(commands))
        if marker and replies[0]:
            return _Read(seen=True)
        rest = replies[1:] if marker else replies
        timed = claim and keep
        found = rest[1 + int(claim) + int(timed):]  # after HMGET, SET NX GET and PTTL of the owner
        return _Read(
            seen=False, record=_record(*rest[0]),
            owner=text(rest[1]) if claim and rest[1] is not None else None,
            owner_ms=int(rest[2]) if timed else -2,
            link_ms=tuple(int(ms) for ms in found),
        )

    async def view(self, account_id: str, endpoint_id: str | None, whole_account: bool) -> View:
        """The active sessions a viewer sees, as stored wire JSON, and their cursor."""
        if whole_account:
            index = keys.active(account_id)
        elif endpoint_id:
            index = keys.endpoint(account_id, endpoint_id)
        else:
            epoch, cursor = await self.position(account_id)
            return View(epoch, cursor, [])
        call = self._view_lua.call(
            [index, keys.seq(account_id), keys.epoch(account_id), keys.epoch_generation(account_id)],
            [keys.session(account_id, ""), new_epoch()],
        )
        [reply] = raise_errors(await self._run([call]))
        return View(epoch=text(reply[0]), cursor=int(reply[1]), sessions=list(reply[2:]))

    def _position_call(self, account_id: str) -> Command:
        return self._epoch_lua.call(
            [keys.epoch(account_id), keys.epoch_generation(account_id), keys.seq(account_id)], [new_epoch()])

    async def position(self, account_id: str) -> tuple[str, int]:
        """The account's (epoch, cursor), starting its epoch if it has none."""
        [reply] = raise_errors(await self._run([self._position_call(account_id)]))
        return text(reply[0]), int(reply[1])

    async def cursor(self, account_id: str) -> int:
        [seq] = raise_errors(await self._run([("GET", keys.seq(account_id))]))
        return int(seq or 0)

    async def epoch(self, account_id: str) -> str:
        return (await self.position(account_id))[0]

    async def changes_since(self, account_id: str, cursor: int, limit: int = 10_000) -> list[Change] | None:
        """Every change after `cursor`, in order; None when the log no longer
        reaches back that far (the caller must send a fresh snapshot)."""
        return (await self.log_since(account_id, cursor, limit)).changes

    async def log_since(self, account_id: str, cursor: int, limit: int = 10_000) -> LogRead:
        """The account's position and every change after `cursor` (None: the log no longer
        reaches back that far), in one round trip: what a resume needs."""
        # One batch, in this order on the account's node: the head first (every
        # change up to it is already in the log: INCR and XADD are one script);
        # read after the log, a commit in between would look like a trim.
        position, rows = raise_errors(await self._run([
            self._position_call(account_id),
            ("XRANGE", keys.changes(account_id), f"({cursor}-0", "+", "COUNT", limit + 1),
        ]))
        epoch, head = text(position[0]), int(position[1])
        if len(rows) > limit:
            return LogRead(epoch, head, None)
        changes = [_change(account_id, epoch, eid, fields) for eid, fields in rows]
        first_expected = cursor + 1
        if head > cursor and (not changes or changes[0].cursor != first_expected):
            return LogRead(epoch, head, None)
        return LogRead(epoch, head, changes)

    async def owners(self, session_ids: list[str]) -> dict[str, str | None]:
        """Each session's account (one GET each: owner keys are in different slots)."""
        values = raise_errors(await self._run([("GET", keys.owner(s)) for s in session_ids])) if session_ids else []
        return {sid: (text(v) if v is not None else None) for sid, v in zip(session_ids, values)}

    # -- writes -----------------------------------------------------------------
    @property
    def owner_ttl(self) -> int:
        return 4 * max(self._settings.ended_ttl_seconds, self._settings.dedupe_ttl_seconds)

    async def commit(
        self,
        account_id: str,
        session_id: str,
        transition: Transition,
        idempotency_key: str | None = None,
        *,
        claim: bool = False,
        links: Sequence[Link] = (),
        link_ttl: int | None = None,
        arrived_ms: int | None = None,
        keep: bool = False,
    ) -> CommitResult:
        """Apply `transition` to the session atomically, exactly once per key.

        With `claim`, the session is bound to the account first
        (OwnershipConflict, and nothing stored, if another account owns it);
        each of `links` that does not exist yet is made in the commit's round
        trip. That is two round trips (read, which also claims, then commit),
        a session's first commit included. commit.lua touches only the
        account's slot; the owner and link keys are written by single-key
        commands, so every multi-key step stays within one Redis Cluster slot.

        With REDIS_WAIT_REPLICAS = n > 0 the result is returned only once n
        replicas have the write (`WAIT` in the commit's batch; for a duplicate
        or unchanged input, after a probe write, so that it covers the first
        delivery's write too), else StoreUnavailable: the caller answers 503
        and the sender's retry is answered as a duplicate once confirmed.

        `arrived_ms` (Unix ms, default now): when the input arrived, kept in the change entry.

        With `keep` (and `claim`), the record this commit writes is remembered
        (`_Known`, at most `KNOWN_MAX` sessions), and the session's next kept commit
        in this process skips the read: the transition runs on that record, and the
        links not known to exist are made in the commit's batch: one round trip.
        commit.lua checks the idempotency key, the epoch (Redis did not lose data
        since) and the revision (nobody committed since); a commit another process
        made since comes back as a conflict carrying the current record, and the
        retry starts from it, again without a read. A transition that changes nothing
        on the remembered record takes the read, as without `keep` (the answer,
        unchanged or duplicate, is the read's). The transition must not change the
        record it is given (the Twilio ones do not; they build new values)."""
        arrived = int(time.time() * 1000) if arrived_ms is None else arrived_ms
        result = await self._commit(account_id, session_id, transition, idempotency_key, claim and keep, claim,
                                    links, link_ttl, arrived)
        if self._settings.redis_wait_replicas and result.status != "applied":
            await self._confirm(account_id, [("SET", keys.wait_probe(account_id), "1", "EX", 60)])
        return result

    async def _commit(
        self, account_id: str, session_id: str, transition: Transition, idempotency_key: str | None,
        keep: bool, claim: bool, links: Sequence[Link], link_ttl: int | None, arrived_ms: int,
    ) -> CommitResult:
        marker = keys.dedupe(account_id, idempotency_key) if idempotency_key else None
        ttl = link_ttl or max(self._settings.ended_ttl_seconds, self._settings.dedupe_ttl_seconds)
        woken: set[int] = set()  # links made by any attempt whose watch key existed
        # Any commit of the session makes what was kept of it stale; a kept one puts it back.
        known = self._known.pop((account_id, session_id), None)
        if not keep or (known is not None and known.owner_until <= time.monotonic()):
            known = None
        claimed = known is not None  # a kept commit vouches for the owner
        owner_until = known.owner_until if known else 0.0
        link_until: dict[str, float] = dict(known.links) if known else {}
        current = known.record if known else None
        epoch = known.epoch if known else ""  # not "": `current` is the kept record, not read
        have = known is not None  # `current` is what to commit from (kept, or sent back by a conflict)
        for _ in range(_MAX_ATTEMPTS):
            if not have:
                sent = time.monotonic()
                read = await self._read_for_commit(account_id, session_id, marker, claim and not claimed, links,
                                                   keep)
                if read.seen:
                    return CommitResult("duplicate")
                if read.owner is not None and read.owner != account_id:
                    raise OwnershipConflict(session_id, read.owner)
                if claim and not claimed:
                    owner_until = _until(sent, read.owner_ms)
                claimed = True
                link_until.update((link.key, _until(sent, ms)) for link, ms in zip(links, read.link_ms))
                current, epoch = read.record, ""
            have = False
            now = time.monotonic()
            missing = tuple(i for i, link in enumerate(links) if link_until.get(link.key, 0.0) <= now)
            proposed = _with_invariants(transition(current), account_id, session_id)
            if proposed is None or _same(current, proposed):
                if epoch:  # nothing to change on the kept record: the read answers (duplicate, unchanged...)
                    epoch = ""
                    continue
                commands = _link([links[i] for i in missing], account_id, session_id, ttl)
                if marker:
                    commands.append(("SET", marker, "1", "EX", self._settings.dedupe_ttl_seconds, "NX"))
                replies = raise_errors(await self._run(commands)) if commands else []
                woken |= _made(replies, missing)[1]
                return CommitResult("unchanged", record=current, woken=tuple(sorted(woken)))
            sent = time.monotonic()
            result, made, wakes = await self._try_commit(account_id, session_id, current, proposed, marker,
                                                         [links[i] for i in missing], missing, ttl, arrived_ms,
                                                         epoch)
            woken |= wakes
            link_until.update((links[i].key, sent + min(KNOWN_SECONDS, ttl - _MARGIN)) for i in made)
            if isinstance(result, CommitResult):
                if keep and result.change is not None and result.record is not None:
                    self._keep(account_id, session_id, _Known(result.record, result.change.epoch, owner_until,
                                                               link_until))
                return dataclasses.replace(result, woken=tuple(sorted(woken)))
            if result.another_history:  # Redis lost data since the kept commit: read, claim, link again
                claimed, link_until, epoch = False, {}, ""
            else:  # another commit came first: retry from the record it left, no read needed
                current, epoch, have = result.record, "", True
            await asyncio.sleep(0)
        raise StoreUnavailable(f"session {session_id!r} is changing too fast to commit")

    def _keep(self, account_id: str, session_id: str, known: _Known) -> None:
        """Remember a kept commit; an ended session is not kept (few callbacks follow its end)."""
        if known.record.info.ended:
            return
        self._known[(account_id, session_id)] = known
        if len(self._known) > KNOWN_MAX:
            del self._known[next(iter(self._known))]

    async def _try_commit(
        self, account_id: str, session_id: str, current: SessionRecord | None, proposed: SessionRecord,
        marker: str | None, links: list[Link], indices: tuple[int, ...], link_ttl: int, arrived_ms: int,
        epoch: str = "",
    ) -> tuple[CommitResult | _Conflict, set[int], set[int]]:
        """One run of commit.lua, with the missing links in the same batch: the result
        (or the conflict, with the record as it is now), which links it made, and which
        of those woke dead letters."""
        s = self._settings
        session = keys.session(account_id, session_id)
        rev = (current.rev if current else 0) + 1
        info = proposed.info
        entry = make_entry(current.info if current else None, info, rev, arrived_ms)
        before = _endpoints(entry.before)  # the entry's visibility: each session's endpoints collected once
        after = _endpoints(entry.after)
        adds = sorted(after - before)  # the indexes already hold the rest (see commit.lua)
        removes = sorted(before - after)
        script = self._commit_lua.call(
            [session, keys.active(account_id), keys.seq(account_id), keys.changes(account_id),
             keys.epoch(account_id), marker or session, keys.epoch_generation(account_id),
             *(keys.endpoint(account_id, e) for e in adds + removes)],
            [rev - 1, _json.encode(info), _json.encode(proposed.meta), int(is_active(info)),
             entry_encoder.encode(entry), new_epoch(), s.change_log_max_len, s.dedupe_ttl_seconds,
             s.ended_ttl_seconds, keys.live_channel(account_id), session_id, len(adds), int(marker is not None),
             int(current is not None and is_active(current.info)),
             "SPUBLISH" if self.redis.sharded else "PUBLISH",  # known by now: the read batch (or a kept one) ran
             epoch],
        )
        # The links first: a script a node has not cached is sent again with
        # everything after it (see `_run`), and SET NX must not be sent twice.
        linking = _link(links, account_id, session_id, link_ttl)
        # A new session: its account is one the sweep looks at (app/sweep/; SADD twice is harmless).
        indexing: list[Command] = [("SADD", keys.sweep_accounts(), account_id)] if current is None else []
        wait = self._wait_command()
        replies = await self._run([*linking, *indexing, script, *wait])
        made, wakes = _made(raise_errors(replies[:len(linking)]), indices)
        reply = replies[len(linking) + len(indexing)]
        acked = replies[-1] if wait else None
        if isinstance(reply, Exception):
            raise reply
        status = int(reply[0])
        if status == 0:
            return CommitResult("duplicate"), made, wakes
        if status == -2:
            return _Conflict(None, another_history=True), made, wakes
        if status == -1:
            return _Conflict(_record(reply[2], reply[3], reply[1])), made, wakes
        if wait:
            self._check_acked(acked)
        change = Change(account_id=account_id, epoch=text(reply[2]), cursor=int(reply[1]), entry=entry)
        record = SessionRecord(info=info, meta=proposed.meta, rev=int(reply[3]))
        return CommitResult("applied", change=change, record=record), made, wakes

    # -- replication (REDIS_WAIT_REPLICAS) -------------------------------------------
    def _wait_command(self) -> list[Command]:
        s = self._settings
        return [("WAIT", s.redis_wait_replicas, s.redis_wait_timeout_ms)] if s.redis_wait_replicas else []

    def _check_acked(self, acked: Any) -> None:
        if isinstance(acked, Exception) or int(acked) < self._settings.redis_wait_replicas:
            raise StoreUnavailable(
                f"the write reached {acked} of {self._settings.redis_wait_replicas} replicas in "
                f"{self._settings.redis_wait_timeout_ms} ms")

    async def _confirm(self, account_id: str, write: list[Command]) -> None:
        replies = await self._run([*write, *self._wait_command()])
        self._check_acked(replies[-1])

    # -- sending -------------------------------------------------------------------------
    async def _run(self, commands: list[Command]) -> list[Any]:
        """One batch, scripts loaded where missing (app.storage.scripts). Redis unreachable:
        StoreUnavailable."""
        try:
            return await scripts.run(self.redis, commands, self._bodies)
        except REDIS_DOWN as exc:
            raise StoreUnavailable(str(exc)) from exc


def _link(links: list[Link], account_id: str, session_id: str, ttl: int) -> list[Command]:
    """Each link (first link wins) and, after it, whether its watch key exists."""
    commands: list[Command] = []
    for link in links:
        commands.append(("SET", link.key, f"{account_id} {session_id}", "EX", ttl, "NX"))
        commands.append(("EXISTS", link.watch))
    return commands



def _made(replies: list[Any], indices: tuple[int, ...]) -> tuple[set[int], set[int]]:
    """The indices of links this batch made, and of those whose watch key existed."""
    made = {index for index, reply in zip(indices, replies[0::2]) if reply}
    return made, {index for index, watched in zip(indices, replies[1::2]) if index in made and watched}


def _record(info: bytes | None, meta: bytes | None, rev: bytes | None) -> SessionRecord | None:
    if info is None:
        return None
    return SessionRecord(
        info=_info_decoder.decode(info), meta=msgspec.json.decode(meta) if meta else {}, rev=int(rev or 0)
    )


def _with_invariants(record: SessionRecord | None, account_id: str, session_id: str) -> SessionRecord | None:
    """What every writer's result must satisfy: the key's identity, and `ended`
    always a bool (C#'s non-nullable `bool Ended`: an active session says false)."""
    if record is None:
        return None
    info = record.info
    if info.id == session_id and info.account_id == account_id and type(info.ended) is bool:
        return record  # already so (every commit but a session's first): nothing to copy
    info = msgspec.structs.replace(info, id=session_id, account_id=account_id, ended=bool(info.ended))
    return msgspec.structs.replace(record, info=info)


def _endpoints(visibility: Visibility) -> frozenset[str]:
    """The endpoint indexes a session is in: its endpoints while it is active."""
    return frozenset(visibility.endpoints) if visibility.active else frozenset()


def _same(current: SessionRecord | None, proposed: SessionRecord) -> bool:
    return current is not None and current.info == proposed.info and current.meta == proposed.meta



def _change(account_id: str, epoch: str, entry_id: bytes | str, fields: list[bytes]) -> Change:
    """One raw XRANGE row (id, [field, value, ...]) of the change log."""
    cursor = int(text(entry_id).split("-", 1)[0])
    raw = fields[fields.index(b"e") + 1]
    entry: ChangeEntry = entry_decoder.decode(raw)
    return Change(account_id=account_id, epoch=epoch, cursor=cursor, entry=entry)
