"""Conflation against a real server process on real Redis: a client reading far more slowly
than changes come stays exact at every message it reads, gets far fewer messages than were
published, is never disconnected, and the server's send queue stays bounded."""

import asyncio
import copy
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
    # A write timeout past the test: Linux wakes a writer on a full socket only once about half of
    # what it queued has gone (3 MB here, so ~20 s at this reader's pace): a slow, reading client
    # can block one write longer than the default 10 s (docs/protocol.md, Acknowledgements).
    proc = ServiceProcess(clean_redis, env={"LIVE_QUEUE_MAX_BYTES": str(QUEUE), "LIVE_DIGEST_EVERY": "1",
                                            "LIVE_WRITE_TIMEOUT": "60", "METRICS_TOKEN": "m"})
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
