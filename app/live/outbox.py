"""A bounded per-connection send queue.

The relay never waits for a socket: it offers messages here and moves on. A
connection whose queue would pass its byte bound is finished with "slow"
instead of growing memory; the client reconnects and resumes.

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

from app.live.protocol import Close, CloseCode, Message
from app.observability.tally import TALLY


class Outbox:
    __slots__ = ("_bytes", "_items", "_on_ready", "_wake", "aborted", "closing", "max_bytes", "stalled")

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

    def __len__(self) -> int:
        return len(self._items) if self._items is not None else 0

    @property
    def queued_bytes(self) -> int:
        return self._bytes

    def offer(self, message: Message) -> bool:
        """Queue a message; False if the connection is finishing or just became
        too slow. One message larger than the bound still fits an empty queue."""
        if self.closing is not None:
            return False
        items = self._items
        if items is None:
            items = self._items = deque()
        elif items and self._bytes + message.size > self.max_bytes:
            TALLY.slow_closes += 1
            self.finish(Close.of(CloseCode.SLOW), flush=False)
            return False
        items.append(message)
        self._bytes += message.size
        if len(items) == 1:
            self._ready()
        return True

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
