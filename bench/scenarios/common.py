"""One HTTP comparison, shared by the ingest and snapshot scenarios: as fast as each server
accepts (closed loop), then both at one fixed offered rate (open loop) for response times."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench import httpload
from bench.context import Context
from bench.httpload import HttpLoad, HttpResult
from bench.procs import counted, cpu_seconds, machine_busy

FIXED_RATE_SHARE = 0.5  # of the slower server's maximum


@dataclass
class Side:
    name: str
    ports: list[int]
    pids: list[int]
    source_args: dict[str, Any]


@dataclass
class HttpPair:
    max: dict[str, HttpResult]
    fixed: dict[str, HttpResult]
    fixed_rate: float
    cpu_per_request_ms: dict[str, float]
    redis_ops_per_request: dict[str, float]
    redis_by_command: dict[str, dict[str, int]]  # per side, over its max phase (INFO and CLUSTER too)


def _measure(ctx: Context, side: Side, load: HttpLoad,
             by_command: dict[str, int] | None = None) -> tuple[HttpResult, float, int]:
    """Run `load`; (result, server CPU seconds, Redis commands counted). `by_command`, when
    given, is filled with the calls per command (uncounted ones too) the phase caused."""
    ops = ctx.redis_ops()
    try:
        before, cpu0 = ops.by_command(), sum(cpu_seconds(p) for p in side.pids)
        result = httpload.run(load, ctx.sizes.loadgens)
        cpu, after = sum(cpu_seconds(p) for p in side.pids) - cpu0, ops.by_command()
    finally:
        ops.close()
    diff = {k: n - before.get(k, 0) for k, n in after.items() if n - before.get(k, 0)}
    if by_command is not None:
        by_command.update(diff)
    return result, cpu, sum(n for k, n in diff.items() if counted(k))


@dataclass
class MaxPhase:
    """One closed-loop phase: the result, server CPU ms and Redis commands per accepted request,
    and how busy the whole machine was (1.0 = every core)."""

    result: HttpResult
    cpu_per_request_ms: float
    redis_ops_per_request: float
    machine_busy: float


def closed_max(ctx: Context, source: str, side: Side, tag: str) -> MaxPhase:
    """As fast as `side` accepts, `ctx.sizes.duration` seconds (the max phase of `http_pair`)."""
    s = ctx.sizes
    load = HttpLoad(source=source, ports=side.ports, mode="closed", concurrency=s.http_connections,
                    duration=s.duration, source_args={**side.source_args, "tag": tag})
    m0 = machine_busy()
    result, cpu, ops = _measure(ctx, side, load)
    m1 = machine_busy()
    return MaxPhase(result, 1000 * cpu / max(1, result.ok), ops / max(1, result.ok),
                    (m1[0] - m0[0]) / max(1e-9, m1[1] - m0[1]))


def http_pair(ctx: Context, source: str, ours: Side, baseline: Side, phase_tag: str) -> HttpPair:
    s = ctx.sizes
    maxes: dict[str, HttpResult] = {}
    cpu: dict[str, float] = {}
    redis_ops: dict[str, float] = {}
    by_command: dict[str, dict[str, int]] = {}
    for side in (ours, baseline):
        load = HttpLoad(source=source, ports=side.ports, mode="closed", concurrency=s.http_connections,
                        duration=s.duration, source_args={**side.source_args, "tag": f"{phase_tag}max"})
        by_command[side.name] = {}
        maxes[side.name], used, ops = _measure(ctx, side, load, by_command[side.name])
        cpu[side.name] = 1000 * used / max(1, maxes[side.name].ok)
        redis_ops[side.name] = ops / max(1, maxes[side.name].ok)
        ctx.log(f"  {side.name}: {maxes[side.name].rate:,.0f}/s max "
                f"({maxes[side.name].failed} failed, statuses {maxes[side.name].statuses})")
    rate = max(1.0, FIXED_RATE_SHARE * min(r.rate for r in maxes.values()))
    fixed: dict[str, HttpResult] = {}
    for side in (ours, baseline):
        load = HttpLoad(source=source, ports=side.ports, mode="open", concurrency=s.http_connections,
                        duration=s.duration, rate=rate,
                        source_args={**side.source_args, "tag": f"{phase_tag}fixed"})
        fixed[side.name], _, _ = _measure(ctx, side, load)
        summ = fixed[side.name].summary()
        ctx.log(f"  {side.name} @ {rate:,.0f}/s: p50 {summ['p50']:.2f} ms p99 {summ['p99']:.2f} ms")
    return HttpPair(maxes, fixed, rate, cpu, redis_ops, by_command)


def check_ok(result: HttpResult, what: str) -> None:
    if result.ok == 0:
        raise RuntimeError(f"{what}: no request succeeded (statuses {result.statuses}, failed {result.failed})")
