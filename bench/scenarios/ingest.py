"""1. Ingest: signed Twilio status callbacks from realistic interleaved flows, posted as fast as
the service accepts them, then at one fixed offered rate; against the "check and store" ceiling
(same signature check, one Redis SET)."""

from __future__ import annotations

from bench.context import Context
from bench.model import ScenarioResult, Target
from bench.procs import BaselineProcess
from bench.scenarios.common import Side, check_ok, http_pair

SOURCE = "bench.twilio_flows:Callbacks"
POOL_PER_SECOND = 6000  # callbacks signed ahead per second of phase (more are signed on demand)


def run(ctx: Context) -> ScenarioResult:
    s = ctx.sizes
    res = ScenarioResult(
        "ingest", "1. Ingest",
        f"POST /twilio/status, signed callbacks of flows (a)/(c)/(f), {s.ingest_calls} calls in flight, "
        f"{s.loadgens}x{s.http_connections} connections; vs a bare Starlette route doing the same signature "
        "check and one Redis SET")
    args = {"in_flight": max(1, s.ingest_calls // s.loadgens),
            "pool": int(POOL_PER_SECOND * s.duration / s.loadgens)}
    ceilings = [BaselineProcess("check_and_store", ctx.redis_url) for _ in range(s.procs)]
    try:
        pair = http_pair(
            ctx, SOURCE,
            Side("service", ctx.ports, [p.proc.pid for p in ctx.http_services], args),
            Side("ceiling", [c.port for c in ceilings], [c.proc.pid for c in ceilings], args),
            "ing")
    finally:
        for c in ceilings:
            c.stop()
    for side in ("service", "ceiling"):
        check_ok(pair.max[side], f"ingest {side}")
        check_ok(pair.fixed[side], f"ingest {side} at a fixed rate")
    ours, ceil = pair.max["service"], pair.max["ceiling"]
    res.metric("accepted callbacks/s (max)", "cb/s", ours.rate, ceil.rate, "check-and-store ceiling")
    m = res.metric("accepted callbacks/s per process", "cb/s", ours.rate / s.procs, ceil.rate / s.procs,
                   "check-and-store ceiling")
    res.metric("server CPU per callback", "ms", pair.cpu_per_request_ms["service"],
               pair.cpu_per_request_ms["ceiling"], "check-and-store ceiling", "lower")
    res.metric("Redis commands per callback", "", pair.redis_ops_per_request["service"],
               pair.redis_ops_per_request["ceiling"], "check-and-store ceiling", "lower")
    fo, fc = pair.fixed["service"].summary(), pair.fixed["ceiling"].summary()
    res.metric(f"p50 @ {pair.fixed_rate:,.0f} cb/s", "ms", fo["p50"], fc["p50"], "check-and-store ceiling", "lower")
    res.metric(f"p99 @ {pair.fixed_rate:,.0f} cb/s", "ms", fo["p99"], fc["p99"], "check-and-store ceiling", "lower")
    res.latency = {f"service @ {pair.fixed_rate:,.0f}/s": fo, f"ceiling @ {pair.fixed_rate:,.0f}/s": fc}
    res.notes.append(f"service response statuses (max phase): {ours.statuses}; "
                     f"ceiling: {ceil.statuses}; client CPU {ours.client_cpu:.1f}s / {ceil.client_cpu:.1f}s")
    res.targets.append(Target("Ingest at least 50% of the check-and-store ceiling", m.ratio >= 0.5,
                              f"{m.ratio:.0%} ({ours.rate / s.procs:,.0f} vs {ceil.rate / s.procs:,.0f} cb/s per process)"))
    return res
