"""This process's live subscribers, by account, and their connections.

The hub keeps one Feed per account with local subscribers, subscribing the
broker to the account's channel when the first arrives and unsubscribing when
the last leaves (after `linger_seconds`: a feed left without subscribers keeps following
its account that long, so that a reconnect storm resumes from what it holds, app.live.feed).
It also knows every open connection, to drain them on shutdown, and tells the process's
garbage-collector policy (`Lifetimes`, app.gc_policy) when each opened and ended."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from app.domain.changes import Change, LogRead
from app.config import Settings
from app.live import protocol, resume, spread
from app.live.broker import Broker
from app.live.feed import Feed, Lag, Stats, Subscriber, Who
from app.live.outbox import Outbox
from app.live.protocol import Close, CloseCode
from app.domain.positions import Position
from app.live.pump import Pump
from app.live.resume import ChangeSource
from app.live.views import Viewer
from app.observability.tally import TALLY

log = logging.getLogger("app.live.hub")


class Draining(Exception):
    """The process is shutting down and takes no new subscribers."""


@dataclass(slots=True)
class Teardowns:
    """Connections the server ended because their reader stopped reading."""

    write_timeouts: int = 0  # a write blocked past LIVE_WRITE_TIMEOUT (closed 3008)
    stalled_at_drain: int = 0  # blocked in a write when a drain began (closed at once)


class Lifetimes(Protocol):
    """Who is told when a connection opens and ends (app.gc_policy.GcPolicy: a closed
    connection is garbage it counts toward a reclaim)."""

    def opened(self) -> int: ...

    def ended(self, opened: int) -> None: ...


class Unwatched:
    """No one is told."""

    def opened(self) -> int:
        return 0

    def ended(self, opened: int) -> None:
        pass


UNWATCHED = Unwatched()


class Hub:
    def __init__(self, source: ChangeSource, broker: Broker, *, max_changes: int, replay_budget: int,
                 check_interval: float, digest_every: int = 0, conflate_lag_ms: int = 0,
                 linger_seconds: float = 0.0, clock: Callable[[], float] = time.time,
                 lifetimes: Lifetimes = UNWATCHED) -> None:
        self._source = source
        self._broker = broker
        self._max_changes = max_changes
        self._replay_budget = replay_budget
        self._check_interval = check_interval
        self._digest_every = digest_every  # state digests (LIVE_DIGEST_EVERY); 0: none
        self._conflate_lag_ms = conflate_lag_ms  # LIVE_CONFLATE_LAG_MS; 0: acks never hold
        self._clock = clock  # wall clock (lag is measured from webhook arrivals, in Unix ms)
        self._tag = secrets.token_hex(3)  # this process's prefix of connection ids
        self._ids = itertools.count(1)
        self._feeds: dict[str, Feed] = {}
        self._opening: dict[str, int] = {}  # opens in progress, by account
        self._bases: dict[str, asyncio.Future[resume.View]] = {}  # a whole-account view read, shared
        self._logs: dict[str, tuple[int, asyncio.Future[LogRead]]] = {}  # a log read from a cursor, shared
        self._refs: dict[str, int] = {}
        self._linger = linger_seconds  # LIVE_FEED_LINGER_SECONDS
        self._lingering: dict[str, asyncio.TimerHandle] = {}  # feeds without subscribers, until they stop
        self._stopping: set[asyncio.Task[None]] = set()
        self._connections: dict[Outbox, int] = {}  # each open connection: its mark from `lifetimes`
        self._lifetimes = lifetimes
        self._idle = asyncio.Event()
        self._idle.set()
        self._checker: asyncio.Task[None] | None = None
        self.stats = Stats()
        self.teardowns = Teardowns()
        self.pump = Pump()  # writes every connection's queued messages (app.live.pump)
        self.draining = False
        self.running = False

    async def start(self) -> None:
        await self._broker.start(self._on_change, self._on_subscribed)
        self._checker = asyncio.create_task(self._check_periodically(), name="live-position-check")
        self.running = True

    async def stop(self) -> None:
        self.running = False
        if self._checker is not None:
            self._checker.cancel()
            await asyncio.gather(self._checker, return_exceptions=True)
        for timer in self._lingering.values():
            timer.cancel()
        self._lingering.clear()
        await asyncio.gather(*self._stopping, return_exceptions=True)
        for feed in list(self._feeds.values()):
            await feed.stop()
        self._feeds.clear()
        self._refs.clear()
        await self._broker.stop()

    # -- connections --------------------------------------------------------------
    def track(self, outbox: Outbox) -> None:
        self._connections[outbox] = self._lifetimes.opened()
        self._idle.clear()

    def untrack(self, outbox: Outbox) -> None:
        opened = self._connections.pop(outbox, None)
        if opened is not None and not self.draining:  # a draining process exits: no heap walk for it
            self._lifetimes.ended(opened)
        if not self._connections:
            self._idle.set()

    def queued_bytes(self) -> tuple[int, int]:
        """Bytes waiting in this process's send queues: (all of them, the largest queue)."""
        sizes = [outbox.queued_bytes for outbox in self._connections]
        return sum(sizes), max(sizes, default=0)

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    async def drain(self, spread_ms: int, timeout: float) -> None:
        """Stop taking subscribers; tell every connection to reconnect elsewhere
        after its own random delay (so they do not all return at once); close.
        A connection blocked in a write cannot take the hint: it is closed at once."""
        self.draining = True
        TALLY.drains += 1
        for outbox in list(self._connections):
            if outbox.stalled:
                self.teardowns.stalled_at_drain += 1
                outbox.abandon(Close.of(CloseCode.SHUTDOWN))
                continue
            outbox.offer(protocol.reconnect(random.randint(0, max(0, spread_ms))))
            outbox.finish(Close.of(CloseCode.SHUTDOWN), flush=True)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout)

    # -- subscribers ----------------------------------------------------------------
    def connection_id(self) -> str:
        return f"{self._tag}.{next(self._ids)}"

    async def open(self, viewer: Viewer, outbox: Outbox, since: Position | None, *,
                   digest: bool = True, who: Who | None = None) -> Subscriber:
        """Bring `outbox` to the viewer's current state (replay or snapshot) and
        keep it current. The channel is subscribed before the state is read, so
        nothing committed after that read can be missed. With digests on, a replay's
        digest is read too (a snapshot knows its own), unless `digest` is False."""
        if self.draining or not self.running:
            raise Draining()
        feed = self._retain(viewer.account_id)
        account = viewer.account_id
        self._opening[account] = self._opening.get(account, 0) + 1
        try:
            assert feed.ready is not None
            await asyncio.shield(feed.ready)
            digests = self._digest_every > 0
            epoch = since.epoch if since is not None else None
            start = await resume.start(self._source, viewer, since, max_changes=self._max_changes,
                                       budget=self._replay_budget, digests=digests,
                                       read_log=lambda _, cursor, limit: self._log_since(feed, epoch, cursor, limit))
            TALLY.starts[start.outcome] += 1
            for message in start.messages:
                outbox.offer(message)
            sub = Subscriber(viewer, outbox, start.epoch, start.cursor, digest=start.digest, who=who,
                             offered=start.cursor)
            if digests and digest and start.digest is None:
                base = feed.digest_at(viewer)  # a connection of the viewer left current: no read
                if base is None or base.epoch != sub.epoch or base.cursor < sub.cursor:
                    base = await self._digest_base(viewer)
                sub.learn(base)
            await feed.join(sub)
            return sub
        except BaseException:
            await self._release(viewer.account_id)
            raise
        finally:
            left = self._opening[account] - 1
            if left:
                self._opening[account] = left
            else:
                del self._opening[account]

    async def _digest_base(self, viewer: Viewer) -> resume.DigestBase:
        """A resumed client's digest base. While other opens of its account are under way (a
        resume storm) they share one read of the whole account's view, each taking its own
        sessions from it by the rule: one read per account, not one per socket."""
        account = viewer.account_id
        shared = self._bases.get(account)
        if shared is None and (viewer.whole_account or self._opening.get(account, 0) > 1):
            shared = self._bases[account] = asyncio.ensure_future(self._source.view(account, None, True))
            shared.add_done_callback(lambda done: self._bases.pop(account, None) if self._bases.get(account) is done
                                     else None)
        if shared is None:
            return await resume.digest_base(self._source, viewer)
        return resume.base_of(await asyncio.shield(shared), viewer)

    async def _log_since(self, feed: Feed, epoch: str | None, cursor: int, limit: int) -> LogRead:
        """A resuming client's position and log. From what the account's feed relayed, when it
        holds every change after the client's position (a reconnect within what it remembers:
        no read at all). Else, while other opens of its account are under
        way (a resume storm: its clients were mostly current at the same cursor when they
        dropped) they share one read from the first one's cursor, each taking the changes after
        its own: one read per account and cursor, not one per socket. A read that started from
        after a client's cursor, or came back trimmed, is no use to it: it reads its own.
        Every shared read started after the account's feed was subscribed (`open` waits for
        it), so the feed carries everything after it, as after a read of the client's own."""
        account = feed.account_id
        held = feed.recent(epoch, cursor, limit)
        if held is not None:
            self.stats.resumed_from_memory += 1
            return held
        shared = self._logs.get(account)
        if shared is not None and shared[0] <= cursor:
            log = await asyncio.shield(shared[1])
            if log.changes is not None:
                return LogRead(log.epoch, log.head, [c for c in log.changes if c.cursor > cursor])
        elif shared is None and self._opening.get(account, 0) > 1:
            read = asyncio.ensure_future(self._source.log_since(account, cursor, limit))
            self._logs[account] = (cursor, read)
            read.add_done_callback(lambda done: self._logs.pop(account, None)
                                   if self._logs.get(account, (0, None))[1] is done else None)
            return await asyncio.shield(read)
        return await self._source.log_since(account, cursor, limit)

    async def close(self, sub: Subscriber) -> None:
        feed = self._feeds.get(sub.viewer.account_id)
        if feed is not None:
            feed.leave(sub)
        await self._release(sub.viewer.account_id)

    def acknowledged(self, sub: Subscriber, cursor: int, epoch: str | None) -> None:
        feed = self._feeds.get(sub.viewer.account_id)
        if feed is not None:
            feed.acknowledged(sub, cursor, epoch)

    def connections(self, account_id: str) -> list[tuple[Subscriber, Lag | None]]:
        """This process's live connections of the account (not long-poll requests), with their lag."""
        feed = self._feeds.get(account_id)
        if feed is None:
            return []
        return [(sub, feed.lag(sub)) for sub in feed.subs if sub.who is not None]

    def rebind(self, sub: Subscriber, viewer: Viewer) -> None:
        """The user's token now says other things about what they see: a new
        snapshot for the new view, in order with the relay."""
        feed = self._feeds.get(sub.viewer.account_id)
        if feed is not None:
            feed.rebind(sub, viewer)

    def _retain(self, account_id: str) -> Feed:
        lingering = self._lingering.pop(account_id, None)
        if lingering is not None:
            lingering.cancel()
        feed = self._feeds.get(account_id)
        if feed is None:
            feed = Feed(account_id, self._source, self.stats, max_changes=self._max_changes,
                        digest_every=self._digest_every, conflate_lag_ms=self._conflate_lag_ms,
                        clock=self._clock)
            feed.start()
            self._feeds[account_id] = feed
        if feed.ready is None or (feed.ready.done() and (feed.ready.cancelled() or feed.ready.exception())):
            feed.ready = asyncio.ensure_future(self._broker.subscribe(account_id))
        self._refs[account_id] = self._refs.get(account_id, 0) + 1
        return feed

    async def _release(self, account_id: str) -> None:
        refs = self._refs.get(account_id, 0) - 1
        if refs > 0:
            self._refs[account_id] = refs
            return
        self._refs.pop(account_id, None)
        if self._linger > 0 and self.running and account_id in self._feeds and account_id not in self._lingering:
            self._lingering[account_id] = asyncio.get_running_loop().call_later(
                self._linger, self._linger_over, account_id)
            return
        await self._stop_feed(account_id)

    def _linger_over(self, account_id: str) -> None:
        self._lingering.pop(account_id, None)
        if self._refs.get(account_id, 0) > 0:
            return
        task = asyncio.ensure_future(self._stop_feed(account_id))
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)

    async def _stop_feed(self, account_id: str) -> None:
        feed = self._feeds.pop(account_id, None)
        if feed is None:
            return
        if feed.ready is not None and not feed.ready.done():
            feed.ready.cancel()
        await feed.stop()
        if account_id in self._feeds:
            return  # a new subscriber arrived meanwhile and kept the channel
        try:
            await self._broker.unsubscribe(account_id)
        except Exception as exc:  # noqa: BLE001 - the broker resyncs its set on reconnect
            log.warning("unsubscribe %s failed: %s", account_id, exc)

    # -- from the broker ------------------------------------------------------------
    def _on_change(self, change: Change) -> None:
        feed = self._feeds.get(change.account_id)
        if feed is not None:
            feed.publish(change)

    def _on_subscribed(self, account_id: str) -> None:
        feed = self._feeds.get(account_id)
        if feed is not None:
            feed.resubscribed()
            feed.check()

    async def _check_periodically(self) -> None:
        """Pub/sub can lose a message silently; a lost last change has no later
        change to reveal the gap. Comparing with the store's head finds it: each feed
        once an interval, in its account's part of it (app.live.spread), not all at once."""
        async for part in spread.ticks(self._check_interval):
            self.check(part, spread.PARTS)

    def check(self, part: int = 0, parts: int = 1) -> None:
        """Check the feeds of the accounts in `part` of `parts` (by default, all of them)."""
        for account_id, feed in list(self._feeds.items()):
            if spread.part_of(account_id, parts) == part:
                feed.check()


def build_hub(source: ChangeSource, broker: Broker, settings: Settings, lifetimes: Lifetimes = UNWATCHED) -> Hub:
    return Hub(
        source, broker,
        max_changes=settings.live_replay_max_changes,
        replay_budget=settings.live_queue_max_bytes // 2,
        check_interval=settings.live_position_check_seconds,
        digest_every=settings.live_digest_every,
        conflate_lag_ms=settings.live_conflate_lag_ms,
        linger_seconds=settings.live_feed_linger_seconds,
        lifetimes=lifetimes,
    )
