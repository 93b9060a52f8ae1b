"""Conflation against a real server process on real Redis: a client reading far more slowly
than changes come stays exact at every message it reads, gets far fewer messages than were
published, is never disconnected, and the server's send queue stays bounded."""

import asyncio
import copy
import json
import re
import socket
from typing import Any

import httpx
import websockets

from app.config import Settings
from tests.support.factories import event, token
from tests.support.live import LiveClient, State, post_events, rest_state, ws_url
from tests.support.processes import ServiceProcess

QUEUE = 65_536
SESSIONS = 20
BATCHES = 250  # x 20 changes of ~3 KB: 15 MB, several times what loopback's kernel buffers hold (~3 MB here)
PUBLISHED = SESSIONS * BATCHES


def metric(text: str, name: str) -> float:
    found = re.search(rf"^{name} (\S+)$", text, re.M)
    assert found, name
    return float(found.group(1))


async def test_a_slow_reader_is_conflated_and_stays_exact(clean_redis: str, settings: Settings) -> None:
    # The default LIVE_WRITE_TIMEOUT (10 s) and LIVE_SOCKET_SEND_BUFFER: a client that reads, only
    # slowly, must not be closed (with the kernel's autotuned 4 MB send buffer one write could block
    # for ~20 s at this reader's pace: Linux wakes a writer once about half the buffer has gone).
    proc = ServiceProcess(clean_redis, env={"LIVE_QUEUE_MAX_BYTES": str(QUEUE), "LIVE_DIGEST_EVERY": "1",
                                            "METRICS_TOKEN": "m"})
    try:
        tok = token(settings, roles=("User", "Manager"))
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window: the server's queue fills
        sock.connect(("127.0.0.1", proc.port))
        ws = await websockets.connect(ws_url(proc.url), sock=sock, max_queue=1, max_size=None, compression=None,
                                      additional_headers={"Authorization": f"Bearer {tok}"})
        client = LiveClient(ws, State())
        await client.next("snapshot")

        truth: dict[int, dict[str, Any]] = {}  # REST's state at every cursor (one writer, serial)
        largest_queue = 0.0
        big = "x" * 3000

        async def write() -> None:
            # Batches that touch each session once: the state at any cursor inside a batch is the
            # one before it with the sessions committed up to that cursor as REST shows them after.
            nonlocal largest_queue
            before: dict[str, Any] = {}
            async with httpx.AsyncClient(timeout=10) as http:
                for batch in range(BATCHES):
                    names = [f"S{i}" for i in range(SESSIONS)]
                    cursors = await post_events(proc.url, *[event(
                        "session.upsert", "A1", name,
                        session={"endpointId": "E1", "callState": ("Ringing", "Connected")[batch % 2],
                                 "consoleData": f"{batch}-{big}"}) for name in names])
                    position, after = await rest_state(proc.url, tok)
                    assert position.endswith(f":{cursors[-1]}") and len(cursors) == SESSIONS
                    for cursor in cursors:  # (the batch's events may commit in any order)
                        truth[cursor] = {**before, **{n: after[n] for n, c in zip(names, cursors) if c <= cursor}}
                    before = after
                    r = await http.get(proc.url + "/metrics", headers={"Authorization": "Bearer m"})
                    largest_queue = max(largest_queue, metric(r.text, "callstate_live_largest_queue_bytes"))

        writer = asyncio.create_task(write())
        seen: list[tuple[int, dict[str, Any]]] = []
        while not writer.done():  # one message every 50 ms: far slower than the writer offers
            message = await client.recv(timeout=15)
            if message["type"] in ("patch", "snapshot"):
                seen.append((message["cursor"], copy.deepcopy(client.state.sessions)))
            await asyncio.sleep(0.05)
        await writer
        last = max(truth)
        while client.state.cursor < last:  # then at full speed, up to the end
            message = await client.recv(timeout=15)
            if message["type"] in ("patch", "snapshot"):
                seen.append((message["cursor"], copy.deepcopy(client.state.sessions)))

        for cursor, sessions in seen:
            assert sessions == truth[cursor], f"the client's state at {cursor} is not REST's"
        assert client.state.sessions == (await rest_state(proc.url, tok))[1]
        patches = [m for m in client.state.messages if m["type"] == "patch"]
        assert len(patches) < PUBLISHED / 3, len(patches)  # what the kernel buffers held, then conflated ones
        # Conflated: merged patches (more than one session), or snapshots where smaller (`reset`).
        merged = [m for m in patches if len({op["path"].split("/")[1] for op in m["ops"]}) > 1]
        resets = [m for m in client.state.messages if m["type"] == "snapshot" and m.get("reset")]
        assert merged or resets
        print(f"{PUBLISHED} published, {len(patches)} patches read ({len(merged)} merged), {len(resets)} resets")
        async with httpx.AsyncClient(timeout=10) as http:
            scrape = (await http.get(proc.url + "/metrics", headers={"Authorization": "Bearer m"})).text
        assert metric(scrape, "callstate_live_conflations_total") > 0
        assert metric(scrape, "callstate_live_slow_consumer_closes_total") == 0
        # Bounded: the queue's bound, plus at most one conflated message (smaller than a snapshot:
        # 20 sessions of ~3 KB).
        assert largest_queue <= QUEUE + 20 * 3500, largest_queue
        await client.close()
    finally:
        proc.stop()


async def test_acks_show_lag_and_a_client_that_applies_too_slowly_is_conflated(
        clean_redis: str, settings: Settings) -> None:
    proc = ServiceProcess(clean_redis, env={"LIVE_CONFLATE_LAG_MS": "300", "METRICS_TOKEN": "m"})
    try:
        tok = token(settings, sub="mgr", roles=("User", "Manager"))
        client = await LiveClient.connect(proc.url, tok, header=True)
        await client.next("snapshot")
        async with httpx.AsyncClient(base_url=proc.url, timeout=10) as http:
            async def connections(bearer: str = tok) -> httpx.Response:
                return await http.get("/live/connections", headers={"Authorization": f"Bearer {bearer}"})

            [row] = (await connections()).json()["connections"]
            assert row["userId"] == "mgr" and row["transport"] == "websocket" and row["acked"] is None
            assert (await connections(token(settings))).status_code == 403  # a plain User
            assert (await http.get("/live/connections")).status_code == 401

            cursor = (await post_events(proc.url, event("session.upsert", "A1", "S0", session={"endpointId": "E1"})))[0]
            await client.until(cursor)
            await client.ws.send(json.dumps({"type": "ack", "cursor": cursor, "epoch": client.state.epoch}))
            for _ in range(100):  # until the server has taken the ack
                [row] = (await connections()).json()["connections"]
                if row["acked"] == cursor:
                    break
                await asyncio.sleep(0.05)
            assert row["acked"] == cursor and row["lagCursors"] == 0 and row["lagMs"] == 0
            scrape = (await http.get("/metrics", headers={"Authorization": "Bearer m"})).text
            assert metric(scrape, "callstate_live_arrival_to_ack_seconds_count") == 1

            # Now it reads but does not acknowledge: 300 ms after the first unacknowledged change
            # arrived, the server holds its patches; they come as one once it acknowledges.
            first = (await post_events(proc.url, event("session.upsert", "A1", "S0", session={"callState": "Connected"})))[0]
            await client.until(first)
            await asyncio.sleep(0.5)
            later = [(await post_events(proc.url, event("session.upsert", "A1", f"S{n}", session={
                "endpointId": "E1", "callState": "Ringing"})))[0] for n in range(1, 11)]
            for _ in range(100):
                [row] = (await connections()).json()["connections"]
                if row["conflations"]:
                    break
                await asyncio.sleep(0.05)
            assert row["conflations"] == 1 and row["lagCursors"] == later[-1] - cursor and row["lagMs"] >= 300
            assert client.state.cursor == first  # nothing after the hold began was sent
            await client.ws.send(json.dumps({"type": "ack", "cursor": first, "epoch": client.state.epoch}))
            merged = await client.next("patch")
            assert merged["cursor"] == later[-1] and len(merged["ops"]) == 10  # ten adds, one message
            assert client.state.sessions == (await rest_state(proc.url, tok))[1]
        await client.close()
    finally:
        proc.stop()
