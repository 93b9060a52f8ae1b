"""2. Push latency: from an event's send time (a `time.time_ns()` stamp inside it) to the patch
arriving at each subscribed socket, at fixed event rates, with 100 / 1,000 / 5,000 / 10,000 sockets
spread over the accounts (per account one manager, the rest users on their own endpoints), all
on one server process; the events are posted to another process of the same server and reach
the sockets' process through Redis. Against python-socketio + AsyncRedisManager doing the same
job in the same topology."""

from __future__ import annotations

import time

from bench import stats
from bench import world as w
from bench.context import Context
from bench.model import ScenarioResult, Table, Target
from bench.procs import machine_busy
from bench.scenarios import live
from bench.wsfleet import Fleets

SESSIONS_PER_ENDPOINT = 2


def push_world(prefix: str, sockets: int, per_account: int) -> tuple[w.World, list[w.Viewer]]:
    accounts = max(1, -(-sockets // per_account))
    world = w.World(prefix, accounts, max(1, per_account - 1), SESSIONS_PER_ENDPOINT)
    return world, world.viewers(sockets, managers_per_account=1)


def phase_labels(rates: tuple[int, ...]) -> list[str]:
    """`100 ev/s`, and for a rate given again, `100 ev/s (#2)`: one row per phase."""
    seen: dict[int, int] = {}
    out = []
    for rate in rates:
        seen[rate] = seen.get(rate, 0) + 1
        out.append(f"{rate} ev/s" + (f" (#{seen[rate]})" if seen[rate] > 1 else ""))
    return out


def phase_tag(sockets: int, index: int, rate: int, kind: str) -> str:
    """The event-id prefix of one phase: unique per socket count, phase and side."""
    return f"push{sockets}p{index}r{rate}{kind}"


def run(ctx: Context) -> ScenarioResult:
    s = ctx.sizes
    res = ScenarioResult(
        "push", "2. Push latency",
        f"event sent → patch received (one clock), {s.duration:g} s per rate at {', '.join(map(str, s.push_rates))} "
        f"events/s posted to a second process, with {', '.join(map(str, s.push_sockets))} sockets on one process "
        f"({s.sockets_per_account} per account); baseline python-socketio + AsyncRedisManager, same topology")
    sio, sio_procs = live.socketio(ctx)
    fleets = Fleets(s.fleets)
    measured: dict[tuple[str, int, int], dict[str, float]] = {}  # (side, sockets, phase index) -> summary
    phases = phase_labels(s.push_rates)
    ops = ctx.redis_ops()
    try:
        for n in s.push_sockets:
            world, viewers = push_world(f"push{n}", n, s.sockets_per_account)
            fan = live.receivers_per_event(world, viewers)
            for server in (live.service(ctx), sio):
                live.seed_and_subscribe(ctx, res, fleets, server, world, viewers, f"{server.name}, {n} sockets")
                for i, rate in enumerate(s.push_rates):
                    fleets.reset()
                    push0, all0, t0, m0 = server.socket_cpu(), server.cpu(), time.monotonic(), machine_busy()
                    ops0 = ops.total()
                    # The phase index in the tag: a rate given twice sends new event ids (the
                    # service deduplicates ids, so a repeated tag would deliver nothing).
                    sent = live.send_events(ctx, server, world, rate, phase_tag(n, i, rate, server.kind))
                    fleets.drain(int(sent.ok * fan))
                    wall = time.monotonic() - t0
                    got = fleets.collect()
                    used_ops = ops.total() - ops0
                    summ = stats.summary(got.latencies)
                    summ["redis_ops"], summ["events"] = used_ops, sent.ok
                    summ["redis_ops_per_event"] = used_ops / max(1, sent.ok)
                    summ["delivered"] = got.frames / max(1.0, sent.ok * fan)
                    summ["events_per_s"] = sent.ok / max(1e-9, sent.elapsed)
                    # Busy share of one core, over the phase (sender start-up and drain included).
                    summ["push_process_cpu"] = (server.socket_cpu() - push0) / wall
                    summ["ingest_processes_cpu"] = (server.cpu() - all0) / wall - summ["push_process_cpu"]
                    m1 = machine_busy()
                    summ["machine_busy"] = (m1[0] - m0[0]) / max(1e-9, m1[1] - m0[1])
                    post = sent.summary()
                    summ["post_p50"], summ["post_p99"] = post["p50"], post["p99"]
                    measured[(server.name, n, i)] = summ
                    ctx.log(f"  {server.name} {n} sockets @ {phases[i]}: p50 {summ['p50']:.2f} p99 {summ['p99']:.2f} "
                            f"max {summ['max']:.1f} ms, delivered {summ['delivered']:.0%} "
                            f"({got.frames} frames, closes {dict(got.closes)}); CPU busy: push process "
                            f"{summ['push_process_cpu']:.0%}, ingest {summ['ingest_processes_cpu']:.0%}, machine "
                            f"{summ['machine_busy']:.0%}; event POST p50 {post['p50']:.1f} p99 {post['p99']:.1f} ms")
                fleets.disconnect(forget=True)
    finally:
        ops.close()
        fleets.stop()
        live.stop(sio_procs)
    rows: list[list[str | float]] = []
    for n in s.push_sockets:
        for i, rate in enumerate(s.push_rates):
            where = f"{n} sockets @ {phases[i]}"
            ours, base = measured[("service", n, i)], measured[("socket.io", n, i)]
            for k in ("p50", "p99", "max"):
                res.metric(f"{k}, {where}", "ms", ours[k], base[k], "python-socketio", "lower")
            res.metric(f"delivered, {where}", "%", 100 * ours["delivered"],
                       100 * base["delivered"], "python-socketio")
            res.metric(f"event POST p99 (ingest side), {where}", "ms", ours["post_p99"],
                       base["post_p99"], "python-socketio", "lower")
            res.latency[f"ours {n}s@{phases[i].replace(' ev/s', '/s')}"] = ours
            res.latency[f"sio {n}s@{phases[i].replace(' ev/s', '/s')}"] = base
            rows.append([f"{n:,} @ {phases[i]}",
                         *(ours[k] for k in ("p50", "p99", "max")),
                         *(base[k] for k in ("p50", "p99", "max")),
                         stats.times(ours["p99"], base["p99"]), stats.times(ours["max"], base["max"]),
                         f"{ours['delivered']:.1%} / {base['delivered']:.1%}"])
    res.tables.append(Table(
        "Latency per phase, ms (ours ÷ python-socketio for the ratios)",
        ["sockets @ rate", "ours p50", "ours p99", "ours max", "socket.io p50", "socket.io p99", "socket.io max",
         "p99 ratio", "max ratio", "delivered (ours / socket.io)"], rows))
    per_event = {name: sum(v["redis_ops"] for k, v in measured.items() if k[0] == name)
                 / max(1, sum(v["events"] for k, v in measured.items() if k[0] == name))
                 for name in ("service", "socket.io")}
    res.metric("Redis commands per event (every phase)", "", per_event["service"], per_event["socket.io"],
               "python-socketio", "lower")
    res.raw["measured"] = {f"{k[0]}|{k[1]}|{k[2]}": v for k, v in measured.items()}
    busiest = max(measured.values(), key=lambda v: v["machine_busy"])
    res.notes.append(f"machine CPU busy during the phases: up to {busiest['machine_busy']:.0%} of all cores "
                     "(service, Redis, generators and clients share them); per-phase CPU of the push and "
                     "ingest processes is in the JSON")
    key = next((("service", 1000, i) for i, rate in enumerate(s.push_rates) if rate == 1000), None)
    if key is not None and key in measured:
        p99 = measured[key]["p99"]
        ok = p99 < 10.0 and measured[key]["delivered"] >= 0.999
        res.targets.append(Target("Push p99 under 10 ms at 1,000 events/s with 1,000 sockets on one process", ok,
                                  f"p99 {p99:.2f} ms, delivered {measured[key]['delivered']:.1%}"))
    else:
        res.targets.append(Target("Push p99 under 10 ms at 1,000 events/s with 1,000 sockets on one process", None,
                                  "not run at 1,000 sockets and 1,000 events/s"))
    return res
