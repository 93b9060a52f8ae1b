"""This process's part in agent presence (docs/protocol.md, "Presence").

Each live connection (WebSocket or SSE) of a principal with an endpoint holds a
lease (app.storage.presence_store). Every `interval`, this process renews every
lease it holds and sweeps the expired leases of every account it holds leases in or
has presence watchers for, in batches spread over the interval (app.live.spread: each
account in the same one every time, so each is still renewed once an interval; one
batch for 10,000 sockets was a 37 ms stall of the event loop every 2 s, the push
bench's p99 at 100 events/s, issue 14): a process that died stops renewing, and
the first sweep after its leases ran out, on whichever process, publishes the
leaves. Joins and leaves arrive on the account's live channel (app.live.broker)
and go to the connections that asked for presence (`?presence=1`): Managers and
Admins hear of every endpoint of their account, anyone else of their own.

A watcher first gets the whole list at a version, then each change after it;
one that misses a change (pub/sub lost it: a version gap, or a tick finds it
behind the store) gets the whole list again."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from app.auth.tokens import Principal
from app.config import Settings
from app.domain import presence as rules
from app.domain.presence import BadPresence, PresenceEvent
from app.domain.visibility import Viewer
from app.live import protocol, spread
from app.live.outbox import Outbox
from app.live.protocol import Message
from app.redis_io import REDIS_DOWN
from app.storage.presence_store import PresenceStore, Roster
from app.storage.session_store import StoreUnavailable

log = logging.getLogger("app.live.presence")
_FAILURES = (StoreUnavailable, *REDIS_DOWN, asyncio.TimeoutError)
_PENDING_MAX = 1000  # changes held for a watcher while its list is read; past it, read again


@dataclass(frozen=True, slots=True)
class Lease:
    account_id: str
    connection_id: str
    endpoint_id: str
    entry: bytes  # what the store publishes for the endpoint (app.domain.presence.entry_of)
    holder: tuple[str, str | None]  # the principal's user id and name: who may take the lease over


@dataclass(eq=False, slots=True)
class Watcher:
    viewer: Viewer
    outbox: Outbox
    version: int = 0  # the presence version its copy is current at
    pending: list[PresenceEvent] | None = field(default_factory=list)  # a list is being read: held changes


class Attendance:
    """One live connection's part: its lease, and whether it watches presence."""

    __slots__ = ("_presence", "_wants", "lease", "watcher")

    def __init__(self, presence: Presence, watch: bool) -> None:
        self._presence = presence
        self._wants = watch
        self.lease: Lease | None = None
        self.watcher: Watcher | None = None

    async def begin(self, principal: Principal, outbox: Outbox) -> None:
        """Called once the connection is subscribed (its account's channel reaches this process)."""
        self.lease = await self._presence.arrive(principal)
        if self._wants:
            self.watcher = await self._presence.watch(Viewer.of(principal), outbox)

    async def rebind(self, principal: Principal) -> None:
        """After a token refresh: the lease follows the endpoint; a watcher whose view
        changed gets the list it now sees (read after the lease moved)."""
        watcher, viewer = self.watcher, Viewer.of(principal)
        rewatch = watcher is not None and watcher.viewer != viewer
        if watcher is not None and rewatch:
            self._presence.unwatch(watcher)
        lease = self.lease
        if (lease.endpoint_id if lease else None) != principal.endpoint_id:
            self.lease = await self._presence.arrive(principal)
            if lease is not None:
                await self._presence.depart(lease, now=True)  # the connection moved: not a reconnect to wait for
        if watcher is not None and rewatch:
            self.watcher = await self._presence.watch(viewer, watcher.outbox)

    async def end(self) -> None:
        if self.watcher is not None:
            self._presence.unwatch(self.watcher)
            self.watcher = None
        lease, self.lease = self.lease, None
        if lease is not None:
            await self._presence.depart(lease)


class Presence:
    def __init__(self, store: PresenceStore, *, lease_seconds: float, interval_seconds: float,
                 leave_grace_seconds: float = 0.0, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self.lease_seconds = lease_seconds
        self.interval_seconds = interval_seconds
        self.leave_grace_seconds = leave_grace_seconds
        self._clock = clock
        self.process_id = os.urandom(6).hex()
        self._numbers = itertools.count(1)
        self._leases: dict[str, dict[str, Lease]] = {}  # account -> connection id -> lease
        # Leases of connections that ended: they leave in the first tick's write at least
        # `leave_grace_seconds` after, and are renewed until then, unless a new connection of the
        # same endpoint and holder takes one over first (a reconnect, a resume storm).
        self._ended: dict[str, dict[str, Lease]] = {}
        self._ended_at: dict[str, float] = {}  # connection id -> when it ended
        self._watchers: dict[str, set[Watcher]] = {}
        self._ticked: dict[str, int] = {}  # account -> the version its last tick read
        self._task: asyncio.Task[None] | None = None
        self._reads: set[asyncio.Task[None]] = set()

    @property
    def leave_bound(self) -> float:
        return rules.leave_bound(self.lease_seconds, self.interval_seconds)

    @property
    def lease_count(self) -> int:
        return sum(len(leases) for leases in self._leases.values())

    def attendance(self, watch: bool) -> Attendance:
        return Attendance(self, watch)

    # -- lifecycle --------------------------------------------------------------------
    async def start(self) -> None:
        self._task = asyncio.create_task(self._tick_periodically(), name="live-presence")

    async def stop(self) -> None:
        """Stop renewing; leave with what is left (a clean stop is seen at once)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        for task in list(self._reads):
            task.cancel()
        await asyncio.gather(*self._reads, return_exceptions=True)
        leases, self._leases, ended, self._ended = self._leases, {}, self._ended, {}
        self._ended_at.clear()
        for account in dict.fromkeys([*leases, *ended]):
            gone = [*leases.get(account, {}), *ended.get(account, {})]
            try:
                await self._store.leave(account, gone)
            except _FAILURES as exc:  # their leases run out instead
                log.warning("presence: leaving %s at stop failed: %s", account, exc)

    async def _tick_periodically(self) -> None:
        async for part in spread.ticks(self.interval_seconds):
            try:
                await self.tick(part, spread.PARTS)
            except _FAILURES as exc:
                log.warning("presence tick failed (leases are renewed at the next): %s", exc)
            except Exception:  # noqa: BLE001 - the ticks must go on, or every lease of this process runs out
                log.exception("presence tick failed")

    # -- leases -----------------------------------------------------------------------
    async def arrive(self, principal: Principal) -> Lease | None:
        """A lease for a connection of the principal's endpoint (none without an endpoint):
        one of the endpoint's leases that ended since the last tick, taken over (no write:
        a reconnect, or a whole resume storm, moves nothing in presence), else a new one.
        Held here first: if the store cannot be reached now, the next tick joins it."""
        endpoint_id = principal.endpoint_id
        if not endpoint_id:
            return None
        holder = (principal.user_id, principal.name)
        ended = self._ended.get(principal.account_id)
        if ended:
            for connection_id, lease in ended.items():
                if lease.endpoint_id == endpoint_id and lease.holder == holder:
                    del ended[connection_id]
                    self._ended_at.pop(connection_id, None)
                    if not ended:
                        del self._ended[principal.account_id]
                    self._leases.setdefault(lease.account_id, {})[connection_id] = lease
                    return lease
        now = self._clock()
        lease = Lease(principal.account_id, f"{self.process_id}:{next(self._numbers)}", endpoint_id,
                      rules.entry_of(endpoint_id, principal.user_id, principal.name, now), holder)
        self._leases.setdefault(lease.account_id, {})[lease.connection_id] = lease
        try:
            await self._join(lease, now)
        except _FAILURES as exc:
            log.warning("presence: join of %s failed (retried at the next tick): %s", lease.endpoint_id, exc)
        return lease

    async def depart(self, lease: Lease, *, now: bool = False) -> None:
        """The connection ended: its lease leaves at the next tick (within `interval`),
        in that tick's one write, unless a reconnect of its endpoint takes it over first;
        `now`: leave at once (a token refresh moved the connection to another endpoint)."""
        held = self._leases.get(lease.account_id, {})
        if held.pop(lease.connection_id, None) is None:
            return  # already left (by `stop`)
        if not held:
            self._leases.pop(lease.account_id, None)
        if not now:
            self._ended.setdefault(lease.account_id, {})[lease.connection_id] = lease
            self._ended_at[lease.connection_id] = self._clock()
            return
        try:
            await self._store.leave(lease.account_id, [lease.connection_id])
        except _FAILURES as exc:
            log.warning("presence: leave of %s failed (its lease runs out): %s", lease.endpoint_id, exc)

    async def _join(self, lease: Lease, now: float) -> None:
        await self._store.join(lease.account_id, lease.connection_id, lease.endpoint_id, lease.entry,
                               now_ms=rules.now_ms(now), expiry_ms=rules.expiry_ms(now, self.lease_seconds))

    async def tick(self, part: int = 0, parts: int = 1) -> None:
        """One batch: renew this process's leases, sweep the accounts it serves; join
        again any lease found gone (this process was paused past its lease). Only the
        accounts of `part` of `parts` (`spread.part_of`); by default, all of them."""
        now = self._clock()
        renew = {account: list(held) for account, held in self._leases.items() if spread.part_of(account, parts) == part}
        ended: dict[str, dict[str, Lease]] = {}  # leaving now: their grace is over
        for account, gone in list(self._ended.items()):
            if spread.part_of(account, parts) != part:
                continue
            over = {c: lease for c, lease in gone.items() if now - self._ended_at.get(c, now) >= self.leave_grace_seconds}
            for connection_id in over:
                del gone[connection_id]
                self._ended_at.pop(connection_id, None)
            if over:
                ended[account] = over
            if gone:  # still in their grace: kept alive for a reconnect to take over
                renew.setdefault(account, []).extend(gone)
            else:
                del self._ended[account]
        watched = [account for account, watchers in self._watchers.items()
                   if watchers and spread.part_of(account, parts) == part]
        try:
            ticked = await self._store.tick(renew, watched, now_ms=rules.now_ms(now),
                                            expiry_ms=rules.expiry_ms(now, self.lease_seconds),
                                            leave={account: list(gone) for account, gone in ended.items()})
        except BaseException:
            for account, gone in ended.items():  # they leave at the next tick (or their leases run out)
                self._ended.setdefault(account, {}).update(gone)
                self._ended_at.update(dict.fromkeys(gone, now - self.leave_grace_seconds))
            raise
        for account, result in ticked.items():
            for connection_id in result.missing:
                lease = self._leases.get(account, {}).get(connection_id)
                if lease is not None:
                    await self._join(lease, now)
            self._check(account, result.version)

    # -- watchers -----------------------------------------------------------------------
    async def watch(self, viewer: Viewer, outbox: Outbox) -> Watcher:
        watcher = Watcher(viewer, outbox)
        self._watchers.setdefault(viewer.account_id, set()).add(watcher)
        await self._send_lists(viewer.account_id, [watcher])
        return watcher

    def unwatch(self, watcher: Watcher) -> None:
        watchers = self._watchers.get(watcher.viewer.account_id)
        if watchers is not None:
            watchers.discard(watcher)
            if not watchers:
                del self._watchers[watcher.viewer.account_id]
                self._ticked.pop(watcher.viewer.account_id, None)

    async def roster(self, viewer: Viewer) -> Roster:
        """What `GET /presence` answers: the store's list (expired leases swept first), as the viewer sees it."""
        found = await self._store.read(viewer.account_id, now_ms=rules.now_ms(self._clock()))
        return Roster(found.version, rules.visible(viewer, found.entries))

    def on_publication(self, account_id: str, data: bytes) -> None:
        """A presence publication from the account's channel (app.live.broker)."""
        watchers = self._watchers.get(account_id)
        if not watchers:
            return
        try:
            event = rules.parse_publication(data)
        except BadPresence as exc:
            log.error("bad presence publication on %s: %s", account_id, exc)
            return
        message: Message | None = None  # encoded once, for every watcher that gets it
        behind: list[Watcher] = []
        for watcher in list(watchers):
            if watcher.pending is not None:
                if len(watcher.pending) < _PENDING_MAX:
                    watcher.pending.append(event)
                continue
            if event.version <= watcher.version:
                continue  # already in the list it got
            if event.version > watcher.version + 1:
                behind.append(watcher)  # a change was lost: the whole list again
                continue
            watcher.version = event.version
            if rules.sees(watcher.viewer, event.entry.endpoint_id):
                message = message or protocol.presence_change(event.version, event.kind == "join", event.raw)
                watcher.outbox.offer(message)
        if behind:
            self._resend(account_id, behind)

    def _check(self, account_id: str, version: int) -> None:
        """After a tick: a watcher still behind the version the previous tick read (its
        publication lost), or ahead of the store (Redis lost presence), gets the list again."""
        previous = self._ticked.get(account_id)
        watchers = self._watchers.get(account_id)
        if not watchers:
            return
        self._ticked[account_id] = version
        stale = [w for w in watchers if w.pending is None
                 and ((previous is not None and w.version < previous) or w.version > version)]
        if stale:
            self._resend(account_id, stale)

    def _resend(self, account_id: str, watchers: list[Watcher]) -> None:
        for watcher in watchers:
            watcher.pending = []
        task = asyncio.ensure_future(self._send_lists(account_id, watchers))
        self._reads.add(task)
        task.add_done_callback(self._reads.discard)

    async def _send_lists(self, account_id: str, watchers: list[Watcher]) -> None:
        """Read the list once; to each watcher its visible part, then the changes held meanwhile."""
        try:
            found = await self._store.read(account_id, now_ms=rules.now_ms(self._clock()))
        except _FAILURES as exc:
            log.warning("presence: list of %s not read (retried at a later tick): %s", account_id, exc)
            for watcher in watchers:
                watcher.pending = None  # behind: the next tick sends the list again
            return
        lists: dict[Viewer, Message] = {}
        for watcher in watchers:
            if watcher not in self._watchers.get(account_id, ()):
                continue
            message = lists.get(watcher.viewer)
            if message is None:
                message = lists[watcher.viewer] = protocol.presence_list(
                    found.version, [rules.encode_entry(e) for e in rules.visible(watcher.viewer, found.entries)])
            held, watcher.pending = watcher.pending or [], None
            watcher.version = found.version
            watcher.outbox.offer(message)
            for event in held:
                if event.version == watcher.version + 1:
                    watcher.version = event.version
                    if rules.sees(watcher.viewer, event.entry.endpoint_id):
                        watcher.outbox.offer(protocol.presence_change(event.version, event.kind == "join", event.raw))



def build_presence(store: PresenceStore, settings: Settings) -> Presence:
    return Presence(store, lease_seconds=settings.presence_lease_seconds,
                    interval_seconds=settings.presence_interval_seconds,
                    leave_grace_seconds=settings.presence_leave_grace_seconds)
