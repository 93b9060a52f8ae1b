"""4. Snapshot reads: `GET /sessions/active` for many users, each seeing a realistic view
(`sessions_per_view` fully populated sessions), against the ceiling — a bare Starlette route
returning the very same bytes from memory."""

from __future__ import annotations

import base64
import json
import tempfile

import httpx

from bench import world as w
from bench.context import Context
from bench.httpclient import request_bytes
from bench.model import ScenarioResult, Target
from bench.procs import BaselineProcess
from bench.scenarios.common import Side, check_ok, http_pair


class Requests:
    """Pre-built `GET /sessions/active` requests, one per user, cycled."""

    def __init__(self, index: int, tokens: list[str], tag: str = "") -> None:
        self._reqs = [request_bytes("GET", "/sessions/active", "127.0.0.1",
                                    headers={"Authorization": f"Bearer {t}", "Accept": "application/json"})
                      for t in tokens]
        self._i = index * 7919

    def next(self) -> bytes:
        self._i += 1
        return self._reqs[self._i % len(self._reqs)]


def run(ctx: Context) -> ScenarioResult:
    s = ctx.sizes
    res = ScenarioResult(
        "snapshot", "4. Snapshot reads",
        f"GET /sessions/active, {s.snapshot_accounts * s.snapshot_endpoints} users x "
        f"{s.sessions_per_view} sessions each (JSON), vs a bare Starlette route serving the same bytes from memory")
    world = w.World("snap", s.snapshot_accounts, s.snapshot_endpoints, s.sessions_per_view)
    w.seed(ctx.services[0].url, world.seed_events())
    viewers = world.viewers(s.snapshot_accounts * s.snapshot_endpoints, managers_per_account=0)
    bodies: dict[str, str] = {}
    with httpx.Client(timeout=30) as client:
        for v in viewers:
            r = client.get(ctx.services[0].url + "/sessions/active", headers={"Authorization": f"Bearer {v.token}"})
            r.raise_for_status()
            n = len(r.json()["sessions"])
            if n != s.sessions_per_view:
                raise RuntimeError(f"snapshot: a user sees {n} sessions, expected {s.sessions_per_view}")
            bodies[f"Bearer {v.token}"] = base64.b64encode(r.content).decode()
    res.raw["response_bytes"] = len(base64.b64decode(next(iter(bodies.values()))))
    with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="bench-snapshots-", delete=False) as f:
        json.dump(bodies, f)
    ceilings = [BaselineProcess("snapshot_ceiling", ctx.redis_url, env={"BENCH_SNAPSHOTS": f.name})
                for _ in range(s.procs)]
    try:
        tokens = [v.token for v in viewers]
        pair = http_pair(
            ctx, "bench.scenarios.snapshot:Requests",
            Side("service", ctx.ports, [p.proc.pid for p in ctx.http_services], {"tokens": tokens}),
            Side("ceiling", [c.port for c in ceilings], [c.proc.pid for c in ceilings], {"tokens": tokens}),
            "snap")
    finally:
        for c in ceilings:
            c.stop()
    for side in ("service", "ceiling"):
        check_ok(pair.max[side], f"snapshot {side}")
    ours, ceil = pair.max["service"], pair.max["ceiling"]
    m = res.metric("requests/s (max)", "req/s", ours.rate, ceil.rate, "bare-route ceiling")
    res.metric("requests/s per process", "req/s", ours.rate / s.procs, ceil.rate / s.procs, "bare-route ceiling")
    res.metric("server CPU per request", "ms", pair.cpu_per_request_ms["service"],
               pair.cpu_per_request_ms["ceiling"], "bare-route ceiling", "lower")
    fo, fc = pair.fixed["service"].summary(), pair.fixed["ceiling"].summary()
    res.metric(f"p50 @ {pair.fixed_rate:,.0f} req/s", "ms", fo["p50"], fc["p50"], "bare-route ceiling", "lower")
    res.metric(f"p99 @ {pair.fixed_rate:,.0f} req/s", "ms", fo["p99"], fc["p99"], "bare-route ceiling", "lower")
    res.latency = {f"service @ {pair.fixed_rate:,.0f}/s": fo, f"ceiling @ {pair.fixed_rate:,.0f}/s": fc}
    res.targets.append(Target("Snapshot reads at least 50% of the bare-route ceiling", m.ratio >= 0.5,
                              f"{m.ratio:.0%} ({ours.rate:,.0f} vs {ceil.rate:,.0f} req/s)"))
    return res
