"""uvicorn's `websockets-sansio` protocol, minus what it keeps per socket and never needs,
plus three fixes of how it ends a connection.

On an idle live socket uvicorn's protocol holds about 21 KiB. Parts of it are
spent on nothing once the socket is open, and this subclass removes them; the
protocol's behaviour (framing, limits, close handshake, back-pressure) is uvicorn's:

- the parsed upgrade request (`self.request`: a websockets `Request` and its
  `Headers`) and the 101 response it built (`self.response`), which uvicorn
  never reads again once the response is sent (the ASGI scope already has the
  request headers): about 4.5 KiB, dropped when the handshake is over. websockets'
  own parser keeps the request too, as a local of `ServerProtocol.parse`, the generator
  that then parses the socket's frames: its headers are emptied (`Headers.clear()`,
  public), 3.5 KiB per socket (tracemalloc, issue 14);
- an `asyncio.Queue` for inbound events and an `asyncio.Event` for "writable":
  five deques between them (about 3.8 KiB, each empty deque being 600 bytes),
  replaced by `Inbox` and `Flag`, which do what uvicorn asks of them (put,
  get, empty; set, clear, wait) with a waiter made only while someone waits; `receive`
  (uvicorn's, four lines) awaits the inbox's waiter itself, not a `get` coroutine that
  awaits it (224 bytes of frame per idle socket);
- the instance dict: uvicorn sets 37 attributes, past what CPython shares between the
  dicts of one class's instances (30), so each instance had a dict of its own, 1.6 KiB.
  This class names them all in `__slots__` (`UVICORN_ATTRIBUTES`; 8 bytes each, no dict);
- a coroutine frame: what this class does once the app has returned is in the task's done
  callback (`on_task_complete`), not in a `run_asgi` override awaiting uvicorn's (224 bytes).

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
`handle_connect`, `start_keepalive`, `data_received`, `send`, `receive`, `on_task_complete` and `shutdown`
methods (reading `conn`, `close_timer`, `handshake_*`, `close_sent`), and stores every attribute
it sets in slots. What it buys (`python -m bench --only memory`): 21.2 KiB per idle socket with
the stock class, 15.1 KiB with the queue, event and handshake objects gone (the previous session),
and the headers, dict and frame above (issue 14: bench/README.md, "Issue 14: memory per idle
socket"), and the three fixes above. uvicorn is pinned (>=0.54,<0.55);
tests/live/test_uvicorn_ws.py runs this class on a real uvicorn server and checks the stock
class still has everything overridden here (and sets no attribute the slots do not name), so
an upgrade that moves them fails loudly.

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
            await self.arrival()
        return self.get_nowait()

    def arrival(self) -> asyncio.Future[None]:
        """A future done once something is put (await it, then `get_nowait`): waiting on it
        costs no coroutine frame of its own, as `get`'s would while a socket idles."""
        if self._waiter is not None and not self._waiter.done():  # (a done one was cancelled)
            raise RuntimeError("concurrent receive() on one WebSocket")
        waiter = self._waiter = asyncio.get_running_loop().create_future()
        return waiter

    def get_nowait(self) -> Any:
        if not self._items:
            raise asyncio.QueueEmpty
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


# Every attribute uvicorn's protocol sets on an instance (tests/live/test_uvicorn_ws.py checks a live
# one has nothing else): as slots of the subclass, not entries of an instance dict.
UVICORN_ATTRIBUTES = (
    "app", "app_state", "asgi_version", "client", "close_sent", "close_timeout", "close_timer", "config", "conn",
    "connections", "curr_msg_data_type", "default_headers", "disconnected", "frames", "handshake_complete",
    "handshake_initiated", "initial_response", "last_ping_rtt", "logger", "loop", "pending_ping_payload",
    "ping_interval", "ping_sent_at", "ping_timeout", "ping_timer", "pong_timer", "queue", "read_paused", "request",
    "response", "root_path", "scheme", "scope", "server", "tasks", "transport", "writable",
)


class LiveWebSocketProtocol(WebSocketsSansIOProtocol):
    __slots__ = UVICORN_ATTRIBUTES

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
        # websockets' parser keeps the request in its frame (a local of ServerProtocol.parse,
        # which then parses frames for the socket's life): its headers go, by their public clear().
        event.headers.clear()

    def start_keepalive(self) -> None:
        # Called once, right after the 101 response was written: it is not needed again.
        self.response: Any = None
        super().start_keepalive()

    async def receive(self) -> Any:
        # uvicorn's, awaiting the inbox's future itself rather than a coroutine that awaits it.
        inbox = self.queue
        while inbox.empty():
            await inbox.arrival()
        message = inbox.get_nowait()
        if self.read_paused and inbox.empty():
            self.read_paused = False
            self.transport.resume_reading()
        return message

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

    def on_task_complete(self, task: asyncio.Task[None]) -> None:
        # The app's task (run_asgi) is done: here rather than in a run_asgi override, whose
        # coroutine frame would live as long as the socket.
        super().on_task_complete(task)
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
