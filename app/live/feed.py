"""One account's relay on this process.

Publications from the broker, joins and position checks go through one queue
and one worker, so every subscriber of the account sees changes in cursor
order. Each subscriber carries its own position (epoch, cursor): a change is
delivered to exactly the subscribers at `cursor - 1`; anyone further behind is
caught up from the change log first, and anyone the log cannot serve (trimmed,
new epoch) gets a fresh snapshot marked `reset`. Never a gap, never a repeat.

Per change, the patch is built and encoded once per visibility class and the
same Message is queued for every subscriber of that class. Each subscriber's state digest
(app.domain.digest) moves by its class's sum at each change; every `digest_every`-th
patch a subscriber gets carries it (that one message encoded once per class and digest).

A subscriber whose queue overflows is conflated, not dropped (app.live.outbox): its queue
says from where, and the worker sends it the one patch from there to its cursor, built
from the change log (`views.ops_for_range`), or a snapshot when that is smaller.

The feed also remembers what it relayed, for resumes (docs/architecture.md, "Live path"): the
account's last changes, contiguous up to its head (`recent`: at most `_RECENT_CHANGES`, and none
older than `_RECENT_SECONDS` once newer ones arrive), and, for each viewer whose connection left
while current, its digest at the head, moved along with every change (`digest_at`). A resume
from inside them (a reconnect storm) needs no read: it gets what it would have got had it
stayed connected."""

from __future__ import annotations

import asyncio
import bisect
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from app.domain import digest
from app.domain.changes import Change, LogRead
from app.live import protocol, resume
from app.live.outbox import Outbox
from app.live.protocol import Close, CloseCode, Message
from app.live.resume import ChangeSource, DigestBase
from app.live.views import Seen, ops_for, ops_for_range, seen
from app.redis_io import REDIS_DOWN
from app.observability import hooks
from app.observability.tally import TALLY
from app.domain.positions import Position
from app.storage.session_store import StoreUnavailable
from app.domain.visibility import Viewer

log = logging.getLogger("app.live.feed")
_ARRIVALS_KEPT = 4096  # changes whose arrival time is kept for the ack's lag
_HOLD_WITHOUT_ACK_SECONDS = 10.0  # a hold is released if no ack comes for this long
_RECENT_CHANGES = 256  # relayed changes kept per account for resumes (`Feed.recent`)
_RECENT_SECONDS = 10.0  # ... dropped once this old, as newer ones arrive
_DIGESTS_KEPT = 1024  # viewers whose digest at the head is kept for resumes (`Feed.digest_at`)
STORE_ERRORS = (StoreUnavailable, *REDIS_DOWN, asyncio.TimeoutError)


@dataclass(eq=False, slots=True)
class Subscriber:
    viewer: Viewer
    outbox: Outbox
    epoch: str
    cursor: int  # the client's state is current at epoch:cursor
    # The state digest at epoch:cursor; None: not known (digests off; a resumed client
    # before it reaches `base`, the digest read from the store ahead of it).
    digest: int | None = None
    base: DigestBase | None = None
    unverified: int = 0  # patches sent since the last that carried the digest
    who: Who | None = None  # for GET /live/connections (None: a long-poll request)
    # Acknowledgements (docs/protocol.md "Acknowledgements"); -1: none yet.
    offered: int = -1  # the cursor of the last patch or snapshot queued for it
    acked: int = -1  # the last cursor it said it applied
    pending_ms: int | None = None  # arrival (Unix ms) of the oldest change offered and not acked
    acked_at: float = 0.0  # when (the feed's clock, s) its last ack came
    release_at: int = -1  # held (ack-driven conflation) until it acks this cursor

    @property
    def position(self) -> Position:
        return Position(self.epoch, self.cursor)

    @property
    def digest_text(self) -> str | None:
        return None if self.digest is None else digest.text(self.digest)

    def learn(self, base: DigestBase) -> None:
        """The digest read for a resumed client: its own if at that position, else one to
        take up when it gets there (a base behind it, or of another epoch, tells nothing)."""
        if base.epoch != self.epoch or base.cursor < self.cursor:
            return
        if base.cursor == self.cursor:
            self.digest, self.base = base.digest, None
        else:
            self.base = base


@dataclass(frozen=True, slots=True)
class Who:
    """Whose connection a subscriber is, as GET /live/connections shows it."""

    connection_id: str
    user_id: str
    endpoint_id: str | None
    transport: str  # websocket | sse


@dataclass(frozen=True, slots=True)
class Lag:
    cursors: int
    ms: int | None  # None: the change's arrival is not known here


@dataclass
class Stats:
    patches_encoded: int = 0
    messages_queued: int = 0
    catch_ups: int = 0
    resets: int = 0
    conflated: int = 0  # conflated patches sent (a conflation that ended in a snapshot is a reset)
    dropped_publications: int = 0
    resumed_from_memory: int = 0  # resumes served from what the feed relayed (`Feed.recent`), no read


@dataclass(frozen=True, slots=True)
class _Join:
    sub: Subscriber
    done: asyncio.Future[None]


@dataclass(frozen=True, slots=True)
class _Rebind:
    sub: Subscriber
    viewer: Viewer


@dataclass(frozen=True, slots=True, eq=False)
class _Conflate:
    """Also the subscriber's outbox's `on_overflow` (one small object per subscriber, where a
    `functools.partial` of a bound method was four: 255 bytes): calling it queues itself."""

    feed: Feed
    sub: Subscriber

    def __call__(self) -> None:
        self.feed._push(self)


class _Check:
    pass


_Op = Change | _Join | _Rebind | _Conflate | _Check
_CHECK = _Check()


class Feed:
    def __init__(self, account_id: str, source: ChangeSource, stats: Stats, *,
                 max_changes: int, inbox_limit: int = 10_000, digest_every: int = 0, conflate_lag_ms: int = 0,
                 clock: Callable[[], float] = time.time) -> None:
        self.account_id = account_id
        self.subs: set[Subscriber] = set()
        self.epoch: str | None = None  # as last seen on the channel or in the store
        self.head = 0
        self._source = source
        self._stats = stats
        self._max_changes = max_changes
        self._inbox_limit = inbox_limit
        self._digest_every = digest_every  # 0: no digests
        self._conflate_lag_ms = conflate_lag_ms  # hold an acking client this far behind (0: never)
        self._clock = clock
        # When each recently relayed change arrived (Unix ms), by cursor: lag at the ack.
        self._arrival_cursors: list[int] = []
        self._arrival_ms: list[int] = []
        self._arrival_epoch: str | None = None
        self._ops: deque[_Op] = deque()
        self._queued_changes = 0
        self._check_queued = False
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.ready: asyncio.Future[None] | None = None  # the broker subscription
        # What was relayed, for resumes: the last changes, contiguous (with when each was
        # relayed); the digests at the head of viewers whose connection left while current,
        # {viewer: (epoch, cursor, digest)}.
        self._recent: deque[tuple[float, Change]] = deque()
        self._digests: dict[Viewer, tuple[str, int, int]] = {}

    # -- called from other tasks (never block) -----------------------------------
    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"live-feed-{self.account_id}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for op in self._ops:
            if isinstance(op, _Join) and not op.done.done():
                op.done.cancel()
        # What it remembers goes now, by reference count: the feed itself (its task refers back
        # to it) is cyclic garbage, which in a serving process may wait frozen until the heap is
        # next walked (app.gc_policy), and its relayed changes are ~50 memory blocks each.
        self._ops.clear()
        self._forget()
        self._arrival_cursors.clear()
        self._arrival_ms.clear()

    def publish(self, change: Change) -> None:
        if self._queued_changes >= self._inbox_limit:
            # Dropping is safe: the gap shows by cursor, and the check finds a lost tail.
            self._stats.dropped_publications += 1
            self.check()
            return
        self._queued_changes += 1
        self._push(change)

    def check(self) -> None:
        """Compare every subscriber with the store's head; catch up or reset."""
        if not self._check_queued:
            self._check_queued = True
            self._push(_CHECK)

    async def join(self, sub: Subscriber) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._push(_Join(sub, done))
        await done

    def rebind(self, sub: Subscriber, viewer: Viewer) -> None:
        self._push(_Rebind(sub, viewer))

    def leave(self, sub: Subscriber) -> None:
        """`sub`'s connection ended. Its digest, when known, is kept (and moved along with
        each change after its cursor) for its viewer's next resume (`digest_at`)."""
        self.subs.discard(sub)
        if (sub.digest is None or not self._digest_every or (sub.epoch == self.epoch and sub.cursor < self.head)
                or (sub.viewer not in self._digests and len(self._digests) >= _DIGESTS_KEPT)):
            return  # unknown; or behind, where the relay would never move it
        self._digests[sub.viewer] = (sub.epoch, sub.cursor, sub.digest)

    # -- what it remembers, for resumes ----------------------------------------------
    def recent(self, epoch: str | None, cursor: int, limit: int) -> LogRead | None:
        """What `log_since` would answer for a resume from `epoch:cursor`, from what this feed
        relayed: every change after `cursor` up to its head; None when it does not hold them all
        (or more than `limit`). The feed is subscribed: whatever follows its head reaches it on
        the channel, as whatever follows a read does (a loss shows by cursor, or at a check)."""
        head = self.head
        if self.epoch is None or epoch != self.epoch or cursor > head:
            return None
        if cursor == head:
            return LogRead(epoch, head, [])
        recent = self._recent
        if (not recent or recent[-1][1].cursor != head or recent[0][1].cursor > cursor + 1
                or head - cursor > limit):
            return None
        first = cursor + 1 - recent[0][1].cursor
        return LogRead(epoch, head, [change for _, change in itertools.islice(recent, first, None)])

    def digest_at(self, viewer: Viewer) -> DigestBase | None:
        """The viewer's digest at this feed's head, when a connection of it left current (and
        every change since had the hashes to move it): a resumed client's base, read from no store."""
        known = self._digests.get(viewer)
        if known is None or known[0] != self.epoch or known[1] != self.head:
            return None
        return DigestBase(*known)

    def _remember(self, change: Change) -> None:
        """Keep a relayed change (`_relay` moved the head to it); the kept ones stay contiguous."""
        recent = self._recent
        if recent:
            last = recent[-1][1]
            if last.epoch == change.epoch and change.cursor <= last.cursor:
                return  # relayed again (a catch-up)
            if last.epoch != change.epoch or change.cursor != last.cursor + 1:
                recent.clear()  # a gap: what is kept must not reach back past it
        if change.epoch != self.epoch:
            return
        now = self._clock()
        recent.append((now, change))
        while len(recent) > _RECENT_CHANGES or now - recent[0][0] > _RECENT_SECONDS:
            recent.popleft()

    def resubscribed(self) -> None:
        """The channel was (re)subscribed: what was published meanwhile may be lost. A feed with
        subscribers finds out at its check (and catches up, its memory with it); one without
        forgets what it remembers (a resume from it could miss the lost changes until a check)."""
        if not self.subs:
            self._forget()

    def _forget(self) -> None:
        self._recent.clear()
        self._digests.clear()

    def _move_digests(self, change: Change) -> None:
        """Move the kept digests along `change`; one it cannot move (not at the change's
        cursor, or the change has no hashes) is dropped."""
        entry = change.entry
        for viewer, (epoch, cursor, known) in list(self._digests.items()):
            if epoch == change.epoch and cursor >= change.cursor:
                continue  # relayed again
            moved = (digest.delta(entry.hash_before, entry.hash_after, *seen(entry, viewer))
                     if epoch == change.epoch and cursor == change.cursor - 1 else None)
            if moved is None:
                del self._digests[viewer]
            else:
                self._digests[viewer] = (epoch, change.cursor, (known + moved) & digest.MASK)

    def acknowledged(self, sub: Subscriber, cursor: int, epoch: str | None) -> None:
        """The client says its state is applied up to `cursor`: its lag, the arrival-to-ack
        histogram, and the end of a hold. Ignored for another epoch, an old or an unsent cursor."""
        if (epoch is not None and epoch != sub.epoch) or cursor <= sub.acked or cursor > sub.cursor:
            return
        now = self._clock()
        sub.acked, sub.acked_at = cursor, now
        arrived = self._arrival_at(cursor)
        if arrived is not None:
            TALLY.arrival_to_ack_seconds.observe(max(0.0, now - arrived / 1000))
        sub.pending_ms = None if cursor >= sub.offered else self._arrival_after(cursor)
        if sub.release_at >= 0 and cursor >= sub.release_at:
            sub.release_at = -1
            sub.outbox.release()

    def lag(self, sub: Subscriber) -> Lag | None:
        """How far the client's acknowledged state is behind: in the account's changes since it
        (0 when it has acknowledged all it was sent), and how long the oldest change it was sent
        and has not acknowledged has been waiting since its webhook arrived. None: it never acked."""
        if sub.acked < 0:
            return None
        if sub.acked >= sub.offered:
            return Lag(0, 0)
        pending = sub.pending_ms
        return Lag(sub.cursor - sub.acked,
                   None if pending is None else max(0, int(self._clock() * 1000) - pending))

    def _note_arrival(self, epoch: str, cursor: int, arrived_ms: int) -> None:
        cursors = self._arrival_cursors
        if epoch != self._arrival_epoch:
            self._arrival_epoch = epoch  # a new epoch's cursors start again
            cursors.clear()
            self._arrival_ms.clear()
        elif cursors and cursor <= cursors[-1]:
            return  # a catch-up relaying an older change again
        if len(cursors) >= _ARRIVALS_KEPT:
            del cursors[:_ARRIVALS_KEPT // 2], self._arrival_ms[:_ARRIVALS_KEPT // 2]
        cursors.append(cursor)
        self._arrival_ms.append(arrived_ms)

    def _arrival_at(self, cursor: int) -> int | None:
        i = bisect.bisect_left(self._arrival_cursors, cursor)
        return self._arrival_ms[i] if i < len(self._arrival_cursors) and self._arrival_cursors[i] == cursor else None

    def _arrival_after(self, cursor: int) -> int | None:
        i = bisect.bisect_right(self._arrival_cursors, cursor)
        return self._arrival_ms[i] if i < len(self._arrival_ms) else None

    def conflate(self, sub: Subscriber) -> None:
        """`sub`'s queue overflowed and began conflating: bring it up to date, in order."""
        self._push(_Conflate(self, sub))

    def _push(self, op: _Op) -> None:
        self._ops.append(op)
        self._wake.set()

    # -- the worker ---------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            while not self._ops:
                self._wake.clear()
                await self._wake.wait()
            op = self._ops.popleft()
            try:
                await self._handle(op)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("live feed %s failed; its clients will resume", self.account_id)
                self._fail(list(self.subs))
            finally:
                if isinstance(op, _Join) and not op.done.done():
                    op.done.set_result(None)

    async def _handle(self, op: _Op) -> None:
        if isinstance(op, Change):
            self._queued_changes -= 1
            await self._on_change(op)
        elif isinstance(op, _Join):
            await self._on_join(op.sub)
        elif isinstance(op, _Conflate):
            await self._conflate(op.sub)
        elif isinstance(op, _Rebind):
            if op.sub in self.subs:
                op.sub.viewer = op.viewer
                await self._reset([op.sub])
        else:
            self._check_queued = False
            await self._check()

    async def _on_change(self, change: Change) -> None:
        if change.epoch != self.epoch:
            if self.epoch is not None:
                log.warning("account %s: change log epoch %s -> %s", self.account_id, self.epoch, change.epoch)
                self._forget()
            self.epoch, self.head = change.epoch, 0
        stale = [s for s in self.subs if s.epoch != change.epoch]
        if stale:
            await self._reset(stale)
        behind = [s for s in self.subs if s.cursor < change.cursor - 1]
        if behind:
            await self._catch_up(behind, change.cursor - 1)
        self._relay(change)

    async def _on_join(self, sub: Subscriber) -> None:
        self.subs.add(sub)
        sub.outbox.on_overflow = _Conflate(self, sub)  # `conflate(sub)`, when called
        if self.epoch is None:
            return  # nothing relayed yet: whatever follows its start arrives on the channel
        if sub.epoch != self.epoch:
            await self._check()
        elif sub.cursor < self.head:
            await self._catch_up([sub], self.head)

    async def _check(self) -> None:
        if not self.subs:
            return
        now = self._clock()
        for sub in self.subs:  # a held client that stopped acknowledging: back to the queue's own bound
            if sub.release_at >= 0 and now - sub.acked_at > _HOLD_WITHOUT_ACK_SECONDS:
                sub.release_at = -1
                sub.outbox.release()
        try:
            epoch = await self._source.epoch(self.account_id)
            head = await self._source.cursor(self.account_id)
        except STORE_ERRORS as exc:
            log.warning("account %s: position check failed: %s", self.account_id, exc)
            return
        if (self.epoch is not None and epoch != self.epoch) or head < self.head:
            self._forget()  # another epoch, or the store lost changes it had: nothing kept holds
        if epoch != self.epoch:
            self.epoch, self.head = epoch, head
        # Ahead of the store: Redis lost the last writes (a failover, a restart
        # replaying an AOF); their next commit starts a new epoch, but until then
        # these clients hold state the store no longer has.
        stale = [s for s in self.subs if s.epoch != epoch or s.cursor > head]
        self.head = head if stale else max(self.head, head)
        if stale:
            await self._reset(stale)
        behind = [s for s in self.subs if s.cursor < head]
        if behind:
            await self._catch_up(behind, head)

    # -- delivery -----------------------------------------------------------------
    def _relay(self, change: Change) -> None:
        """Queue `change` for every subscriber at `cursor - 1`: one encode per class."""
        if change.epoch == self.epoch:
            self.head = max(self.head, change.cursor)
        arrived = change.entry.arrived_ms
        if arrived is not None:
            self._note_arrival(change.epoch, change.cursor, arrived)
        hold_ms = self._conflate_lag_ms
        now_ms = int(self._clock() * 1000) if hold_ms else 0
        classes: dict[Seen, tuple[Message | None, int | None]] = {}
        signed: dict[tuple[Seen, int], Message] = {}
        entry, every = change.entry, self._digest_every
        for sub in list(self.subs):
            if sub.epoch != change.epoch or sub.cursor != change.cursor - 1:
                continue
            pair = seen(entry, sub.viewer)
            cls = classes.get(pair)
            if cls is None:
                ops = ops_for(entry, pair)
                moved = digest.delta(entry.hash_before, entry.hash_after, *pair) if every else None
                cls = classes[pair] = (protocol.patch(change.epoch, change.cursor, ops) if ops else None, moved)
                self._stats.patches_encoded += bool(ops)
            sub.cursor = change.cursor  # nothing to see is still "current at"
            message, moved = cls
            if every:
                known = sub.digest
                if known is not None and moved is not None:  # the common case, inline: one sum
                    if moved:
                        sub.digest = (known + moved) & digest.MASK
                    if message is not None:
                        sub.unverified += 1
                        if sub.unverified >= every:
                            message = self._signed(sub, pair, message, signed)
                else:
                    message = self._follow_digest(sub, pair, message, moved, signed)
            if message is not None:
                if sub.acked >= 0:  # an acking client: its lag, and a hold when it is too far behind
                    if sub.pending_ms is None:
                        sub.pending_ms = arrived
                    if (hold_ms and sub.release_at < 0 and sub.pending_ms is not None
                            and now_ms - sub.pending_ms > hold_ms):
                        sub.release_at = sub.offered
                        sub.outbox.hold(Position(change.epoch, change.cursor - 1))
                self._offer(sub, message)
        self._remember(change)
        if self._digests:
            self._move_digests(change)
        hooks.relayed(change)

    def _follow_digest(self, sub: Subscriber, pair: Seen, message: Message | None, moved: int | None,
                       signed: dict[tuple[Seen, int], Message]) -> Message | None:
        """`sub`'s digest after the change just applied to its cursor, when it was not known
        or the change has no hashes; the message to send it."""
        if sub.digest is not None:
            sub.digest = digest.advance(sub.digest, moved)
        elif sub.base is not None and sub.base.cursor <= sub.cursor:
            if sub.base.cursor == sub.cursor:
                sub.digest = sub.base.digest
            sub.base = None
        if message is None or sub.digest is None:
            return message
        sub.unverified += 1
        return self._signed(sub, pair, message, signed) if sub.unverified >= self._digest_every else message

    def _signed(self, sub: Subscriber, pair: Seen, message: Message,
                signed: dict[tuple[Seen, int], Message]) -> Message:
        """Every `digest_every`-th patch a subscriber gets carries its digest: encoded once
        per class and digest (every subscriber of one view and position shares it)."""
        assert sub.digest is not None
        sub.unverified = 0
        key = (pair, sub.digest)
        with_digest = signed.get(key)
        if with_digest is None:
            with_digest = signed[key] = protocol.with_digest(message, digest.text(sub.digest))
        return with_digest

    def _offer(self, sub: Subscriber, message: Message) -> None:
        if sub.outbox.offer(message):
            if sub.outbox.conflate_from is None:  # queued, not taken into a conflation
                sub.offered = sub.cursor
            self._stats.messages_queued += 1
        else:
            self.subs.discard(sub)  # too slow or closing: it will resume from its own cursor

    async def _catch_up(self, behind: list[Subscriber], target: int) -> None:
        self._stats.catch_ups += 1
        start = min(s.cursor for s in behind)
        held = self.recent(self.epoch, start, self._max_changes)  # relayed already: no read
        if held is not None and held.head >= target and all(s.epoch == self.epoch for s in behind):
            changes: list[Change] | None = held.changes
        else:
            try:
                changes = await self._source.changes_since(self.account_id, start, limit=self._max_changes)
            except STORE_ERRORS as exc:
                log.warning("account %s: catch-up from %d failed: %s", self.account_id, start, exc)
                self._fail(behind)
                return
        for change in changes or ():
            self._relay(change)
        still = [s for s in behind if s in self.subs and s.cursor < target]
        if still:
            await self._reset(still)

    async def _conflate(self, sub: Subscriber) -> None:
        """The one message from where `sub`'s queue began conflating to its cursor: the
        merged patch of the change log's entries, or a snapshot when that is smaller, or
        when the log cannot give the range."""
        start = sub.outbox.conflate_from
        if start is None or sub not in self.subs:
            return
        if start.epoch != sub.epoch or start.cursor > sub.cursor:
            await self._reset([sub])  # SNAPSHOT_NEEDED, or a base in another epoch
            return
        try:
            changes = await self._source.changes_since(self.account_id, start.cursor, limit=self._max_changes)
        except STORE_ERRORS as exc:
            log.warning("account %s: conflation from %d failed: %s", self.account_id, start.cursor, exc)
            self._fail([sub])
            return
        span = [c for c in changes or () if c.cursor <= sub.cursor]
        if not span or span[-1].cursor != sub.cursor or any(c.epoch != sub.epoch for c in span):
            await self._reset([sub])  # the log no longer reaches back, or moved to another epoch
            return
        ops = ops_for_range([c.entry for c in span], sub.viewer)
        if not ops:
            sub.outbox.conflated(None)  # nothing it sees changed
            return
        text = sub.digest_text
        merged = protocol.patch(sub.epoch, sub.cursor, ops, base=start.cursor, digest=text)
        if text is not None:
            sub.unverified = 0
        if merged.size > sub.outbox.max_bytes // 2:
            try:
                fresh = await resume.snapshot(self._source, sub.viewer, reset=True, digests=self._digest_every > 0)
            except STORE_ERRORS as exc:
                log.warning("account %s: conflation snapshot failed: %s", self.account_id, exc)
                fresh = None
            if fresh is not None and fresh.messages[0].size < merged.size and sub in self.subs:
                self._snapshot_to(sub, fresh)
                return
        self._stats.conflated += 1
        sub.offered = sub.cursor
        if sub.acked >= 0 and sub.pending_ms is None:  # it is waiting for an ack again
            sub.pending_ms = self._arrival_after(sub.acked)
        sub.outbox.conflated(merged)

    async def _reset(self, subs: list[Subscriber]) -> None:
        """A fresh snapshot for each, read and encoded once per distinct viewer."""
        groups: dict[Viewer, list[Subscriber]] = {}
        for sub in subs:
            groups.setdefault(sub.viewer, []).append(sub)
        for viewer, members in groups.items():
            try:
                fresh = await resume.snapshot(self._source, viewer, reset=True, digests=self._digest_every > 0)
            except STORE_ERRORS as exc:
                log.warning("account %s: reset failed: %s", self.account_id, exc)
                self._fail(members)
                continue
            for sub in members:
                if sub in self.subs and sub.viewer == viewer:
                    self._snapshot_to(sub, fresh)

    def _snapshot_to(self, sub: Subscriber, fresh: resume.Start) -> None:
        self._stats.resets += 1
        sub.epoch, sub.cursor = fresh.epoch, fresh.cursor
        sub.digest, sub.base, sub.unverified = fresh.digest, None, 0
        self._offer(sub, fresh.messages[0])  # a snapshot also ends a conflation

    def _fail(self, subs: list[Subscriber]) -> None:
        for sub in subs:
            self.subs.discard(sub)
            sub.outbox.finish(Close.of(CloseCode.SERVER_ERROR), flush=True)
