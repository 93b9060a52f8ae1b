"""Live-push test clients: a WebSocket client that keeps state with the
independent `jsonpatch` library, an SSE reader, and REST helpers."""

from __future__ import annotations

import asyncio
import copy
import json
from typing import Any

import httpx
import jsonpatch
import websockets
from websockets.asyncio.client import ClientConnection

EVENTS_KEY = "test-events-key"


def ws_url(base: str, path: str = "/sessions/live") -> str:
    return base.replace("http://", "ws://") + path


async def post_events(base: str, *events: dict[str, Any]) -> list[int]:
    """POST /events; the cursors of the applied events."""
    async with httpx.AsyncClient(timeout=10) as http:
        r = await http.post(base + "/events", json={"events": list(events)},
                            headers={"Authorization": f"Bearer {EVENTS_KEY}"})
    assert r.status_code == 200, r.text
    return [res["cursor"] for res in r.json()["results"] if "cursor" in res]


async def rest_state(base: str, token: str) -> tuple[str, dict[str, Any]]:
    """GET /sessions/active as (ETag position `E:C`, {id: session})."""
    async with httpx.AsyncClient(timeout=10) as http:
        r = await http.get(base + "/sessions/active", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    return r.headers["etag"].strip('"'), {s["id"]: s for s in r.json()["sessions"]}


class Gap(AssertionError):
    pass


class State:
    """A client's copy: snapshot, then patches applied with `jsonpatch`.
    Fails on any repeated or out-of-order cursor."""

    def __init__(self) -> None:
        self.sessions: dict[str, Any] = {}
        self.epoch: str | None = None
        self.cursor = -1
        self.messages: list[dict[str, Any]] = []
        self.resets = 0

    @property
    def position(self) -> str:
        return f"{self.epoch}:{self.cursor}"

    def apply(self, msg: dict[str, Any]) -> None:
        self.messages.append(msg)
        kind = msg["type"]
        if kind == "snapshot":
            self.sessions = copy.deepcopy(msg["sessions"])
            self.epoch, self.cursor = msg["epoch"], msg["cursor"]
            self.resets += bool(msg.get("reset"))
        elif kind == "patch":
            if msg["cursor"] <= self.cursor:
                raise Gap(f"patch {msg['cursor']} repeats or goes back (at {self.cursor})")
            self.sessions = jsonpatch.apply_patch(self.sessions, msg["ops"])
            self.cursor = msg["cursor"]
        elif kind == "resumed":
            if (msg["epoch"], msg["cursor"]) != (self.epoch, self.cursor):
                raise Gap(f"resumed at {msg['epoch']}:{msg['cursor']}, client was at {self.position}")
        elif kind == "ping" and msg.get("cursor") is not None:
            if msg["cursor"] < self.cursor:
                raise Gap(f"ping cursor {msg['cursor']} behind {self.cursor}")
            self.cursor = msg["cursor"]


class LiveClient:
    """One WebSocket to /sessions/live, answering pings unless told not to."""

    def __init__(self, ws: ClientConnection, state: State, auto_pong: bool = True) -> None:
        self.ws = ws
        self.state = state
        self.auto_pong = auto_pong

    @classmethod
    async def connect(cls, base: str, token: str, *, state: State | None = None, header: bool = False,
                      since: str | None = None, auto_pong: bool = True, **kw: Any) -> LiveClient:
        state = state or State()
        if header:
            query = f"?since={since}" if since else ""
            ws = await websockets.connect(ws_url(base, "/sessions/live" + query),
                                          additional_headers={"Authorization": f"Bearer {token}"}, **kw)
        else:
            ws = await websockets.connect(ws_url(base), **kw)
            auth: dict[str, Any] = {"type": "auth", "token": token}
            if since:
                auth["since"] = since
            await ws.send(json.dumps(auth))
        return cls(ws, state, auto_pong)

    async def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        msg: dict[str, Any] = json.loads(await asyncio.wait_for(self.ws.recv(), timeout))
        if msg["type"] == "ping" and self.auto_pong:
            await self.ws.send('{"type":"pong"}')
        self.state.apply(msg)
        return msg

    async def next(self, *kinds: str, timeout: float = 5.0) -> dict[str, Any]:
        """The next message of one of `kinds` (pings and others are applied and skipped)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            msg = await self.recv(max(0.01, deadline - loop.time()))
            if not kinds or msg["type"] in kinds:
                return msg

    async def pump(self, seconds: float) -> list[dict[str, Any]]:
        """Keep reading (and answering pings) for `seconds`; what arrived."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        got: list[dict[str, Any]] = []
        while (left := deadline - loop.time()) > 0:
            try:
                got.append(await self.recv(left))
            except TimeoutError:
                break
        return got

    async def until(self, cursor: int, timeout: float = 10.0) -> None:
        """Read until the client's state is current at `cursor` (patch or ping)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.state.cursor < cursor:
            await self.recv(max(0.01, deadline - loop.time()))

    async def closed(self, timeout: float = 10.0) -> tuple[int | None, str | None]:
        """Read (and apply) everything until the server closes; its code and reason."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            while True:
                await self.recv(max(0.01, deadline - loop.time()))
        except websockets.ConnectionClosed as exc:
            await self.ws.close()  # waits for the TCP close, so no transport outlives the test
            return (exc.rcvd.code, exc.rcvd.reason) if exc.rcvd else (None, None)

    async def close(self) -> None:
        await self.ws.close()


async def sse_events(response: httpx.Response) -> Any:
    """Parse `text/event-stream` into (id, retry, data dict) tuples."""
    fields: dict[str, str] = {}
    async for line in response.aiter_lines():
        if line == "":
            if "data" in fields:
                yield fields.get("id"), fields.get("retry"), json.loads(fields["data"])
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
