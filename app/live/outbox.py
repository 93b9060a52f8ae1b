"""A bounded per-connection send queue, which conflates instead of growing.

The relay never waits for a socket: it offers messages here and moves on. When
a message would take the queue past its byte bound, the queue *conflates*
(docs/protocol.md "Conflation"): it drops its queued patches and snapshots (a queued ping
stays, without its position),
remembers the position the client's state will be at once what it already wrote
is applied (`conflate_from`: the first dropped patch's base), and takes no more
patches until its owner (the relay, asked through `on_overflow` once the writer has
taken everything else) hands it the one patch, or snapshot, that brings the client
from there to now (`conflated`). So a
slow reader stays exact and continuous with fewer, larger messages, and memory
stays bounded. Only when nothing can be conflated (a queue of control messages
alone) is the connection finished with "slow"; a transport that stops taking
writes altogether is the writer's write timeout, not this.

Whoever writes the queue to a socket is told through `on_ready` (called when
the first message arrives in an empty queue, and when the queue is finished):
a WebSocket or SSE connection then writes it from the process's shared pump,
without a task of its own. A long-poll request awaits `wait()` instead; the
event that needs is only made when someone waits, so an idle queue costs a few
pointers."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from app.domain.positions import Position
from app.live import protocol
from app.live.protocol import Close, CloseCode, Message
from app.observability.tally import TALLY


# Dropped when conflating: what carries or moves the client's position.
_POSITIONAL = frozenset({"patch", "snapshot", "ping"})
_PLAIN_PING = protocol.ping(None)  # a keepalive that claims no position (sent while conflating)
SNAPSHOT_NEEDED = Position("", -1)  # conflate_from when a dropped snapshot leaves no base: reset


class Outbox:
    __slots__ = ("_bytes", "_held", "_items", "_on_ready", "_requested", "_wake", "aborted", "closing",
                 "conflate_from", "conflations", "max_bytes", "on_overflow", "stalled")

    def __init__(self, max_bytes: int, on_ready: Callable[[], None] | None = None) -> None:
        self.max_bytes = max_bytes
        # Made when something is queued, dropped once emptied: an empty deque is 600 bytes,
        # and an idle connection's queue is empty nearly all the time.
        self._items: deque[Message] | None = None
        self._bytes = 0
        self._on_ready = on_ready
        self._wake: asyncio.Event | None = None
        self.closing: Close | None = None
        self.aborted = False  # finished without flushing
        # A write to this connection's socket is blocked (its reader stopped reading): set and
        # cleared by the writer; a drain does not wait on such a connection.
        self.stalled = False
        # Conflating (see the module doc): where the client's state will be once what was
        # written is applied; SNAPSHOT_NEEDED when only a snapshot can follow. None: not.
        self.conflate_from: Position | None = None
        self.on_overflow: Callable[[], None] | None = None  # the relay's: send the conflated message
        self._requested = False  # on_overflow called for this conflation
        self._held = False  # conflating until release() (ack-driven; see hold)
        self.conflations = 0

    def __len__(self) -> int:
        return len(self._items) if self._items is not None else 0

    @property
    def queued_bytes(self) -> int:
        return self._bytes

    def offer(self, message: Message) -> bool:
        """Queue a message; False if the connection is finishing or just became
        too slow. One message larger than the bound still fits an empty queue.
        While conflating, a patch is taken as covered by the conflated one to
        come (True), a ping goes without its position, a snapshot ends it."""
        if self.closing is not None:
            return False
        if (self.conflate_from is None and self._items and self._bytes + message.size > self.max_bytes
                and not self._conflate()):
            return self._too_slow()
        if self.conflate_from is not None:
            if message.kind == "patch":
                return True
            if message.kind == "ping":
                message = _PLAIN_PING
            elif message.kind == "snapshot":
                self._drop_positional()
                self._end_conflation()
            elif self._items and self._bytes + message.size > self.max_bytes:
                return self._too_slow()  # a flood of control messages: nothing left to conflate
        self._append(message)
        return True

    def conflated(self, message: Message | None) -> None:
        """The end of conflating: the message that brings the client from `conflate_from`
        to now (None: nothing it sees changed), queued whatever its size."""
        if self.closing is not None or self.conflate_from is None:
            return
        self._end_conflation()
        if message is not None:
            self._append(message)

    def unstalled(self) -> None:
        """The writer's blocked write went through: the socket takes data again."""
        self.stalled = False
        if self.conflate_from is not None:
            self._request_conflation()

    def _too_slow(self) -> bool:
        TALLY.slow_closes += 1
        self.finish(Close.of(CloseCode.SLOW), flush=False)
        return False

    def _append(self, message: Message) -> None:
        items = self._items
        if items is None:
            items = self._items = deque()
        items.append(message)
        self._bytes += message.size
        if len(items) == 1:
            self._ready()

    def _conflate(self) -> bool:
        """Drop the queued positional messages and begin conflating; False when there
        are none (or no owner to conflate for)."""
        if self.on_overflow is None or self._items is None:
            return False
        start = self._start()
        if start is None:
            return False
        self._begin(start)
        if not self._items and not self.stalled:
            self._request_conflation()  # the writer is idle: nothing will pop
        return True

    def hold(self, at: Position) -> None:
        """Conflate from now until `release` (the client acknowledged what it was sent): an
        acknowledging client's lag, not this queue, says it is behind. `at`: the client's
        position once it has applied what was offered, when nothing is queued."""
        if self.closing is not None or self.on_overflow is None:
            return
        self._held = True
        if self.conflate_from is None:
            self._begin(self._start() or at)

    def release(self) -> None:
        if self._held:
            self._held = False
            if self.conflate_from is not None:
                self._request_conflation()

    def _start(self) -> Position | None:
        """Where the client will be once it has what was written: the first queued patch's
        base (SNAPSHOT_NEEDED past a queued snapshot); None if nothing positional is queued."""
        start: Position | None = None
        for message in self._items or ():
            if message.kind == "snapshot":
                return SNAPSHOT_NEEDED
            if message.kind == "patch" and start is None:
                assert message.event_id is not None and message.base is not None
                start = Position(Position.parse(message.event_id).epoch, message.base)
        return start

    def _begin(self, start: Position) -> None:
        self._drop_positional()
        self.conflate_from = start
        self.conflations += 1
        TALLY.conflations += 1

    def _request_conflation(self) -> None:
        """Ask the owner for the conflated message, once per conflation, when the writer
        has taken everything else: so a burst of changes costs one merge, not one each."""
        if not self._requested and not self._held and self.on_overflow is not None:
            self._requested = True
            self.on_overflow()

    def _end_conflation(self) -> None:
        self.conflate_from = None
        self._requested = False

    def _drop_positional(self) -> None:
        """Drop the queued patches and snapshots. A queued ping stays, without its position:
        the connection is waiting for its pong, and a client that never got it would be
        closed for not answering (3012) while it reads."""
        if self._items is None:
            return
        kept = deque(_PLAIN_PING if m.kind == "ping" else m for m in self._items
                     if m.kind not in _POSITIONAL or m.kind == "ping")
        self._items = kept or None
        self._bytes = sum(m.size for m in kept)

    def finish(self, close: Close, *, flush: bool) -> None:
        """End the connection: after what is queued (`flush`), or now."""
        if self.closing is not None:
            return
        self.closing = close
        if not flush:
            self._items = None
            self._bytes = 0
            self.aborted = True
        self._ready()

    def abandon(self, close: Close) -> None:
        """`finish(close, flush=False)`, also when already finishing: drop what is queued
        and tell the writer to stop waiting on the socket (a drain, for a stalled one)."""
        if self.closing is None:
            self.closing = close
        self._items = None
        self._bytes = 0
        self.aborted = True
        self._ready()

    def pop(self) -> Message | None:
        """The next message to send, if any (never waits)."""
        items = self._items
        if not items:
            return None
        message = items.popleft()
        self._bytes -= message.size
        if not items:
            self._items = None
            if self.conflate_from is not None:
                self._request_conflation()
        return message

    def _ready(self) -> None:
        if self._on_ready is not None:
            self._on_ready()
        if self._wake is not None:
            self._wake.set()

    async def next(self) -> Message | None:
        """The next message to send; None once finished and flushed."""
        while not self._items:
            if self.closing is not None:
                return None
            await self._wait_once()
        return self.pop()

    def drain(self) -> list[Message]:
        """Everything queued, now (long-poll)."""
        items = list(self._items) if self._items is not None else []
        self._items = None
        self._bytes = 0
        if self.conflate_from is not None:
            self._request_conflation()
        return items

    async def wait(self) -> None:
        """Until something is queued or the outbox is finished."""
        while not self._items and self.closing is None:
            await self._wait_once()

    async def _wait_once(self) -> None:
        if self._wake is None:
            self._wake = asyncio.Event()
        self._wake.clear()
        await self._wake.wait()
