"""A bounded per-connection send queue.

The relay never waits for a socket: it offers messages here and moves on. A
connection whose queue would pass its byte bound is finished with "slow"
instead of growing memory; the client reconnects and resumes."""

from __future__ import annotations

import asyncio
from collections import deque

from app.live.protocol import Close, CloseCode, Message


class Outbox:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._items: deque[Message] = deque()
        self._bytes = 0
        self._wake = asyncio.Event()
        self.closing: Close | None = None
        self.aborted = asyncio.Event()  # finished without flushing

    def __len__(self) -> int:
        return len(self._items)

    @property
    def queued_bytes(self) -> int:
        return self._bytes

    def offer(self, message: Message) -> bool:
        """Queue a message; False if the connection is finishing or just became
        too slow. One message larger than the bound still fits an empty queue."""
        if self.closing is not None:
            return False
        if self._items and self._bytes + message.size > self.max_bytes:
            self.finish(Close.of(CloseCode.SLOW), flush=False)
            return False
        self._items.append(message)
        self._bytes += message.size
        self._wake.set()
        return True

    def finish(self, close: Close, *, flush: bool) -> None:
        """End the connection: after what is queued (`flush`), or now."""
        if self.closing is not None:
            return
        self.closing = close
        if not flush:
            self._items.clear()
            self._bytes = 0
            self.aborted.set()
        self._wake.set()

    async def next(self) -> Message | None:
        """The next message to send; None once finished and flushed."""
        while not self._items:
            if self.closing is not None:
                return None
            self._wake.clear()
            await self._wake.wait()
        message = self._items.popleft()
        self._bytes -= message.size
        return message

    def drain(self) -> list[Message]:
        """Everything queued, now (long-poll)."""
        items = list(self._items)
        self._items.clear()
        self._bytes = 0
        return items

    async def wait(self) -> None:
        """Until something is queued or the outbox is finished."""
        while not self._items and self.closing is None:
            self._wake.clear()
            await self._wake.wait()
