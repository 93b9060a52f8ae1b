"""The uvicorn WebSocket protocol the service runs (app.live.uvicorn_ws): uvicorn's
websockets-sansio minus the handshake objects it would keep, with a lighter inbox
and writable flag. Their semantics, and a real server using them."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import uvicorn
import websockets

from app.__main__ import websocket_options
from app.live.uvicorn_ws import Flag, Inbox, LiveWebSocketProtocol
from tests.support.processes import free_port


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
                                           **websocket_options(65536)))
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
            await ws.send("again")
            assert await ws.recv() == "again"
    finally:
        server.should_exit = True
        await task
