"""Agent presence across two real service processes on one real Redis (and a Redis
Cluster): joins and leaves reach a Manager's live stream on the other process, a
process killed with SIGKILL has its endpoints leave once their leases run out, and
`GET /presence` answers pollers by the API's rules. The lease is made short here
(a setting); how long things take is the benchmarks' business, so every wait below
only bounds a hang."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import websockets

from app.config import Settings
from tests.support.factories import token
from tests.support.live import LiveClient, State, sse_events, ws_url
from tests.support.processes import ServiceProcess, service_pair

pytestmark = pytest.mark.cluster_too  # every test here runs on one node and on a Redis Cluster

LEASE, INTERVAL = 1.0, 0.25
ENV = {"PRESENCE_LEASE_SECONDS": str(LEASE), "PRESENCE_INTERVAL_SECONDS": str(INTERVAL),
       "PRESENCE_LEAVE_GRACE_SECONDS": "0.5"}
HANG = 30.0  # far past the leave bound (LEASE + INTERVAL); only a broken build waits this long


@pytest.fixture
def pair(clean_redis: str) -> Iterator[tuple[ServiceProcess, ServiceProcess]]:
    with service_pair(clean_redis, ENV) as processes:
        yield processes


async def watch(base: str, tok: str, listed: list[str] | None = None) -> LiveClient:
    """A live connection that asked for presence (`?presence=1`), its list read: `listed`."""
    ws = await websockets.connect(ws_url(base, "/sessions/live?presence=1"),
                                  additional_headers={"Authorization": f"Bearer {tok}"})
    client = LiveClient(ws, State())
    await client.next("snapshot")
    first = await client.next("presence")
    assert [e["endpointId"] for e in first["present"]] == (listed or [])
    return client


async def agent(base: str, settings: Settings, endpoint: str, user: str) -> LiveClient:
    client = await LiveClient.connect(base, token(settings, sub=user, endpoint=endpoint, name=user.title()))
    await client.next("snapshot")
    return client


async def presence_of(base: str, tok: str | None, **params: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {tok}"} if tok else {}
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.get(base + "/presence", params=params, headers=headers)


def present(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    return {e["endpointId"]: e for e in response.json()["endpoints"]}


async def test_a_killed_processes_agent_leaves_on_a_managers_stream_of_the_other_process(
        pair: tuple[ServiceProcess, ServiceProcess], settings: Settings) -> None:
    a, b = pair
    manager_token = token(settings, sub="boss", endpoint=None, roles=("User", "Manager"))
    manager = await watch(b.url, manager_token)
    alice = await agent(a.url, settings, "E1", "alice")
    joined = await manager.next("presence", timeout=HANG)
    assert joined["joined"] == {"endpointId": "E1", "userId": "alice", "name": "Alice",
                                "since": joined["joined"]["since"]}
    assert present(await presence_of(b.url, manager_token))["E1"]["connections"] == 1
    a.stop("kill")  # SIGKILL: no goodbye, no leave; only the lease can tell
    left = await manager.next("presence", timeout=HANG)
    assert left == {"type": "presence", "version": joined["version"] + 1, "left": joined["joined"]}
    assert present(await presence_of(b.url, manager_token)) == {}
    await alice.ws.close()
    await manager.close()


async def test_a_closed_connection_leaves_at_once_and_an_endpoint_stays_while_any_connection_does(
        pair: tuple[ServiceProcess, ServiceProcess], settings: Settings) -> None:
    a, b = pair
    manager_token = token(settings, sub="boss", endpoint="E9", roles=("User", "Manager"))
    manager = await watch(b.url, manager_token, listed=["E9"])  # a Manager with an endpoint is present too
    first = await agent(a.url, settings, "E1", "alice")
    second = await agent(b.url, settings, "E1", "alice")  # a second tab, on the other process
    assert (await manager.next("presence", timeout=HANG))["joined"]["endpointId"] == "E1"
    assert present(await presence_of(a.url, manager_token))["E1"]["connections"] == 2
    await first.close()
    seen = await presence_of(a.url, manager_token)
    while present(seen)["E1"]["connections"] != 1:  # the close reaches the server after our side's
        seen = await presence_of(a.url, manager_token)
    await second.close()
    assert (await manager.next("presence", timeout=HANG))["left"]["endpointId"] == "E1"
    assert list(present(await presence_of(a.url, manager_token))) == ["E9"]
    await manager.close()


async def test_an_agent_polling_sees_itself_and_may_not_ask_for_others(
        pair: tuple[ServiceProcess, ServiceProcess], settings: Settings) -> None:
    a, b = pair
    alice = await agent(a.url, settings, "E1", "alice")
    bob = await agent(b.url, settings, "E2", "bob")
    alice_token = token(settings, sub="alice", endpoint="E1")
    manager_token = token(settings, sub="boss", endpoint=None, roles=("User", "Manager"))
    mine = await presence_of(b.url, alice_token)
    assert list(present(mine)) == ["E1"] and mine.json()["accountId"] == "A1"
    assert list(present(await presence_of(a.url, manager_token))) == ["E1", "E2"]
    assert list(present(await presence_of(a.url, manager_token, endpointId="E2"))) == ["E2"]
    refused = await presence_of(a.url, alice_token, endpointId="E2")
    assert refused.status_code == 403 and refused.json()["responseStatus"]["errorCode"] == "Forbidden"
    bad = await presence_of(a.url, manager_token, endpointId="E 2\n")
    assert bad.status_code == 400 and bad.json()["responseStatus"]["errorCode"] == "ValidationError"
    anonymous = await presence_of(a.url, None)
    assert anonymous.status_code == 401 and "responseStatus" in anonymous.json()
    other_account = present(await presence_of(a.url, token(settings, account="A2", roles=("User", "Manager"))))
    assert other_account == {}
    await alice.close()
    await bob.close()


async def test_presence_is_asked_for_and_comes_on_sse_too(
        pair: tuple[ServiceProcess, ServiceProcess], settings: Settings) -> None:
    a, b = pair
    manager_token = token(settings, sub="boss", endpoint=None, roles=("User", "Manager"))
    plain = await LiveClient.connect(b.url, manager_token)  # did not ask: no presence messages
    await plain.next("snapshot")
    headers = {"Authorization": f"Bearer {manager_token}", "Accept": "text/event-stream"}
    async with httpx.AsyncClient(timeout=HANG) as http:
        bad = await http.get(b.url + "/sessions/live", params={"presence": "maybe"}, headers=headers)
        assert bad.status_code == 400 and bad.json()["responseStatus"]["errorCode"] == "ValidationError"
        async with http.stream("GET", b.url + "/sessions/live?presence=1", headers=headers) as response:
            events = sse_events(response)
            assert (await anext(events))[2]["type"] == "snapshot"
            _, _, listed = await anext(events)
            assert listed == {"type": "presence", "version": 0, "present": []}
            alice = await agent(a.url, settings, "E1", "alice")
            _, _, joined = await anext(events)
            assert joined["type"] == "presence" and joined["joined"]["endpointId"] == "E1"
    await alice.close()
    # The connection that did not ask got only what it always gets.
    messages = [m["type"] for m in await plain.pump(INTERVAL)]
    assert "presence" not in messages
    await plain.close()


async def test_a_token_refresh_moves_the_lease_and_resends_the_list_the_new_view_sees(
        pair: tuple[ServiceProcess, ServiceProcess], settings: Settings) -> None:
    a, b = pair
    manager_token = token(settings, sub="boss", endpoint=None, roles=("User", "Manager"))
    manager = await watch(a.url, manager_token)
    alice = await watch(b.url, token(settings, sub="alice", endpoint="E1"), listed=["E1"])
    assert (await manager.next("presence", timeout=HANG))["joined"]["endpointId"] == "E1"
    bob = await agent(a.url, settings, "E2", "bob")
    assert (await manager.next("presence", timeout=HANG))["joined"]["endpointId"] == "E2"
    # alice's token now says Manager, on another endpoint: her lease moves, and she sees the account.
    await alice.ws.send(json.dumps({"type": "auth", "token": token(settings, sub="alice", endpoint="E3",
                                                                    roles=("User", "Manager"))}))
    listed = await alice.next("presence", timeout=HANG)
    assert [e["endpointId"] for e in listed["present"]] == ["E2", "E3"]
    changes = [(await manager.next("presence", timeout=HANG)) for _ in range(2)]
    assert sorted((next(iter(set(m) & {"joined", "left"})), m.get("joined", m.get("left"))["endpointId"])
                  for m in changes) == [("joined", "E3"), ("left", "E1")]
    assert list(present(await presence_of(b.url, manager_token))) == ["E2", "E3"]
    for client in (manager, alice, bob):
        await client.close()


async def test_a_malformed_presence_parameter_refuses_the_websocket_handshake(
        pair: tuple[ServiceProcess, ServiceProcess], settings: Settings) -> None:
    a, _ = pair
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(ws_url(a.url, "/sessions/live?presence=yes-please"),
                                 additional_headers={"Authorization": f"Bearer {token(settings)}"})
    assert refused.value.response.status_code == 400
    assert b'"errorCode":"ValidationError"' in refused.value.response.body
