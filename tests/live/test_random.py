"""Randomised: two real processes on one Redis, many users, many sessions, a few
hundred random events through the events API interleaved with the recorded,
signed Twilio callback flows. Every user's live client (real WebSockets, a
long-poller for one) applies patches with the independent `jsonpatch` library
and, at every cursor a REST snapshot was taken, equals `GET /sessions/active`.
Clients drop (cleanly or abruptly) at random points and resume on a random
process: nothing is lost, nothing repeated, nobody is reset.

Reproduce a failure with LIVE_RANDOM_SEED=<seed>."""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import jsonpatch
import pytest

from app.config import Settings
from tests.flows import FLOWS
from tests.flows.http import signed
from tests.support.factories import token
from tests.support.live import LiveClient, State, post_events
from tests.support.processes import ServiceProcess

SEED = int(os.environ.get("LIVE_RANDOM_SEED", "20240501"))
EVENTS = 300
ENV = {"LIVE_PING_INTERVAL": "0.3", "LIVE_PONG_TIMEOUT": "3", "PUBLIC_URL": ""}
ENDPOINTS = ["E1", "E2", "E3", "E4", "E-alice", "E-bob"]
SESSIONS = [f"R{i}" for i in range(1, 21)] + ["R.x", "a:b@c", "R+1"]
USERS: dict[str, tuple[str | None, tuple[str, ...]]] = {
    "mgr": (None, ("User", "Manager")), "admin": ("E1", ("Admin",)),
    **{f"u-{e}": (e, ("User",)) for e in ENDPOINTS}, "nobody": (None, ("User",)),
}
POLLER = "poller"  # a manager on the long-poll fallback
TEXT = ["", "a", "Ünïcødé ☎", "x/y~z", "line\nbreak", '"q"', "+15551234567"]


@pytest.fixture
def procs(clean_redis: str) -> Iterator[list[ServiceProcess]]:
    started: list[ServiceProcess] = []
    try:
        for _ in range(2):
            started.append(ServiceProcess(clean_redis, env=ENV))
        yield started
    finally:
        for p in started:
            p.stop()


def random_event(rng: random.Random, n: int) -> dict[str, Any]:
    minute = n if rng.random() > 0.1 else max(0, n - rng.randint(1, 20))  # some arrive late
    base = {"eventId": f"rnd-{n}", "accountId": "A1", "sessionId": rng.choice(SESSIONS),
            "occurredAt": f"2024-05-01T11:{minute // 60 % 60:02d}:{minute % 60:02d}Z"}
    kind = rng.choices(["upsert", "member", "log", "end"], weights=[6, 3, 2, 1])[0]
    if kind == "upsert":
        fields: dict[str, Any] = {"callState": rng.choice(["Ringing", "Connected", "Hold", "Passive"])}
        for name, values in (("endpointId", ENDPOINTS + [None]), ("answeredById", ENDPOINTS + [None]),
                             ("displayName", TEXT), ("queueState", ["Queued", "Connected", None]),
                             ("consoleData", TEXT)):
            if rng.random() < 0.5:
                fields[name] = rng.choice(values)
        return {**base, "type": "session.upsert", "session": fields}
    if kind == "member":
        member = {"identity": f"client:m{rng.randint(1, 3)}", "endpointId": rng.choice(ENDPOINTS + [None]),
                  "callState": rng.choice(["Ringing", "Connected", "Hold"])}
        return {**base, "type": "session.member", "member": member}
    if kind == "log":
        return {**base, "type": "session.log", "message": rng.choice(TEXT) or "-"}
    return {**base, "type": "session.end", "outcome": rng.choice(["Answered", "Missed", "Abandoned"])}


def actions(rng: random.Random) -> list[tuple[str, Any]]:
    """Random event batches, with every Twilio flow's steps woven in, in order."""
    out: list[tuple[str, Any]] = [("events", flow.opening) for flow in FLOWS.values() if flow.opening]
    batches: list[tuple[str, Any]] = []
    n = 0
    while n < EVENTS:
        size = rng.randint(1, 4)
        batches.append(("events", [random_event(rng, n + i) for i in range(size)]))
        n += size
    for flow in FLOWS.values():
        slots = sorted(rng.sample(range(len(batches) + len(flow.steps)), len(flow.steps)))
        for slot, step in zip(slots, flow.steps):
            batches.insert(slot, ("twilio", step))
    return out + batches


@dataclass
class Watcher:
    """One user's live client, run in the background, dropping and resuming."""

    name: str
    token: str
    state: State = field(default_factory=State)
    reconnects: int = 0
    target: int | None = None  # stop once current here


async def watch_socket(w: Watcher, procs: list[ServiceProcess], rng: random.Random) -> None:
    while w.target is None or w.state.cursor < w.target:
        proc = rng.choice(procs)
        since = w.state.position if w.state.epoch else None
        client = await LiveClient.connect(proc.url, w.token, state=w.state, header=rng.random() < 0.5, since=since)
        budget = rng.randint(2, 25)
        try:
            while budget > 0 and (w.target is None or w.state.cursor < w.target):
                await client.recv(timeout=5)
                budget -= 1
        finally:
            if rng.random() < 0.5:
                await client.close()
            else:  # abrupt: no close frame
                client.ws.transport.abort()
                await client.ws.wait_closed()
        w.reconnects += 1


async def watch_poll(w: Watcher, procs: list[ServiceProcess], rng: random.Random) -> None:
    async with httpx.AsyncClient(timeout=15) as http:
        while w.target is None or w.state.cursor < w.target:
            params: dict[str, Any] = {"wait": rng.choice([0, 0.2, 1])}
            if w.state.epoch:
                params["since"] = w.state.position
            r = await http.get(rng.choice(procs).url + "/sessions/changes", params=params,
                               headers={"Authorization": f"Bearer {w.token}"})
            assert r.status_code == 200, r.text
            body = r.json()
            for m in body["messages"]:
                w.state.apply(m)
            # The response's position works like a ping: the state is current there.
            w.state.apply({"type": "ping", "cursor": body["cursor"]})
            w.reconnects += 1


def verify(messages: list[dict[str, Any]], checkpoints: list[tuple[int, dict[str, Any]]]) -> int:
    """Replay a client's messages; at each checkpoint cursor its state must equal
    the REST snapshot taken there. Returns how many checkpoints were compared."""
    state: dict[str, Any] = {}
    cur: int | None = None
    pending = sorted(checkpoints, key=lambda c: c[0])
    checked = 0

    def through(upto: int) -> None:
        nonlocal checked
        while pending and pending[0][0] <= upto:
            at, expected = pending.pop(0)
            if cur is not None and at >= cur:
                assert state == expected, f"state at cursor {at} differs from REST"
                checked += 1

    for m in messages:
        if m["type"] == "snapshot":
            while pending and pending[0][0] < m["cursor"]:
                pending.pop(0)  # before this client had a state
            state, cur = m["sessions"], m["cursor"]
        elif m["type"] == "patch":
            through(m["cursor"] - 1)
            state, cur = jsonpatch.apply_patch(state, m["ops"]), m["cursor"]
        elif m["type"] == "ping" and m.get("cursor") is not None:
            through(m["cursor"])
    return checked


async def test_random_events_and_callbacks_reach_every_client_exactly(
        procs: list[ServiceProcess], settings: Settings) -> None:
    rng = random.Random(SEED)
    tokens = {name: token(settings, sub=name, endpoint=ep, roles=roles, ttl=3600) for name, (ep, roles) in USERS.items()}
    tokens[POLLER] = token(settings, sub=POLLER, endpoint=None, roles=("User", "Manager"))
    watchers = {name: Watcher(name, tok) for name, tok in tokens.items()}
    tasks = [asyncio.ensure_future((watch_poll if name == POLLER else watch_socket)(w, procs, random.Random(rng.random())))
             for name, w in watchers.items()]
    checkpoints: dict[str, list[tuple[int, dict[str, Any]]]] = {name: [] for name in watchers}
    head = 0
    try:
        async with httpx.AsyncClient(timeout=15) as http:
            for kind, payload in actions(rng):
                target = rng.choice(procs).url
                if kind == "events":
                    await post_events(target, *payload)
                else:
                    r = await http.post(**signed(payload, target))
                    assert r.status_code == 204, r.text
                for name, tok in tokens.items():  # REST at this cursor, for every user
                    r = await http.get(rng.choice(procs).url + "/sessions/active",
                                       headers={"Authorization": f"Bearer {tok}"})
                    cursor = int(r.headers["etag"].strip('"').split(":")[1])
                    checkpoints[name].append((cursor, {s["id"]: s for s in r.json()["sessions"]}))
                    head = max(head, cursor)
                if rng.random() < 0.2:
                    await asyncio.sleep(rng.random() * 0.05)
                for t in tasks:
                    if t.done():
                        t.result()  # surface a client failure now
        for w in watchers.values():
            w.target = head
        await asyncio.wait_for(asyncio.gather(*tasks), 60)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    assert head > EVENTS // 2
    compared = 0
    for name, w in watchers.items():
        assert w.state.resets == 0, name
        compared += verify(w.state.messages, checkpoints[name])
        assert w.state.sessions == checkpoints[name][-1][1], name
    seen = {name: len(checkpoints[name][-1][1]) for name in watchers}
    assert seen["nobody"] == 0 and seen["mgr"] > 0 and any(seen[f"u-{e}"] for e in ENDPOINTS)
    assert compared > 0.9 * sum(len(c) for c in checkpoints.values())
    assert sum(w.reconnects for w in watchers.values()) > 3 * len(watchers)
