"""1. Ingest: signed Twilio status callbacks from realistic interleaved flows, posted as fast as
the service accepts them, then at one fixed offered rate; against the "check and store" ceiling
(same signature check, one Redis SET). Then the scaling row: the service alone, as fast as it
accepts, on 1 then on 2 processes (the same Redis): accepted callbacks/s and server CPU per
callback (on a 2-core box the processes share the cores with Redis and the load generators, so
the CPU per callback is the figure that carries over to a bigger machine)."""

from __future__ import annotations

from bench.context import Context
from bench.model import ScenarioResult, Target
from bench.procs import BaselineProcess
from bench.scenarios.common import MaxPhase, Side, check_ok, closed_max, http_pair

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
    scaling = _scaling(ctx, args)
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
    ok = max(1, ours.ok)
    top = sorted(pair.redis_by_command["service"].items(), key=lambda kv: -kv[1])
    res.notes.append(f"Redis commands per accepted callback, by command ({ctx.redis.label}, max phase; INFO and "
                     "CLUSTER are not counted above): "
                     + ", ".join(f"{k} {n / ok:.2f}" for k, n in top[:12]))
    res.raw["redis_by_command"] = pair.redis_by_command
    if scaling:
        one, two = scaling[1], scaling[2]
        res.metric("scaling 1 → 2 processes: accepted callbacks/s (2 processes vs 1)", "cb/s",
                   two.result.rate, one.result.rate, "the service on 1 process")
        res.metric("scaling 1 → 2 processes: server CPU per callback (2 processes vs 1)", "ms",
                   two.cpu_per_request_ms, one.cpu_per_request_ms, "the service on 1 process", "lower")
        res.notes.append(
            "scaling: " + "; ".join(
                f"{n} process(es) {p.result.rate:,.0f} cb/s, {p.cpu_per_request_ms:.2f} ms CPU/cb, "
                f"{p.redis_ops_per_request:.2f} Redis commands/cb, machine {p.machine_busy:.0%} busy, "
                f"statuses {p.result.statuses}" for n, p in scaling.items())
            + f" ({ctx.redis.label}; {s.loadgens}x{s.http_connections} connections over the processes)")
        res.raw["scaling"] = {str(n): {"rate": p.result.rate, "ok": p.result.ok, "failed": p.result.failed,
                                       "statuses": p.result.statuses, "cpu_ms_per_callback": p.cpu_per_request_ms,
                                       "redis_ops_per_callback": p.redis_ops_per_request,
                                       "machine_busy": p.machine_busy, "client_cpu": p.result.client_cpu}
                              for n, p in scaling.items()}
    res.targets.append(Target("Ingest at least 50% of the check-and-store ceiling", m.ratio >= 0.5,
                              f"{m.ratio:.0%} ({ours.rate / s.procs:,.0f} vs {ceil.rate / s.procs:,.0f} cb/s per process)"))
    return res


def _scaling(ctx: Context, args: dict[str, int]) -> dict[int, MaxPhase]:
    """The service alone on its first 1 then 2 processes, as fast as they accept ({} if the run
    has fewer than 2 processes)."""
    if len(ctx.services) < 2:
        return {}
    out: dict[int, MaxPhase] = {}
    for n in (1, 2):
        procs = ctx.services[:n]
        side = Side(f"service x{n}", [p.port for p in procs], [p.proc.pid for p in procs], args)
        out[n] = closed_max(ctx, SOURCE, side, f"ingscale{n}")
        check_ok(out[n].result, f"ingest scaling, {n} process(es)")
        ctx.log(f"  scaling, {n} process(es): {out[n].result.rate:,.0f}/s, {out[n].cpu_per_request_ms:.2f} ms CPU/cb, "
                f"{out[n].redis_ops_per_request:.2f} Redis commands/cb, machine {out[n].machine_busy:.0%} busy "
                f"(statuses {out[n].result.statuses})")
    return out
