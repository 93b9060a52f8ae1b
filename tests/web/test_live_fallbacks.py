"""Fallbacks against a real server on real Redis: SSE with Last-Event-ID
resume, long-poll (data, reset, empty after wait, woken by a change), ETag/304."""

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import jsonpatch
import pytest

from app.config import Settings
from tests.support.factories import event, token
from tests.support.live import post_events, rest_state, sse_events
from tests.support.processes import ServiceProcess

pytestmark = pytest.mark.cluster_too  # every test here runs on one node and on a Redis Cluster


@pytest.fixture
def server(clean_redis: str) -> Iterator[ServiceProcess]:
    # A long-poll may wait up to a minute: longer than any client here waits for an answer, so a
    # poll that answers at all was answered by data or a change, not by its wait running out.
    proc = ServiceProcess(clean_redis, env={"LIVE_PING_INTERVAL": "0.3", "LIVE_POLL_MAX_WAIT": "60"})
    yield proc
    proc.stop()


def upsert(session: str, **fields: object) -> dict[str, object]:
    return event("session.upsert", "A1", session, session=fields)


def auth(tok: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tok}", **extra}


def apply(state: dict[str, Any], messages: list[dict[str, Any]]) -> dict[str, Any]:
    for m in messages:
        state = m["sessions"] if m["type"] == "snapshot" else jsonpatch.apply_patch(state, m["ops"])
    return state


# -- SSE -----------------------------------------------------------------------------------

async def read_sse(http: httpx.AsyncClient, url: str, headers: dict[str, str], until: Any,
                   started: asyncio.Event | None = None) -> list[tuple[str | None, str | None, dict[str, Any]]]:
    """The stream's events until `until(got)`; `started` is set once the first (snapshot or resumed) is in."""
    got: list[tuple[str | None, str | None, dict[str, Any]]] = []
    async with http.stream("GET", url, headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        async for item in sse_events(response):
            got.append(item)
            if started is not None:
                started.set()
            if until(got):
                break
    return got


async def test_sse_serves_the_same_messages_and_resumes_from_last_event_id(
        server: ServiceProcess, settings: Settings) -> None:
    tok = token(settings, endpoint="E1")
    await post_events(server.url, upsert("S1", endpointId="E1", callState="Ringing"))
    url = server.url + "/sessions/live"
    async with httpx.AsyncClient(timeout=30) as http:
        headers = auth(tok, Accept="text/event-stream")
        streaming = asyncio.Event()
        first = asyncio.ensure_future(read_sse(http, url, headers, lambda got: any(
            d["type"] == "patch" for _, _, d in got), streaming))
        await asyncio.wait_for(streaming.wait(), 30)  # the snapshot is in: the next change is a patch
        await post_events(server.url, upsert("S1", callState="Connected"))
        got = await asyncio.wait_for(first, 30)
        snapshot = got[0][2]
        assert snapshot["type"] == "snapshot" and got[0][0] == f"{snapshot['epoch']}:1"
        state = apply({}, [d for _, _, d in got if d["type"] in ("snapshot", "patch")])
        last_id = [i for i, _, d in got if d["type"] == "patch"][-1]
        assert last_id == f"{snapshot['epoch']}:2"

        # Disconnected: two changes happen; reconnecting with Last-Event-ID replays exactly them.
        await post_events(server.url, upsert("S2", endpointId="E1"), upsert("S1", callState="Hold"))
        again = await read_sse(http, url, {**headers, "Last-Event-ID": last_id},
                               lambda got: sum(d["type"] == "patch" for _, _, d in got) == 2)
        assert again[0][2] == {"type": "resumed", "epoch": snapshot["epoch"], "cursor": 2, "replayed": 2}
        assert [i for i, _, d in again if d["type"] == "patch"] == [f"{snapshot['epoch']}:3", f"{snapshot['epoch']}:4"]
        state = apply(state, [d for _, _, d in again if d["type"] == "patch"])
        assert state == (await rest_state(server.url, tok))[1]

        # A Last-Event-ID from a lost epoch gets a reset snapshot.
        reset = await read_sse(http, url, {**headers, "Last-Event-ID": "gone:3"}, lambda got: True)
        assert reset[0][2]["type"] == "snapshot" and reset[0][2]["reset"] is True


async def test_sse_refuses_bad_credentials_before_streaming(server: ServiceProcess) -> None:
    async with httpx.AsyncClient(timeout=5) as http:
        r = await http.get(server.url + "/sessions/live", headers={"Accept": "text/event-stream"})
        assert r.status_code == 401 and r.json()["responseStatus"]["errorCode"]
        r = await http.get(server.url + "/sessions/live")
        assert r.status_code == 406


# -- long-poll ---------------------------------------------------------------------------

async def poll(base: str, tok: str, **params: Any) -> tuple[dict[str, Any], float]:
    """One long-poll (answered well within the server's 60 s cap, or httpx times out); how long it took."""
    started = time.monotonic()
    async with httpx.AsyncClient(timeout=30) as http:
        r = await http.get(base + "/sessions/changes", params=params, headers=auth(tok))
    assert r.status_code == 200, r.text
    return r.json(), time.monotonic() - started


async def live_starts(base: str, outcome: str) -> int:
    """The server's count of live subscriptions started with `outcome` (/metrics)."""
    async with httpx.AsyncClient(timeout=10) as http:
        text = (await http.get(base + "/metrics")).text
    line = f'callstate_live_starts_total{{outcome="{outcome}"}} '
    return next(int(float(row[len(line):])) for row in text.splitlines() if row.startswith(line))


async def until_started(base: str, outcome: str, count: int, timeout: float = 30) -> None:
    """Poll /metrics until `count` subscriptions have started with `outcome` (the polls are waiting)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (now := await live_starts(base, outcome)) < count:
        assert loop.time() < deadline, f"{now} of {count} {outcome} subscriptions after {timeout}s"
        await asyncio.sleep(0.05)


async def test_long_poll_data_reset_and_empty_after_wait(server: ServiceProcess, settings: Settings) -> None:
    tok = token(settings, endpoint="E1")
    first, _ = await poll(server.url, tok)  # no position yet: a snapshot
    assert [m["type"] for m in first["messages"]] == ["snapshot"] and first["cursor"] == 0
    since = f"{first['epoch']}:{first['cursor']}"

    await post_events(server.url, upsert("S1", endpointId="E1"), upsert("S2", endpointId="E9"),
                      upsert("S1", callState="Ringing"))
    data, _ = await poll(server.url, tok, since=since, wait=60)  # answered: the data was there, no wait
    assert [m["cursor"] for m in data["messages"]] == [1, 3] and data["cursor"] == 3
    state = apply(first["messages"][0]["sessions"], data["messages"])
    assert state == (await rest_state(server.url, tok))[1]

    empty, took = await poll(server.url, tok, since=f"{data['epoch']}:{data['cursor']}", wait=0.6)
    assert empty["messages"] == [] and empty["cursor"] == 3
    assert took >= 0.5  # it did wait: a lower bound, which load can only make truer

    reset, _ = await poll(server.url, tok, since="another-epoch:3")
    assert reset["messages"][0]["type"] == "snapshot" and reset["messages"][0]["reset"] is True
    assert reset["messages"][0]["sessions"] == state


async def test_long_poll_returns_as_soon_as_a_change_arrives(server: ServiceProcess, settings: Settings) -> None:
    tok = token(settings, endpoint="E1")
    manager = token(settings, sub="m", endpoint="E1", roles=("User", "Manager"))  # sees every change
    first, _ = await poll(server.url, tok)
    since = f"{first['epoch']}:0"
    resumed = await live_starts(server.url, "resumed")
    waiting = asyncio.ensure_future(poll(server.url, tok, since=since, wait=60))
    witness = asyncio.ensure_future(poll(server.url, manager, since=since, wait=60))
    await until_started(server.url, "resumed", resumed + 2)  # both polls are subscribed and waiting
    [hidden] = await post_events(server.url, upsert("S9", endpointId="E2"))  # not visible to E1
    seen, _ = await witness  # the change has been fanned out to this account's subscribers...
    assert [m["cursor"] for m in seen["messages"]] == [hidden]
    assert not waiting.done()  # ...and the E1 poll kept waiting
    [cursor] = await post_events(server.url, upsert("S1", endpointId="E1"))
    result, _ = await asyncio.wait_for(waiting, 30)  # woken by the change, long before its 60 s wait
    assert [m["cursor"] for m in result["messages"]] == [cursor]


async def test_long_poll_rejects_bad_input(server: ServiceProcess, settings: Settings) -> None:
    tok = token(settings)
    async with httpx.AsyncClient(timeout=5) as http:
        for params in ({"since": "e:x"}, {"wait": "soon"}):
            r = await http.get(server.url + "/sessions/changes", params=params, headers=auth(tok))
            assert r.status_code == 400
        assert (await http.get(server.url + "/sessions/changes")).status_code == 401


# -- ETag / 304 ----------------------------------------------------------------------------

async def test_active_sessions_etag_is_the_position_and_answers_304(server: ServiceProcess, settings: Settings) -> None:
    tok = token(settings, endpoint="E1")
    await post_events(server.url, upsert("S1", endpointId="E1"))
    async with httpx.AsyncClient(timeout=5) as http:
        url = server.url + "/sessions/active"
        r = await http.get(url, headers=auth(tok))
        etag = r.headers["etag"]
        assert r.status_code == 200 and etag.endswith(':1"')
        r = await http.get(url, headers=auth(tok, **{"If-None-Match": etag}))
        assert r.status_code == 304 and r.content == b"" and r.headers["etag"] == etag
        assert (await http.get(url, headers=auth(tok, **{"If-None-Match": "W/" + etag}))).status_code == 304
        xml = await http.get(url + "?format=xml", headers=auth(tok))
        assert xml.status_code == 200 and xml.headers["etag"] != etag
        assert (await http.get(url + "?format=xml", headers=auth(tok, **{"If-None-Match": etag}))).status_code == 200

        await post_events(server.url, upsert("S1", callState="Hold"))
        r = await http.get(url, headers=auth(tok, **{"If-None-Match": etag}))
        assert r.status_code == 200 and r.headers["etag"].endswith(':2"')
        # No credentials: still 401, never a 304.
        assert (await http.get(url, headers={"If-None-Match": etag})).status_code == 401

    # The ETag is a position a live client can resume from.
    poll_result, _ = await poll(server.url, tok, since=etag)
    assert [m["cursor"] for m in poll_result["messages"]] == [2]
