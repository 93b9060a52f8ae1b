"""uvicorn's `websockets-sansio` protocol, minus what it keeps per socket and never needs,
plus three fixes of how it ends a connection.

On an idle live socket uvicorn's protocol holds about 21 KiB. Two parts of it are
spent on nothing once the socket is open, and this subclass removes them; the
protocol's behaviour (framing, limits, close handshake, back-pressure) is uvicorn's:

- the parsed upgrade request (`self.request`: a websockets `Request` and its
  `Headers`) and the 101 response it built (`self.response`), which uvicorn
  never reads again once the response is sent (the ASGI scope already has the
  request headers): about 4.5 KiB, dropped when the handshake is over;
- an `asyncio.Queue` for inbound events and an `asyncio.Event` for "writable":
  five deques between them (about 3.8 KiB, each empty deque being 600 bytes),
  replaced by `Inbox` and `Flag`, which do what uvicorn asks of them (put,
  get, empty; set, clear, wait) with a waiter made only while someone waits.

The fixes (each absent from the stock class, which `UVICORN_WS=websockets-sansio` shows):

- a handshake websockets cannot parse (a header line over 8 KiB, more than 128 headers:
  uvicorn's HTTP parser let it through) is answered (431, else 400) and closed. The stock
  class feeds the bytes to websockets, which refuses them and queues its answer, but never
  writes that answer out: the socket hangs until the client gives up;
- a connection whose writes are paused (a reader that stopped reading) when the app has
  returned, when the close handshake times out, or when the server shuts down, is aborted:
  `transport.close()` would first wait for the peer to read what is buffered, i.e. forever;
- a handshake refused with an HTTP response (the denial extension) counts as complete, so
  uvicorn does not log "ASGI callable returned without completing handshake" for it (as its
  wsproto class already does; uvicorn PR #3138).

The reach-in, kept to this module: uvicorn has no public way to change what its protocol
keeps per socket or how it ends one, so this subclasses its private
`uvicorn.protocols.websockets.websockets_sansio_impl.WebSocketsSansIOProtocol` and replaces,
by name, its `queue`, `writable`, `request` and `response` attributes and its
`handle_connect`, `start_keepalive`, `data_received`, `send`, `run_asgi` and `shutdown`
methods (reading `conn`, `close_timer`, `handshake_*`, `close_sent`). What it buys, measured
by the previous session (`python -m bench --only memory`): 21.2 KiB per idle socket with the
stock class, 15.1 KiB with this one, and the three fixes above. uvicorn is pinned (>=0.54,<0.55);
tests/live/test_uvicorn_ws.py runs this class on a real uvicorn server and checks the stock
class still has everything overridden here, so an upgrade that moves them fails loudly.

It also sets each live socket's kernel send buffer (LIVE_SOCKET_SEND_BUFFER, in `connection_made`,
the public asyncio protocol method) so that a slow reader's writes block only briefly.

Selected by `app.__main__.websocket_options` (and `--ws` in the Procfile); the `uvicorn_ws`
setting (`UVICORN_WS=websockets-sansio`) runs the stock class, for comparisons."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections import deque
from typing import Any, ClassVar

from http import HTTPStatus

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request


class Inbox:
    """A FIFO with one consumer (the ASGI app's `receive`)."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: deque[Any] | None = None
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: Any) -> None:
        if self._items is None:
            self._items = deque()
        self._items.append(item)
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self) -> Any:
        while not self._items:
            if self._waiter is not None:
                raise RuntimeError("concurrent receive() on one WebSocket")
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                if self._waiter is waiter:
                    self._waiter = None
        assert self._items is not None
        item = self._items.popleft()
        if not self._items:
            self._items = None
        return item

    def empty(self) -> bool:
        return not self._items


class Flag:
    """`asyncio.Event`'s set / clear / is_set / wait, without a deque per instance."""

    __slots__ = ("_set", "_waiters")

    def __init__(self, value: bool = False) -> None:
        self._set = value
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> bool:
        if self._set:
            return True
        waiter = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            if self._waiters is not None and waiter in self._waiters:
                self._waiters.remove(waiter)
        return True


class LiveWebSocketProtocol(WebSocketsSansIOProtocol):
    # LIVE_SOCKET_SEND_BUFFER, set once by the app's start-up (app.composition): the kernel send
    # buffer asked for each live socket; 0 leaves the kernel's autotuning (up to tcp_wmem's max).
    send_buffer_bytes: ClassVar[int] = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue: Any = Inbox()
        self.writable: Any = Flag(True)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        # Linux wakes a writer on a full socket only once about half of what it queued has gone:
        # with the autotuned 4 MB a client that reads, only slowly, can block one write for tens
        # of seconds, past LIVE_WRITE_TIMEOUT. A bounded buffer keeps blocked writes short, and
        # what is stale in flight small (the send queue conflates the rest: docs/protocol.md).
        sock = transport.get_extra_info("socket")
        if self.send_buffer_bytes and sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.send_buffer_bytes)

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        # The scope was built from it; a refused handshake (not 101) has been answered.
        self.request: Any = None

    def start_keepalive(self) -> None:
        # Called once, right after the 101 response was written: it is not needed again.
        self.response: Any = None
        super().start_keepalive()

    # -- ending connections (see the module docstring) ---------------------------------
    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if not self.handshake_initiated and self.conn.handshake_exc is not None:
            self._refuse_unreadable_handshake()

    def _refuse_unreadable_handshake(self) -> None:
        answer = b"".join(self.conn.data_to_send())  # websockets' 431 (or 414), if it made one
        if not answer:
            answer = self.conn.reject(HTTPStatus.BAD_REQUEST, "Failed to open a WebSocket connection.\n").serialize()
        self.logger.info('%s - "WebSocket" refused: %s', _peer(self.client), self.conn.handshake_exc)
        self.handshake_initiated = self.handshake_complete = self.close_sent = True
        self.transport.write(answer)
        self.transport.close()

    async def send(self, message: Any) -> None:
        await super().send(message)
        kind = message["type"]
        if kind == "websocket.http.response.body" and not message.get("more_body", False):
            self.handshake_complete = True  # the denial is on the wire
        elif kind == "websocket.close" and self.close_timer is not None:
            # No close reply in time: abort, as a flushing close could wait forever.
            self.close_timer.cancel()
            self.close_timer = self.loop.call_later(self.close_timeout, self._abort_if_open)

    async def run_asgi(self) -> None:
        await super().run_asgi()
        if not self.writable.is_set():
            self._abort_if_open()  # the app gave up on a write that cannot complete

    def shutdown(self) -> None:
        super().shutdown()
        if not self.writable.is_set():
            self._abort_if_open()

    def _abort_if_open(self) -> None:
        self.close_timer = None
        if not self.disconnected:
            self.transport.abort()


def _peer(client: tuple[str, int] | None) -> str:
    return "%s:%d" % client if client else "-"
