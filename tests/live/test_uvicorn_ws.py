"""The uvicorn WebSocket protocol the service runs (app.live.uvicorn_ws): uvicorn's
websockets-sansio minus the handshake objects it would keep, with a lighter inbox
and writable flag. Their semantics, and a real server using them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from typing import Any

import msgspec
import pytest
import uvicorn
import websockets

from app.__main__ import websocket_options
from app.config import load_settings
from app.live.pump import resume, start
from app.live.uvicorn_ws import UVICORN_ATTRIBUTES, Flag, Inbox, LiveWebSocketProtocol
from tests.support.processes import free_port

SETTINGS = load_settings({"APP_ENV": "test"})
OPTIONS = websocket_options(SETTINGS)  # as `python -m app serve` runs uvicorn
STOCK = websocket_options(msgspec.structs.replace(SETTINGS, uvicorn_ws="websockets-sansio"))


async def test_inbox_is_fifo_wakes_its_reader_and_refuses_a_second_one() -> None:
    inbox = Inbox()
    assert inbox.empty()
    inbox.put_nowait(1)
    inbox.put_nowait(2)
    assert not inbox.empty()
    assert [await inbox.get(), await inbox.get()] == [1, 2]
    assert inbox.empty()
    reader = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError):
        await inbox.get()
    inbox.put_nowait(3)
    assert await reader == 3
    cancelled = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    inbox.put_nowait(4)  # a cancelled reader leaves nothing behind
    assert await inbox.get() == 4


async def test_flag_wakes_every_waiter_and_does_not_wait_while_set() -> None:
    flag = Flag(True)
    assert flag.is_set() and await flag.wait()
    flag.clear()
    waiters = [asyncio.create_task(flag.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    assert not any(w.done() for w in waiters)
    flag.set()
    assert await asyncio.gather(*waiters) == [True, True, True]


async def test_a_real_socket_keeps_no_handshake_and_echoes() -> None:
    async def echo(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        assert scope["type"] == "websocket" and dict(scope["headers"])[b"x-probe"] == b"1"
        await receive()
        await send({"type": "websocket.accept"})
        while (event := await receive())["type"] == "websocket.receive":
            await send({"type": "websocket.send", "text": event["text"]})

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(echo, host="127.0.0.1", port=port, log_level="warning",
                                           **OPTIONS))
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        async with websockets.connect(f"ws://127.0.0.1:{port}/", additional_headers={"X-Probe": "1"}) as ws:
            await ws.send("hello")
            assert await ws.recv() == "hello"
            [conn] = list(server.server_state.connections)
            assert isinstance(conn, LiveWebSocketProtocol)
            assert conn.request is None and conn.response is None
            assert isinstance(conn.queue, Inbox) and isinstance(conn.writable, Flag)
            assert vars(conn) == {}  # every attribute in a slot
            assert not handshake_request(conn).headers  # what websockets' parser keeps of it
            await ws.send("again")
            assert await ws.recv() == "again"
    finally:
        server.should_exit = True
        await task


# -- what the subclass relies on in uvicorn's private class -------------------------------

async def test_the_stock_class_still_keeps_what_the_subclass_replaces() -> None:
    """LiveWebSocketProtocol overrides attributes and methods of uvicorn's private
    websockets_sansio_impl by name. Renamed or gone in an upgrade, the subclass would
    quietly stop saving anything (or break): this fails instead."""
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await receive()

    stock_class = next(c for c in LiveWebSocketProtocol.__mro__ if c.__name__ == "WebSocketsSansIOProtocol")
    for name in ("handle_connect", "start_keepalive", "data_received", "send", "receive", "on_task_complete", "shutdown"):
        assert callable(getattr(stock_class, name)), name
    async with Served(app, STOCK) as served, websockets.connect(f"ws://127.0.0.1:{served.port}/"):
        while not served.connections:
            await asyncio.sleep(0.01)
        [conn] = served.connections
        assert type(conn) is stock_class
        seen = [conn.request, conn.response, conn.queue, conn.writable, conn.conn.handshake_exc,
                conn.close_timer, conn.handshake_initiated, conn.handshake_complete, conn.close_sent]
        attributes = set(vars(conn))
        parsed = handshake_request(conn)
    request, response, queue, writable, *_ = seen
    assert request is not None and response is not None and response.status_code == 101
    assert type(queue) is asyncio.Queue and type(writable) is asyncio.Event
    # The subclass's slots name every attribute the stock class sets (a new one would land in a dict).
    assert attributes == set(UVICORN_ATTRIBUTES)
    # websockets' parser keeps the request, headers and all, for the socket's life.
    assert parsed is request and parsed.headers["host"]


def handshake_request(conn: Any) -> Any:
    """The upgrade request websockets' parser keeps: a local of ServerProtocol.parse's frame,
    which goes on parsing frames for the socket's life."""
    return conn.conn.parser.gi_frame.f_locals["request"]


# -- how connections end (the fixes over the stock class) ---------------------------------

class Served:
    """`app` on a real uvicorn server with the service's WebSocket options, in this loop."""

    def __init__(self, app: Any, options: Any = OPTIONS) -> None:
        self.port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="info", log_config=None,
                                lifespan="off", **options)
        self.server = uvicorn.Server(config)

    async def __aenter__(self) -> "Served":
        self.task = asyncio.create_task(self.server.serve())
        while not self.server.started:
            await asyncio.sleep(0.01)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.should_exit = True
        await asyncio.wait_for(self.task, 10)

    @property
    def connections(self) -> set[Any]:
        return self.server.server_state.connections  # type: ignore[no-any-return]


def upgrade(extra: str = "") -> bytes:
    return (f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n").encode()


async def read_all(reader: asyncio.StreamReader) -> bytes:
    """Everything until the server closes (bounded: a hang fails the test, it does not stall it)."""
    return await asyncio.wait_for(reader.read(), 10)


@pytest.mark.parametrize("header", ["Cookie: ss-tok=" + "a" * 9000 + "\r\n",
                                    "".join(f"X-H{i}: v\r\n" for i in range(130))])
async def test_a_handshake_websockets_cannot_read_is_answered_and_closed(header: str) -> None:
    """uvicorn's HTTP parser passes it on; websockets refuses it (8 KiB lines, 128 headers)."""
    called: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        called.append(scope)

    async with Served(app) as served:
        reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
        writer.write(upgrade(header))
        answer = await read_all(reader)
        writer.close()
    assert answer.startswith(b"HTTP/1.1 431 ") and not called


async def test_a_refused_handshake_logs_no_error(caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.http.response.start", "status": 503, "headers": []})
        await send({"type": "websocket.http.response.body", "body": b"draining"})

    with caplog.at_level(logging.INFO, logger="uvicorn.error"):
        async with Served(app) as served:
            reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
            writer.write(upgrade())
            answer = await read_all(reader)
            writer.close()
            while served.connections:  # the ASGI task has returned and been reported
                await asyncio.sleep(0.01)
    assert answer.startswith(b"HTTP/1.1 503 ") and answer.endswith(b"draining")
    assert '"WebSocket /ws" 503' in caplog.text
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


def stalled_client_socket(port: int) -> socket.socket:
    """A client that completes the handshake and then never reads."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(upgrade())
    return sock


async def until_gone(served: Served) -> None:
    while served.connections:
        await asyncio.sleep(0.02)


async def test_a_connection_the_app_gave_up_writing_to_is_aborted() -> None:
    """The app stops after a write that cannot complete (as app.live.client does after
    LIVE_WRITE_TIMEOUT): the socket must go, not wait for the peer to read forever."""
    returned = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(0.5):
                while True:
                    await send({"type": "websocket.send", "bytes": b"x" * 65536})
        returned.set()

    async with Served(app) as served:
        sock = stalled_client_socket(served.port)
        try:
            await asyncio.wait_for(returned.wait(), 10)
            await asyncio.wait_for(until_gone(served), 10)
        finally:
            sock.close()


async def test_shutdown_does_not_wait_for_a_stalled_reader() -> None:
    blocked = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        with contextlib.suppress(OSError):  # ClientDisconnected, once the transport is gone
            while True:
                blocked.set()
                await send({"type": "websocket.send", "bytes": b"x" * 65536})

    served = Served(app)
    await served.__aenter__()
    sock = stalled_client_socket(served.port)
    try:
        await asyncio.wait_for(blocked.wait(), 10)
        [conn] = served.connections
        while conn.writable.is_set():
            await asyncio.sleep(0.02)
        await served.__aexit__()  # bounded: fails (TimeoutError) if shutdown waits on the socket
    finally:
        sock.close()


async def test_the_pump_writes_through_the_protocol_and_resumes_a_write_that_blocked() -> None:
    """app.live.pump steps uvicorn's `send` by hand: a write with room finishes in `start`,
    one to a reader that stopped reading suspends, and `resume` finishes it once it reads."""
    blocked, resumed = asyncio.Event(), asyncio.Event()
    writes: list[bool] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        frame = {"type": "websocket.send", "bytes": b"x" * 65536}
        while True:
            coro = send(frame)
            done, waiting = start(coro)
            writes.append(done)
            if not done:
                break
        blocked.set()
        await resume(coro, waiting)
        resumed.set()

    async with Served(app) as served:
        sock = stalled_client_socket(served.port)
        try:
            await asyncio.wait_for(blocked.wait(), 10)
            assert writes[0] and not writes[-1]  # the first had room; the last waited
            sock.setblocking(False)
            loop = asyncio.get_running_loop()
            async with asyncio.timeout(10):
                while not resumed.is_set():
                    assert await loop.sock_recv(sock, 1 << 20)
        finally:
            sock.close()
