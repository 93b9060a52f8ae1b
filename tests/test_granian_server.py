"""`python -m app serve` under granian (SERVER=granian, app.granian_server): a real granian-served
process on real Redis, driven over real sockets. The live protocol holds there as under uvicorn
(snapshot, patches, resume, close codes, the SIGTERM drain), but for the one guarantee that
differs: an oversized inbound message is refused by the app after it was read (3504), where
uvicorn's frame parser closes with 1009 before buffering it (tests/live/test_socket.py)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest
import websockets

from app.config import Settings
from tests.support.factories import event, token
from tests.support.live import LiveClient, post_events, ws_url
from tests.support.processes import ServiceProcess

GRANIAN = {
    "SERVER": "granian", "LIVE_PING_INTERVAL": "0.3", "LIVE_PONG_TIMEOUT": "0.6", "LIVE_AUTH_TIMEOUT": "0.5",
}
# The drain test's sockets are idle: under granian every write completes on granian's thread, after
# `send` returned to the pump, so a socket whose ping is in flight at SIGTERM counts as blocked
# (outbox.stalled) and is dropped without its `reconnect` (docs/operations.md, "Server").
IDLE = {"SERVER": "granian", "LIVE_DRAIN_SPREAD_MS": "800"}


@pytest.fixture
def server(clean_redis: str) -> Iterator[ServiceProcess]:
    proc = ServiceProcess(clean_redis, env=GRANIAN)
    yield proc
    proc.stop()


def upsert(session: str, **fields: object) -> dict[str, object]:
    return event("session.upsert", "A1", session, session=fields)


async def test_the_process_is_served_by_granian(server: ServiceProcess) -> None:
    assert "server: granian" in server.output()
    assert "uvicorn" not in server.output().replace("server: granian", "")


async def test_snapshot_patches_and_resume(server: ServiceProcess, settings: Settings) -> None:
    await post_events(server.url, upsert("S1", endpointId="E1", callState="Ringing"))
    tok = token(settings, endpoint="E1")
    client = await LiveClient.connect(server.url, tok, header=True)
    assert (await client.next("snapshot"))["cursor"] == 1
    [cursor] = await post_events(server.url, upsert("S1", callState="Connected"))
    assert (await client.next("patch"))["ops"] == [{"op": "replace", "path": "/S1/callState", "value": "Connected"}]
    await client.close()
    [missed] = await post_events(server.url, upsert("S1", callState="Hold"))
    again = await LiveClient.connect(server.url, tok, state=client.state, since=client.state.position)
    assert (await again.next("resumed"))["cursor"] == cursor
    assert (await again.next("patch"))["cursor"] == missed
    assert again.state.sessions["S1"]["callState"] == "Hold"
    await again.close()


@pytest.mark.parametrize(("first", "code"), [
    ({"type": "auth", "token": "not-a-jwt"}, 3501),
    ({"type": "ping"}, 3500),
    ({"type": "ping", "pad": "x" * 65_536}, 3504),  # uvicorn: 1009, from the frame parser
])
async def test_refused_first_messages_close_with_their_codes(
        server: ServiceProcess, first: dict[str, str], code: int) -> None:
    async with websockets.connect(ws_url(server.url), max_size=None, compression=None) as ws:
        await ws.send(json.dumps(first))
        with pytest.raises(websockets.ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), 3)
    assert info.value.rcvd is not None and info.value.rcvd.code == code


async def test_a_peer_that_stops_answering_pings_is_closed(server: ServiceProcess, settings: Settings) -> None:
    client = await LiveClient.connect(server.url, token(settings), auto_pong=False)
    await client.next("snapshot")
    assert await client.closed(10) == (3012, "no pong")


async def test_sigterm_tells_idle_clients_to_reconnect_then_the_process_exits(
        clean_redis: str, settings: Settings) -> None:
    server = ServiceProcess(clean_redis, env=IDLE)
    try:
        clients = [await LiveClient.connect(server.url, token(settings)) for _ in range(5)]
        for c in clients:
            await c.next("snapshot")
        await asyncio.sleep(0.5)  # the snapshots' writes completed on the server's loop too: idle
        server.proc.terminate()
        for c in clients:
            hint = await c.next("reconnect")
            assert hint["reason"] == "shutdown" and 0 <= hint["delayMs"] <= 800
            assert await c.closed(5) == (3001, "shutdown, reconnect elsewhere")
        assert await asyncio.to_thread(server.proc.wait, 10) == 0
        assert "draining live connections" in server.output()
    finally:
        server.stop()
