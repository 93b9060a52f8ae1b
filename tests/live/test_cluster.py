"""Two real server processes on one real Redis: changes cross processes through
the per-account channel; a process dying mid-stream loses and repeats nothing
for a client that resumes on the other; SIGTERM drains with reconnect hints."""

import asyncio
from collections.abc import Iterator

import pytest
import websockets

from app.storage import keys
from app.config import Settings
from tests.support.factories import event, token
from tests.support.live import LiveClient, post_events, rest_state
from tests.support.processes import ServiceProcess, channel_subscribers, service_pair

pytestmark = pytest.mark.cluster_too  # every test here runs on one node and on a Redis Cluster

ENV = {"LIVE_PING_INTERVAL": "0.5", "LIVE_PONG_TIMEOUT": "2", "LIVE_DRAIN_SPREAD_MS": "800"}


@pytest.fixture
def pair(clean_redis: str) -> Iterator[tuple[ServiceProcess, ServiceProcess]]:
    with service_pair(clean_redis, ENV) as processes:
        yield processes


def upsert(session: str, at: str = "2024-05-01T10:00:00Z", **fields: object) -> dict[str, object]:
    return event("session.upsert", "A1", session, at=at, session=fields)


async def test_an_event_posted_to_one_process_reaches_a_client_of_the_other(
        pair: tuple[ServiceProcess, ServiceProcess], settings: Settings, clean_redis: str) -> None:
    a, b = pair
    tok = token(settings, endpoint="E1")
    client = await LiveClient.connect(a.url, tok)
    await client.next("snapshot")
    [cursor] = await post_events(b.url, upsert("S1", endpointId="E1", callState="Ringing"))
    patch = await client.next("patch", timeout=30)  # how fast is bench's question; here: that it arrives
    assert patch["cursor"] == cursor and patch["ops"][0]["op"] == "add"
    assert client.state.sessions == (await rest_state(b.url, tok))[1]
    # Another account's changes never reach this process's channel subscription set.
    assert channel_subscribers(clean_redis, keys.live_channel("A1")) == 1
    assert channel_subscribers(clean_redis, keys.live_channel("A2")) == 0
    await client.close()


async def test_killing_a_process_mid_stream_then_resuming_on_the_other_loses_and_repeats_nothing(
        pair: tuple[ServiceProcess, ServiceProcess], settings: Settings) -> None:
    a, b = pair
    tok = token(settings, roles=("User", "Manager"))  # a manager sees every change: every cursor
    client = await LiveClient.connect(a.url, tok)
    await client.next("snapshot")
    total = 120

    async def produce() -> list[int]:
        cursors: list[int] = []
        for i in range(total):
            cursors += await post_events(b.url, upsert(f"S{i % 7}", at=f"2024-05-01T10:{i // 60:02d}:{i % 60:02d}Z",
                                                       endpointId=f"E{i % 3}", displayName=f"v{i}"))
            await asyncio.sleep(0.005)  # pacing, so that the kill falls mid-stream; nothing waits on it
        return cursors

    producer = asyncio.ensure_future(produce())
    while client.state.cursor < 30:
        await client.recv()
    a.stop("kill")  # SIGKILL: no goodbye
    with pytest.raises(websockets.ConnectionClosed):
        while True:
            await client.recv()
    cut = client.state.cursor
    assert cut < total

    resumed = await LiveClient.connect(b.url, tok, state=client.state, since=client.state.position)
    first = await resumed.next("resumed")
    assert first["cursor"] == cut
    await resumed.until(total, timeout=30)  # reading (and answering pings) while events still flow
    cursors = await producer
    received = [m["cursor"] for m in client.state.messages if m["type"] == "patch"]
    assert received == cursors == list(range(1, total + 1))  # each exactly once, in order
    assert client.state.resets == 0
    assert client.state.sessions == (await rest_state(b.url, tok))[1]
    await resumed.close()


async def test_sigterm_tells_clients_to_reconnect_elsewhere_then_closes(
        pair: tuple[ServiceProcess, ServiceProcess], settings: Settings) -> None:
    a, b = pair
    tok = token(settings)
    clients = [await LiveClient.connect(a.url, tok) for _ in range(5)]
    for c in clients:
        await c.next("snapshot")
    a.proc.terminate()
    delays = []
    for c in clients:
        hint = await c.next("reconnect")
        delays.append(hint["delayMs"])
        assert hint["reason"] == "shutdown" and 0 <= hint["delayMs"] <= 800
        assert await c.closed(5) == (3001, "shutdown, reconnect elsewhere")
    assert len(set(delays)) > 1  # jittered, not one thundering herd
    assert a.proc.wait(10) == 0 or a.proc.returncode is not None
    again = await LiveClient.connect(b.url, tok, state=clients[0].state, since=clients[0].state.position)
    assert (await again.next("resumed", "snapshot"))["type"] == "resumed"
    await again.close()
