"""CPU per request of the ASGI app alone: no HTTP server, no load-generator process, so the
figure is the app's own and far less noisy than a bench phase on a shared machine.

    .venv/bin/python -m bench.inprocess read     # cached GET /sessions/active vs the bare-route ceiling
    .venv/bin/python -m bench.inprocess ingest   # signed Twilio callbacks vs check-and-store

Each starts its own redis-server, builds the service's app (`create_app`, APP_ENV=test, its
lifespan running) and the scenario's baseline app, and drives both the same way: requests as
ASGI scopes, `--concurrency` at a time in one event loop (uvloop), `time.process_time()` over
`--requests`, in `--rounds` rounds, ours then the baseline's in each. `--profile` prints a
cProfile of ours in the last round. Access lines go to a file, as a served process writes them
(`--quiet`: LOG_LEVEL=warning, none). Figures are CPU µs per request of this process: the
app, its Redis client and the kernel work of its sockets; not Redis's own CPU."""

from __future__ import annotations

import argparse
import asyncio
import base64
import cProfile
import json
import os
import pstats
import random
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

import uvloop

from bench import procs
from bench import world as w
from bench.servers import RedisServer

Asgi = Callable[[dict[str, Any], Any, Any], Awaitable[None]]
Request = tuple[str, bytes, bytes, list[tuple[bytes, bytes]], bytes]  # method, path, query, headers, body


def parse(raw: bytes) -> Request:
    """One HTTP/1.1 request as the bench's clients send it (bench/httpclient.py) → ASGI parts."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    method, target, _ = lines[0].split(b" ")
    path, _, query = target.partition(b"?")
    headers = [(k.strip().lower(), v.strip()) for k, v in (line.split(b":", 1) for line in lines[1:])]
    return method.decode(), path, query, headers, body


async def drive(app: Asgi, requests: list[Request], concurrency: int) -> tuple[float, dict[int, int]]:
    """CPU µs per request, and the response statuses."""
    statuses: dict[int, int] = {}

    async def one(request: Request) -> None:
        method, path, query, headers, body = request
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
                 "scheme": "http", "path": path.decode(), "raw_path": path, "query_string": query,
                 "root_path": "", "headers": headers, "client": ("127.0.0.1", 5000),
                 "server": ("127.0.0.1", 8000), "state": {}}
        delivered = False

        async def receive() -> dict[str, Any]:
            nonlocal delivered
            if delivered:  # nothing more comes: wait as a server would until the app returns
                await asyncio.Event().wait()
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                statuses[message["status"]] = statuses.get(message["status"], 0) + 1

        await app(scope, receive, send)

    async def worker(k: int) -> None:
        for i in range(k, len(requests), concurrency):
            await one(requests[i])

    started = time.process_time()
    await asyncio.gather(*(worker(k) for k in range(concurrency)))
    return (time.process_time() - started) / len(requests) * 1e6, statuses


async def _seed_reads(app: Asgi) -> tuple[list[Request], dict[str, str]]:
    """200 users of 10 accounts, 20 sessions each; their requests, and the bytes each got."""
    import httpx

    world = w.World("snap", 10, 20, 20)
    viewers = world.viewers(200, managers_per_account=0)
    bodies: dict[str, str] = {}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as c:
        events = world.seed_events()
        for i in range(0, len(events), 250):
            r = await c.post("/events", json={"events": events[i:i + 250]},
                             headers={"Authorization": f"Bearer {w.EVENTS_KEY}"})
            r.raise_for_status()
        for v in viewers:
            r = await c.get("/sessions/active", headers={"Authorization": f"Bearer {v.token}"})
            r.raise_for_status()
            bodies[f"Bearer {v.token}"] = base64.b64encode(r.content).decode()
    requests = [("GET", b"/sessions/active", b"", [(b"host", b"127.0.0.1"),
                                                    (b"authorization", f"Bearer {v.token}".encode()),
                                                    (b"accept", b"application/json")], b"") for v in viewers]
    return requests, bodies


def _callbacks(tag: str, count: int) -> list[Request]:
    from bench.twilio_flows import interleaved

    source = interleaved(f"{tag}-{time.time_ns()}", 2000, random.Random(tag))
    return [parse(next(source)) for _ in range(count)]


async def run(args: argparse.Namespace) -> None:
    redis = RedisServer()
    os.environ.update({"APP_ENV": "test", "REDIS_URL": redis.url, **procs.service_env()})
    if args.quiet:
        os.environ["LOG_LEVEL"] = "warning"
    log = tempfile.NamedTemporaryFile("w", prefix="bench-inprocess-", suffix=".log", delete=False)  # noqa: SIM115
    from app.composition import create_app
    from app.config import load_settings
    from app.observability.logs import configure_logging

    settings = load_settings()
    stderr, sys.stderr = sys.stderr, log  # the service's own log handler, writing to a file
    try:
        configure_logging(settings)
    finally:
        sys.stderr = stderr
    app: Any = create_app(settings)
    try:
        async with app.router.lifespan_context(app):
            if args.scenario == "read":
                requests, bodies = await _seed_reads(app)
                with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
                    json.dump(bodies, f)
                os.environ["BENCH_SNAPSHOTS"] = f.name
                from bench.baselines.snapshot_ceiling import app as baseline_app
                baseline, name = baseline_app(), "bare-route ceiling"
            else:
                from bench.baselines.check_and_store import app as baseline_app
                baseline, name = baseline_app(), "check-and-store"
            for round_ in range(args.rounds):
                if args.scenario == "read":  # the same cached reads, cycled, for both
                    ours_requests = base_requests = [requests[i % len(requests)] for i in range(args.requests)]
                else:  # fresh callbacks for each (a repeated one would be a duplicate)
                    ours_requests, base_requests = (_callbacks(f"{side}{round_}", args.requests) for side in "ob")
                profiler = cProfile.Profile() if args.profile and round_ == args.rounds - 1 else None
                if profiler:
                    profiler.enable()
                ours, ours_statuses = await drive(app, ours_requests, args.concurrency)
                if profiler:
                    profiler.disable()
                base, base_statuses = await drive(baseline, base_requests, args.concurrency)
                print(f"round {round_ + 1}: service {ours:.1f} µs/request {ours_statuses}, "
                      f"{name} {base:.1f} µs/request {base_statuses}, difference {ours - base:.1f} µs", flush=True)
                if profiler:
                    pstats.Stats(profiler).sort_stats("tottime").print_stats(40)
    finally:
        redis.stop()
        log.close()
        os.unlink(log.name)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.inprocess", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("scenario", choices=("read", "ingest"))
    p.add_argument("--requests", type=int, default=20000)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--quiet", action="store_true", help="no access lines (LOG_LEVEL=warning)")
    p.add_argument("--profile", action="store_true", help="cProfile ours in the last round")
    args = p.parse_args(argv)
    uvloop.run(run(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
