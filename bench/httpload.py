"""HTTP load in separate processes: closed loop (as fast as accepted) or open loop (fixed rate).

A request source is `module:factory(worker_index, **args)` returning an object whose `next()`
gives the next request's bytes; it is built in the worker before the clock starts, so signing
or encoding ahead of time never counts against the server. Open-loop latency is measured from
each request's *scheduled* time, so a server that falls behind is charged for the queue it
causes (no coordinated omission)."""

from __future__ import annotations

import asyncio
import importlib
import resource
import time
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, Protocol

from bench import stats
from bench.httpclient import HttpConnection
from bench.workers import Worker, run_async


class Source(Protocol):
    def next(self) -> bytes: ...


@dataclass(frozen=True)
class HttpLoad:
    source: str
    ports: list[int]
    mode: str  # "closed" | "open"
    concurrency: int  # connections per worker
    duration: float
    rate: float = 0.0  # requests/s over all workers (open loop)
    source_args: dict[str, Any] = field(default_factory=dict)
    host: str = "127.0.0.1"


@dataclass
class HttpResult:
    ok: int
    failed: int
    statuses: dict[int, int]
    elapsed: float
    latencies: Any  # array('q') of ns
    client_cpu: float
    unsent: int = 0
    started_ns: int = 0  # time.time_ns() when the first request was due

    @property
    def rate(self) -> float:
        return self.ok / self.elapsed if self.elapsed > 0 else 0.0

    def summary(self) -> dict[str, float]:
        return stats.summary(self.latencies)


def make_source(spec: str, index: int, args: dict[str, Any]) -> Source:
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)(index, **args)  # type: ignore[no-any-return]


def run(load: HttpLoad, workers: int) -> HttpResult:
    """Start `workers` generator processes, release them together, merge what they measured."""
    procs = [Worker("bench.httpload:worker", i, workers, load) for i in range(workers)]
    try:
        for w in procs:
            w.recv()  # ready: sources built, connections open
        for w in procs:
            w.send(("go",))
        parts: list[HttpResult] = [w.recv(load.duration * 4 + 120)[1] for w in procs]
    finally:
        for w in procs:
            w.stop()
    merged = stats.samples()
    statuses: Counter[int] = Counter()
    for p in parts:
        merged.extend(p.latencies)
        statuses.update(p.statuses)
    return HttpResult(
        ok=sum(p.ok for p in parts), failed=sum(p.failed for p in parts), statuses=dict(statuses),
        elapsed=max(p.elapsed for p in parts), latencies=merged,
        client_cpu=sum(p.client_cpu for p in parts), unsent=sum(p.unsent for p in parts),
        started_ns=min(p.started_ns for p in parts),
    )


def worker(conn: Connection, index: int, workers: int, load: HttpLoad) -> None:
    source = make_source(load.source, index, load.source_args)
    run_async(_worker(conn, index, workers, load, source))


async def _worker(conn: Connection, index: int, workers: int, load: HttpLoad, source: Source) -> None:
    conns = [HttpConnection(load.host, load.ports[(index + k) % len(load.ports)]) for k in range(load.concurrency)]
    await asyncio.gather(*(c.connect() for c in conns))
    conn.send(("ready",))
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, conn.recv)  # ("go",)
    cpu0, started = _cpu(), time.time_ns()
    if load.mode == "closed":
        result = await _closed(conns, source, load.duration)
    else:
        result = await _open(conns, source, load.rate / workers, load.duration)
    result.client_cpu = _cpu() - cpu0
    result.started_ns = started
    for c in conns:
        c.close()
    conn.send(("result", result))
    await loop.run_in_executor(None, conn.recv)  # ("exit",)


async def _closed(conns: list[HttpConnection], source: Source, duration: float) -> HttpResult:
    lat = stats.samples()
    statuses: Counter[int] = Counter()
    failed = 0
    start = time.perf_counter_ns()
    deadline = start + int(duration * 1e9)

    async def loop(c: HttpConnection) -> None:
        nonlocal failed
        while time.perf_counter_ns() < deadline:
            t0 = time.perf_counter_ns()
            try:
                status, _ = await c.request(source.next())
            except (ConnectionError, OSError, ValueError):
                failed += 1
                continue
            lat.append(time.perf_counter_ns() - t0)
            statuses[status] += 1

    await asyncio.gather(*(loop(c) for c in conns))
    elapsed = (time.perf_counter_ns() - start) / 1e9
    ok = sum(n for s, n in statuses.items() if 200 <= s < 300)
    return HttpResult(ok, failed + sum(statuses.values()) - ok, dict(statuses), elapsed, lat, 0.0)


async def _open(conns: list[HttpConnection], source: Source, rate: float, duration: float) -> HttpResult:
    """Requests due at start + i/rate; late ones queue for a free connection and are charged
    from their due time. Whatever is still unsent at 3x the duration is counted, not sent."""
    lat = stats.samples()
    statuses: Counter[int] = Counter()
    failed = 0
    total = max(1, int(rate * duration))
    interval = 1e9 / rate
    queue: asyncio.Queue[int | None] = asyncio.Queue()
    start = time.perf_counter_ns()
    cutoff = start + int(3 * duration * 1e9) + 2_000_000_000

    async def schedule() -> None:
        i = 0
        while i < total:
            now = time.perf_counter_ns()
            due = start + int(i * interval)
            if due > now:
                await asyncio.sleep((due - now) / 1e9)
                continue
            while i < total and start + int(i * interval) <= now:
                queue.put_nowait(start + int(i * interval))
                i += 1
        for _ in conns:
            queue.put_nowait(None)

    async def send(c: HttpConnection) -> None:
        nonlocal failed
        while (due := await queue.get()) is not None:
            if time.perf_counter_ns() > cutoff:
                continue
            try:
                status, _ = await c.request(source.next())
            except (ConnectionError, OSError, ValueError):
                failed += 1
                continue
            lat.append(time.perf_counter_ns() - due)
            statuses[status] += 1

    await asyncio.gather(schedule(), *(send(c) for c in conns))
    elapsed = (time.perf_counter_ns() - start) / 1e9
    ok = sum(n for s, n in statuses.items() if 200 <= s < 300)
    done = sum(statuses.values()) + failed
    return HttpResult(ok, failed + sum(statuses.values()) - ok, dict(statuses), elapsed, lat, 0.0,
                      unsent=total - done)


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime
