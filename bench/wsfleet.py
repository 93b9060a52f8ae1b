"""Subscribed clients, thousands per process: the service's live protocol or Socket.IO's.

Each fleet process holds a slice of the sockets and obeys the orchestrator over a pipe:
connect (and wait for every initial state), reset/collect measurements, drop every socket,
and reconnect them all at once (the resume storm). A client keeps only its position, never
the sessions: the fleet must cost far less than the server it measures.

Latency: every event carries `bench:<time.time_ns() at send>`; a client takes its own
`time.time_ns()` when a frame arrives and records the difference (one clock, one machine)."""

from __future__ import annotations

import asyncio
import random
import re
import resource
import time
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import aiohttp
import msgspec

from bench import stats
from bench.workers import Worker, ask_all, run_async

STAMP = re.compile(r"bench:(\d{16,20})")
CONNECT_CONCURRENCY = 100
RECONNECT_DELAY = (0.05, 0.5)  # seconds, jittered: what a client does on a "reconnect" close code
MAX_RECONNECTS = 20
MAX_SETUP_FAILURES = 0.05  # share of sockets that may miss their initial state before a scenario fails


@dataclass(frozen=True)
class ClientSpec:
    kind: str  # "callstate" | "socketio"
    base: str  # ws://127.0.0.1:PORT
    token: str
    group: str  # what it sees: "<account>|*" (manager) or "<account>|<endpoint>"


class _Head(msgspec.Struct):
    type: str
    epoch: str | None = None
    cursor: int | None = None


_head = msgspec.json.Decoder(_Head)


@dataclass
class Measures:
    latencies: Any = field(default_factory=stats.samples)
    frames: int = 0
    bytes: int = 0
    last_ns: int = 0  # when the last patch frame arrived
    reconnects: int = 0  # after a close code in the reconnect range (3000-3499)
    kinds: Counter[str] = field(default_factory=Counter)
    closes: Counter[str] = field(default_factory=Counter)


class Client:
    def __init__(self, spec: ClientSpec, fleet: Fleet) -> None:
        self.spec = spec
        self.fleet = fleet
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.epoch: str | None = None
        self.cursor = 0
        self.ready = asyncio.Event()
        self.target = 0  # current once synced (snapshot or resumed) with changes applied up to here
        self.applied = 0  # cursor of the last snapshot or patch received
        self.synced = False
        self.current_at = 0  # time_ns when it became current
        self.task: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        self.ready.clear()
        self.synced = False
        self.applied = self.cursor
        s = self.spec
        if s.kind == "callstate":
            url = f"{s.base}/sessions/live"
            if self.epoch is not None:
                url += f"?since={self.epoch}:{self.cursor}"
            self.ws = await self.fleet.http.ws_connect(url, headers={"Authorization": f"Bearer {s.token}"},
                                                       max_msg_size=0, autoping=True)
        else:
            self.ws = await self.fleet.http.ws_connect(f"{s.base}/socket.io/?EIO=4&transport=websocket",
                                                       max_msg_size=0, autoping=True)
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        ws = self.ws
        assert ws is not None
        on_text = self._callstate if self.spec.kind == "callstate" else self._socketio
        try:
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    await on_text(msg.data)
                elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.ERROR):
                    break
        except (aiohttp.ClientError, ConnectionError):
            pass
        if self.fleet.closing:
            return
        code = ws.close_code
        self.fleet.measures.closes[str(code)] += 1
        if self.spec.kind == "callstate" and code is not None and 3000 <= code < 3500:
            asyncio.get_running_loop().create_task(self._reconnect())  # the protocol says: reconnect, resume

    async def _reconnect(self) -> None:
        for _ in range(MAX_RECONNECTS):
            await asyncio.sleep(random.uniform(*RECONNECT_DELAY))
            if self.fleet.closing:
                return
            self.fleet.measures.reconnects += 1
            try:
                await self.connect()
                return
            except (aiohttp.ClientError, ConnectionError, OSError):
                continue

    def _became_current(self) -> None:
        if not self.ready.is_set():
            self.current_at = time.time_ns()
            self.ready.set()

    async def _callstate(self, text: str) -> None:
        now = time.time_ns()
        m = self.fleet.measures
        head = _head.decode(text)
        m.kinds[head.type] += 1
        if head.type == "patch":
            m.frames += 1
            m.bytes += len(text)
            m.last_ns = now
            for stamp in STAMP.findall(text):
                m.latencies.append(now - int(stamp))
        elif head.type == "ping":
            await self.ws.send_str('{"type":"pong"}')  # type: ignore[union-attr]
        if head.epoch is not None:
            self.epoch = head.epoch
        if head.cursor is None:
            return
        if head.type == "snapshot":
            self.applied = self.cursor = head.cursor
            self.synced = True
        elif head.type == "patch":
            self.applied = max(self.applied, head.cursor)
        elif head.type == "resumed":
            self.synced = True
        self.cursor = max(self.cursor, head.cursor)
        if self.synced and self.applied >= self.target:
            self._became_current()

    async def _socketio(self, text: str) -> None:
        now = time.time_ns()
        m = self.fleet.measures
        if text.startswith("42"):
            if text.startswith('42["patch"'):
                m.kinds["patch"] += 1
                m.frames += 1
                m.bytes += len(text)
                m.last_ns = now
                for stamp in STAMP.findall(text):
                    m.latencies.append(now - int(stamp))
            elif text.startswith('42["state"'):
                m.kinds["state"] += 1
                self._became_current()
        elif text == "2":
            await self.ws.send_str("3")  # type: ignore[union-attr]
        elif text.startswith("0{"):
            await self.ws.send_str("40" + msgspec.json.encode({"token": self.spec.token}).decode())  # type: ignore[union-attr]
        elif text.startswith("44"):
            m.closes["refused"] += 1

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self.task is not None:
            await asyncio.gather(self.task, return_exceptions=True)


class Fleet:
    def __init__(self) -> None:
        self.http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, force_close=False))
        self.clients: list[Client] = []
        self.measures = Measures()
        self.closing = False

    async def connect(self, specs: list[ClientSpec], timeout: float) -> tuple[Any, ...]:
        start = time.monotonic()
        sem = asyncio.Semaphore(CONNECT_CONCURRENCY)
        new = [Client(s, self) for s in specs]
        errors: list[str] = []

        async def one(c: Client) -> None:
            async with sem:
                try:
                    await c.connect()
                    await asyncio.wait_for(c.ready.wait(), timeout)
                except Exception as exc:  # noqa: BLE001 - counted and reported
                    errors.append(f"{type(exc).__name__}: {exc}")

        await asyncio.gather(*(one(c) for c in new))
        self.clients += new
        m = self.measures
        return ("connected", len(new) - len(errors), len(errors), errors[0] if errors else "",
                time.monotonic() - start, m.reconnects, dict(m.closes))

    def collect(self) -> tuple[str, Measures, float]:
        ru = resource.getrusage(resource.RUSAGE_SELF)
        return "measures", self.measures, ru.ru_utime + ru.ru_stime

    async def disconnect(self, forget: bool = False) -> tuple[str, int]:
        self.closing = True
        await asyncio.gather(*(c.close() for c in self.clients))
        self.closing = False
        n = len(self.clients)
        if forget:
            self.clients = []
        return "disconnected", n

    async def resume(self, targets: dict[str, int], timeout: float) -> tuple[str, int, list[int], int]:
        """Every socket reconnects at once; report when the storm began and when each client
        was current again (ns, on the shared clock)."""
        for c in self.clients:
            c.target = targets.get(c.spec.group, c.cursor)
            c.current_at = 0
        start = time.time_ns()

        async def one(c: Client) -> None:
            try:
                await c.connect()
                await asyncio.wait_for(c.ready.wait(), timeout)
            except Exception:  # noqa: BLE001, S110 - a client that never got current is counted
                pass

        await asyncio.gather(*(one(c) for c in self.clients))
        done = [c.current_at for c in self.clients if c.current_at]
        return "resumed", start, done, len(self.clients) - len(done)

    async def close(self) -> None:
        await self.disconnect()
        await self.http.close()


def worker(conn: Connection) -> None:
    run_async(_serve(conn))


async def _serve(conn: Connection) -> None:
    fleet = Fleet()
    loop = asyncio.get_running_loop()
    try:
        while True:
            msg = await loop.run_in_executor(None, conn.recv)
            op = msg[0]
            if op == "exit":
                break
            if op == "connect":
                conn.send(await fleet.connect(msg[1], msg[2]))
            elif op == "reset":
                fleet.measures = Measures()
                conn.send(("reset",))
            elif op == "count":
                conn.send(("count", fleet.measures.frames, fleet.measures.last_ns))
            elif op == "collect":
                conn.send(fleet.collect())
            elif op == "disconnect":
                conn.send(await fleet.disconnect(forget=msg[1]))
            elif op == "resume":
                conn.send(await fleet.resume(msg[1], msg[2]))
            else:
                conn.send(("error", f"unknown fleet command {op!r}"))
    finally:
        await fleet.close()


# -- the orchestrator's side ---------------------------------------------------------------------


@dataclass
class Setup:
    seconds: float
    reconnects: int  # since the last reset: the server closed sockets with a "reconnect" code
    closes: dict[str, int]
    failed: int = 0  # never got their initial state (tolerated up to MAX_SETUP_FAILURES)
    first_error: str = ""

    @property
    def troubled(self) -> bool:
        return bool(self.reconnects or self.closes or self.failed)

    def describe(self) -> str:
        text = f"{self.seconds:.1f}s"
        if self.reconnects or self.closes:
            text += f", after {self.reconnects} reconnects (server closes {self.closes})"
        if self.failed:
            text += f"; {self.failed} never got their initial state ({self.first_error})"
        return text


@dataclass
class FleetResult:
    latencies: Any
    frames: int
    bytes: int
    last_ns: int
    reconnects: int
    kinds: Counter[str]
    closes: Counter[str]
    cpu: float


class Fleets:
    """`count` fleet processes; clients are dealt round-robin."""

    def __init__(self, count: int) -> None:
        self.workers = [Worker("bench.wsfleet:worker") for _ in range(count)]

    @property
    def pids(self) -> list[int]:
        return [w.pid for w in self.workers]

    def connect(self, specs: list[ClientSpec], timeout: float = 60.0) -> Setup:
        """Connect every client (dealt round-robin) and wait until each has its initial state."""
        n = len(self.workers)
        for i, w in enumerate(self.workers):
            w.send(("connect", specs[i::n], timeout))
        answers = [w.recv(timeout * 4 + 60) for w in self.workers]
        failed = sum(a[2] for a in answers)
        first = next((a[3] for a in answers if a[3]), "")
        if failed > MAX_SETUP_FAILURES * len(specs):
            raise RuntimeError(f"{failed} of {len(specs)} sockets did not get their initial state: {first}")
        closes: Counter[str] = Counter()
        for a in answers:
            closes.update(a[6])
        return Setup(max(a[4] for a in answers), sum(a[5] for a in answers), dict(closes), failed, first)

    def reset(self) -> None:
        ask_all(self.workers, ("reset",))

    def collect(self) -> FleetResult:
        out = FleetResult(stats.samples(), 0, 0, 0, 0, Counter(), Counter(), 0.0)
        for _, m, cpu in ask_all(self.workers, ("collect",)):
            out.latencies.extend(m.latencies)
            out.frames += m.frames
            out.bytes += m.bytes
            out.last_ns = max(out.last_ns, m.last_ns)
            out.reconnects += m.reconnects
            out.kinds.update(m.kinds)
            out.closes.update(m.closes)
            out.cpu += cpu
        return out

    def frames(self) -> int:
        return sum(a[1] for a in ask_all(self.workers, ("count",)))

    def drain(self, expected: int, quiet: float = 0.5, cap: float = 15.0) -> None:
        """Wait until `expected` frames arrived, or nothing arrived for `quiet` seconds."""
        deadline = time.monotonic() + cap
        last, since = -1, time.monotonic()
        while time.monotonic() < deadline:
            n = self.frames()
            if n >= expected:
                return
            if n != last:
                last, since = n, time.monotonic()
            elif time.monotonic() - since >= quiet:
                return
            time.sleep(0.1)

    def disconnect(self, forget: bool = False) -> None:
        """Close every socket; `forget` drops the clients too (else they can resume)."""
        ask_all(self.workers, ("disconnect", forget))

    def resume(self, targets: dict[str, int], timeout: float = 60.0) -> tuple[int, list[int], int]:
        answers = ask_all(self.workers, ("resume", targets, timeout), timeout * 2 + 60)
        return (min(a[1] for a in answers), [t for a in answers for t in a[2]], sum(a[3] for a in answers))

    def stop(self) -> None:
        for w in self.workers:
            w.stop()
