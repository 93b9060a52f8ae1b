"""One HTTP comparison, shared by the ingest and snapshot scenarios: as fast as each server
accepts (closed loop), then both at one fixed offered rate (open loop) for response times."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench import httpload
from bench.context import Context
from bench.httpload import HttpLoad, HttpResult
from bench.procs import RedisOps, cpu_seconds

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


def _measure(ctx: Context, side: Side, load: HttpLoad) -> tuple[HttpResult, float, int]:
    ops = RedisOps(ctx.redis_url)
    try:
        ops0, cpu0 = ops.total(), sum(cpu_seconds(p) for p in side.pids)
        result = httpload.run(load, ctx.sizes.loadgens)
        cpu, used_ops = sum(cpu_seconds(p) for p in side.pids) - cpu0, ops.total() - ops0
    finally:
        ops.close()
    return result, cpu, used_ops


def http_pair(ctx: Context, source: str, ours: Side, baseline: Side, phase_tag: str) -> HttpPair:
    s = ctx.sizes
    maxes: dict[str, HttpResult] = {}
    cpu: dict[str, float] = {}
    redis_ops: dict[str, float] = {}
    for side in (ours, baseline):
        load = HttpLoad(source=source, ports=side.ports, mode="closed", concurrency=s.http_connections,
                        duration=s.duration, source_args={**side.source_args, "tag": f"{phase_tag}max"})
        maxes[side.name], used, ops = _measure(ctx, side, load)
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
    return HttpPair(maxes, fixed, rate, cpu, redis_ops)


def check_ok(result: HttpResult, what: str) -> None:
    if result.ok == 0:
        raise RuntimeError(f"{what}: no request succeeded (statuses {result.statuses}, failed {result.failed})")
