"""5. Memory: RSS growth per idle subscribed socket (each got its snapshot, then nothing),
on a fresh server process, at each socket count; against a fresh python-socketio process
holding the same sockets."""

from __future__ import annotations

import time

from bench import world as w
from bench.context import Context
from bench.model import ScenarioResult, Target
from bench.procs import BaselineProcess, ServiceProcess, rss_bytes
from bench.scenarios import live
from bench.scenarios.push import push_world
from bench.wsfleet import Fleets

IDLE_SECONDS = 2.0  # settle time before reading RSS (shorter in --quick)
WARM_SOCKETS = 10


def _measure(ctx: Context, server: live.Server, counts: list[int], fleets: Fleets) -> dict[int, float]:
    idle = min(IDLE_SECONDS, 2 * ctx.sizes.duration)
    world, viewers = push_world("mem", counts[-1], ctx.sizes.sockets_per_account)
    fleets.reset()
    w.seed(server.url, world.seed_events())
    fleets.connect(live.specs(server, viewers[:WARM_SOCKETS]))  # first-use allocations, not per socket
    fleets.disconnect(forget=True)
    time.sleep(idle / 2)
    rss0 = rss_bytes(server.socket_pid)
    out: dict[int, float] = {}
    done = 0
    for n in counts:
        fleets.reset()
        setup = fleets.connect(live.specs(server, viewers[done:n]))
        if setup.troubled:
            ctx.log(f"  {server.name}: subscribing took {setup.describe()}")
        done = n
        time.sleep(idle)
        out[n] = (rss_bytes(server.socket_pid) - rss0) / n
        ctx.log(f"  {server.name}: {n} idle sockets, {out[n] / 1024:.1f} KiB each "
                f"(RSS {rss_bytes(server.socket_pid) / 2**20:.0f} MiB)")
    fleets.disconnect(forget=True)
    return out


def run(ctx: Context) -> ScenarioResult:
    s = ctx.sizes
    counts = sorted(s.memory_sockets)
    res = ScenarioResult(
        "memory", "5. Memory per idle socket",
        f"RSS growth of one fresh server process ÷ idle subscribed sockets, at {', '.join(map(str, counts))} "
        "sockets; baseline a fresh python-socketio process with the same sockets", chart_unit="KiB per socket")
    fleets = Fleets(s.fleets)
    per: dict[str, dict[int, float]] = {}
    try:
        svc = ServiceProcess(ctx.redis_url, env=ctx.service_env())
        try:
            per["service"] = _measure(ctx, live.Server("service", "callstate", [svc]), counts, fleets)
        finally:
            svc.stop()
        sio = BaselineProcess("socketio_server", ctx.redis_url)
        try:
            per["socket.io"] = _measure(ctx, live.Server("socket.io", "socketio", [sio]), counts, fleets)
        finally:
            sio.stop()
    finally:
        fleets.stop()
    for n in counts:
        res.metric(f"RSS per idle socket, {n} sockets", "KiB", per["service"][n] / 1024, per["socket.io"][n] / 1024,
                   "python-socketio", "lower")
    # Not a latency: the chart shows KiB per socket, one bar group per socket count.
    res.chart_keys = tuple(f"{n} sockets" for n in counts)
    res.latency = {name: {f"{n} sockets": v / 1024 for n, v in vals.items()} for name, vals in per.items()}
    res.raw["bytes_per_socket"] = {k: {str(n): v for n, v in d.items()} for k, d in per.items()}
    worst = max(per["service"].values())
    res.targets.append(Target("At most 12 KiB per idle socket (issue 14)", worst <= 12 * 1024,
                              ", ".join(f"{per['service'][n] / 1024:.1f} KiB at {n}" for n in counts)))
    return res
