"""3. Fan-out throughput: patch frames delivered per second to many sockets watching the same
accounts, and server CPU per 1,000 frames; against python-socketio + AsyncRedisManager doing
the same job (same events, JSON state per room, same sockets). Two offered loads: a quarter of
`--fanout-rate` (both should keep up: compare cost and latency) and the full rate (meant to
saturate: compare what gets through)."""

from __future__ import annotations

from bench import stats
from bench import world as w
from bench.context import Context
from bench.model import ScenarioResult, Target
from bench.scenarios import live
from bench.wsfleet import Fleets


def run(ctx: Context) -> ScenarioResult:
    s = ctx.sizes
    n, accounts = s.fanout_sockets, min(s.fanout_accounts, s.fanout_sockets)
    world = w.World("fan", accounts, 5, 2)
    viewers = world.viewers(n, managers_per_account=-(-n // accounts))  # everyone sees the whole account
    fan = live.receivers_per_event(world, viewers)
    rates = sorted({max(1, s.fanout_rate // 4), s.fanout_rate})
    res = ScenarioResult(
        "fanout", "3. Fan-out throughput",
        f"{n} sockets in {accounts} accounts (each event reaches {fan:.0f} sockets), events offered at "
        f"{' and '.join(map(str, rates))}/s for {s.duration:g} s; baseline python-socketio + AsyncRedisManager")
    sio, sio_procs = live.socketio(ctx)
    fleets = Fleets(s.fleets)
    out: dict[tuple[str, int], dict[str, float]] = {}
    try:
        for server in (live.service(ctx), sio):
            live.seed_and_subscribe(ctx, res, fleets, server, world, viewers, server.name)
            for rate in rates:
                fleets.reset()
                cpu0, push_cpu0, fleet_cpu0 = server.cpu(), server.socket_cpu(), fleets.collect().cpu
                sent = live.send_events(ctx, server, world, rate, f"fan{rate}{server.kind}")
                expected = sent.ok * fan
                fleets.drain(int(expected))
                got = fleets.collect()
                cpu, push_cpu = server.cpu() - cpu0, server.socket_cpu() - push_cpu0
                elapsed = max(1e-9, (got.last_ns - sent.started_ns) / 1e9)
                summ = stats.summary(got.latencies)
                summ.update(frames_per_s=got.frames / elapsed, offered_frames_per_s=rate * fan,
                            delivered=got.frames / max(1.0, expected),
                            cpu_ms_per_1000=1e6 * push_cpu / max(1, got.frames),
                            total_cpu_ms_per_1000=1e6 * cpu / max(1, got.frames),
                            client_cpu_ms_per_1000=1e6 * (got.cpu - fleet_cpu0) / max(1, got.frames),
                            bytes_per_frame=got.bytes / max(1, got.frames))
                out[(server.name, rate)] = summ
                ctx.log(f"  {server.name} @ {rate} ev/s: {summ['frames_per_s']:,.0f} frames/s "
                        f"(offered {rate * fan:,.0f}), delivered {summ['delivered']:.0%}, p99 {summ['p99']:.1f} ms, "
                        f"{summ['cpu_ms_per_1000']:.0f} ms CPU/1000 frames, closes {dict(got.closes)}")
            fleets.disconnect(forget=True)
    finally:
        fleets.stop()
        live.stop(sio_procs)
    for rate in rates:
        ours, base = out[("service", rate)], out[("socket.io", rate)]
        res.metric(f"frames/s delivered @ {rate} ev/s (offered {rate * fan:,.0f})", "frames/s",
                   ours["frames_per_s"], base["frames_per_s"], "python-socketio")
        res.metric(f"push-process CPU per 1,000 frames @ {rate} ev/s", "ms", ours["cpu_ms_per_1000"],
                   base["cpu_ms_per_1000"], "python-socketio", "lower")
        res.metric(f"all-process CPU (push + ingest) per 1,000 frames @ {rate} ev/s", "ms",
                   ours["total_cpu_ms_per_1000"], base["total_cpu_ms_per_1000"], "python-socketio", "lower")
        res.metric(f"p50 @ {rate} ev/s", "ms", ours["p50"], base["p50"], "python-socketio", "lower")
        res.metric(f"p99 @ {rate} ev/s", "ms", ours["p99"], base["p99"], "python-socketio", "lower")
        res.metric(f"delivered @ {rate} ev/s", "%", 100 * ours["delivered"], 100 * base["delivered"], "python-socketio")
        res.metric(f"bytes per frame @ {rate} ev/s", "B", ours["bytes_per_frame"], base["bytes_per_frame"],
                   "python-socketio", "lower")
        res.latency[f"service @ {rate} ev/s"] = ours
        res.latency[f"socket.io @ {rate} ev/s"] = base
    res.raw["measured"] = {f"{k[0]}|{k[1]}": v for k, v in out.items()}
    top = max(rates)
    ours, base = out[("service", top)], out[("socket.io", top)]
    speed = ours["frames_per_s"] / max(1e-9, base["frames_per_s"])
    saturated = base["frames_per_s"] < 0.95 * base["offered_frames_per_s"]
    res.targets.append(Target(
        "Fan-out at least 3x the python-socketio baseline's frames/s, at lower p99",
        speed >= 3 and ours["p99"] < base["p99"],
        f"{speed:.2f}x frames/s ({ours['frames_per_s']:,.0f} vs {base['frames_per_s']:,.0f}), p99 "
        f"{ours['p99']:.1f} vs {base['p99']:.1f} ms"
        + ("" if saturated else "; the baseline kept up with the offered load, so frames/s is not its ceiling")))
    return res
