"""What drills drive the service with: a steady event stream that records what was
acknowledged, live viewers that resume across failures and count what they saw, and
sockets that stop reading."""

from __future__ import annotations

import asyncio
import copy
import json
import socket
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import jsonpatch
import websockets

from app.auth.tokens import mint_token
from bench.drills.processes import EVENTS_KEY, JWT_SECRET

ACCOUNT = "D1"


def manager_token(ttl: int = 3600) -> str:
    """Sees the whole account: every change is a patch, so cursors are consecutive."""
    return mint_token(JWT_SECRET.encode(), sub="drill", account_id=ACCOUNT, endpoint_id="E1",
                      roles=["User", "Manager"], ttl_seconds=ttl)


def upsert(session: str, n: int, pad: str = "") -> dict[str, Any]:
    return {"type": "session.upsert", "eventId": f"{session}-{n}", "accountId": ACCOUNT, "sessionId": session,
            "occurredAt": "2024-05-01T10:00:00Z",
            "session": {"endpointId": "E1", "callState": "Ringing", "displayName": f"{n}{pad}"}}


async def active_ids(base: str) -> set[str]:
    async with httpx.AsyncClient(timeout=10) as http:
        r = await http.get(base + "/sessions/active", headers={"Authorization": f"Bearer {manager_token()}"})
        r.raise_for_status()
        return {s["id"] for s in r.json()["sessions"]}


@dataclass
class Stream:
    """POSTs one new session per event at `rate`/s to `bases` in turn; what came back."""

    bases: list[str]
    rate: float
    accepted: list[str] = field(default_factory=list)
    unavailable: int = 0  # 503: the store was down, the client retries elsewhere / later
    failed: int = 0  # connection errors and anything else
    first_503: float | None = None
    recovered_at: float | None = None  # first acknowledgement after a 503 / failure
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        n = 0
        down = False
        async with httpx.AsyncClient(timeout=5) as http:
            while not self._stop.is_set():
                sid = f"S{n}"
                base = self.bases[n % len(self.bases)]
                n += 1
                try:
                    r = await http.post(base + "/events", content=json.dumps({"events": [upsert(sid, n)]}),
                                        headers={"Authorization": f"Bearer {EVENTS_KEY}",
                                                 "Content-Type": "application/json"})
                    status = r.status_code
                except httpx.HTTPError:
                    status = 0
                if status == 200:
                    self.accepted.append(sid)
                    if down and self.recovered_at is None:
                        self.recovered_at = time.monotonic()
                    down = False
                else:
                    down = True
                    if status == 503:
                        self.unavailable += 1
                        self.first_503 = self.first_503 or time.monotonic()
                    else:
                        self.failed += 1
                await asyncio.sleep(1 / self.rate)

    def stop(self) -> None:
        self._stop.set()


@dataclass
class Viewer:
    """A live client that reconnects (to the next base on failure) and resumes from its
    position, keeping state with `jsonpatch`; counts gaps, duplicates, resets, reconnects."""

    bases: list[str]
    state: dict[str, Any] = field(default_factory=dict)
    epoch: str | None = None
    cursor: int = -1
    gaps: int = 0
    duplicates: int = 0
    resets: int = 0
    reconnects: int = 0
    closes: dict[int, int] = field(default_factory=dict)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _live: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        i = 0
        while not self._stop.is_set():
            base = self.bases[i % len(self.bases)]
            since = f"?since={self.epoch}:{self.cursor}" if self.epoch else ""
            try:
                async with websockets.connect(base.replace("http", "ws", 1) + "/sessions/live" + since,
                                              additional_headers={"Authorization": f"Bearer {manager_token()}"},
                                              open_timeout=5, max_size=None) as ws:
                    async for text in ws:
                        self._apply(json.loads(text))
                        if self._stop.is_set():
                            return
            except websockets.ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd else 1006
                self.closes[code] = self.closes.get(code, 0) + 1
                i += code != 3001  # a drain's reconnect hint says "elsewhere" too
            except (OSError, websockets.InvalidHandshake, TimeoutError):
                i += 1
            if self._stop.is_set():
                return
            self.reconnects += 1
            await asyncio.sleep(0.1)

    def _apply(self, msg: dict[str, Any]) -> None:
        kind = msg["type"]
        if kind == "snapshot":
            self.resets += bool(msg.get("reset"))
            self.state = copy.deepcopy(msg["sessions"])
            self.epoch, self.cursor = msg["epoch"], msg["cursor"]
            self._live.set()
        elif kind == "patch":
            if msg["cursor"] <= self.cursor:
                self.duplicates += 1
                return
            if msg["cursor"] != self.cursor + 1:
                self.gaps += 1
            self.state = jsonpatch.apply_patch(self.state, msg["ops"])
            self.cursor = msg["cursor"]
        elif kind == "resumed":
            if (msg["epoch"], msg["cursor"]) != (self.epoch, self.cursor):
                self.gaps += 1
            self._live.set()

    async def live(self, timeout: float = 10) -> None:
        await asyncio.wait_for(self._live.wait(), timeout)

    def stop(self) -> None:
        self._stop.set()


def stalled_socket(port: int, token: str | None) -> socket.socket:
    """A WebSocket that completes its handshake (authenticated if `token`) and never reads."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small window
    sock.settimeout(5)
    sock.connect(("127.0.0.1", port))
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    sock.sendall((f"GET /sessions/live HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                  f"Sec-WebSocket-Version: 13\r\n{auth}\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head and (chunk := sock.recv(1)):
        head += chunk
    if not head.startswith(b"HTTP/1.1 101"):
        sock.close()
        raise ConnectionError(f"handshake refused: {head[:40]!r}")
    return sock


def server_sockets(pid: int, port: int) -> int:
    """Established TCP connections on the service's port (from /proc: the server side)."""
    count = 0
    for table in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{table}") as f:
                lines = f.read().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            if int(local.rsplit(":", 1)[1], 16) == port and state == "01":
                count += 1
    return count


def show(name: str, figures: dict[str, Any]) -> dict[str, Any]:
    print(f"{name}: " + ", ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in figures.items()),
          flush=True)
    return figures
