"""6. Resume storm: every socket of one process drops, changes are committed while they are
away, then all reconnect at once with their positions. Measured: time until every client is
current again, and the Redis commands the storm cost. The service replays each client's gap
from the change log; the python-socketio baseline (no recovery) re-sends each room's state."""

from __future__ import annotations

import random

import httpx

from bench import stats
from bench import world as w
from bench.context import Context
from bench.model import ScenarioResult
from bench.procs import counted
from bench.scenarios import live
from bench.scenarios.push import push_world
from bench.wsfleet import Fleets

BATCH = 100


def commit_changes(server: live.Server, world: w.World, count: int) -> dict[str, int]:
    """Post `count` changes on random sessions; the cursor each viewer group must reach."""
    rng = random.Random(f"resume-{server.kind}")
    targets: dict[str, int] = {}
    with httpx.Client(base_url=server.event_url, timeout=60) as client:
        for start in range(0, count, BATCH):
            picks = [world.random_session(rng) for _ in range(min(BATCH, count - start))]
            events = [{"type": "session.upsert", "eventId": f"resume-{server.kind}-{start + i}",
                       "accountId": world.account(a), "sessionId": world.session(a, e, s_),
                       "occurredAt": "2024-05-01T12:00:00Z", "session": {"consoleData": f"away {start + i}"}}
                      for i, (a, e, s_) in enumerate(picks)]
            r = client.post("/events", json={"events": events},
                            headers={"Authorization": f"Bearer {w.EVENTS_KEY}"})
            r.raise_for_status()
            for (a, e, _), result in zip(picks, r.json().get("results", [])):
                cursor = int(result.get("cursor", 0))
                for group in (f"{world.account(a)}|*", f"{world.account(a)}|{world.endpoint(e)}"):
                    targets[group] = max(targets.get(group, 0), cursor)
    return targets


def run(ctx: Context) -> ScenarioResult:
    s = ctx.sizes
    n = s.resume_sockets
    world, viewers = push_world("res", n, s.sockets_per_account)
    res = ScenarioResult(
        "resume", "6. Resume storm",
        f"{n} sockets on one process drop; {s.resume_events} changes are committed meanwhile; all reconnect "
        "at once with their positions. Service: replay from the change log; python-socketio: room state "
        "re-sent on connect (it has no recovery)")
    sio, sio_procs = live.socketio(ctx)
    fleets = Fleets(s.fleets)
    ops = ctx.redis_ops()
    out: dict[str, dict[str, float]] = {}
    try:
        for server in (live.service(ctx), sio):
            setup = live.seed_and_subscribe(ctx, res, fleets, server, world, viewers, server.name)
            fleets.disconnect()
            targets = commit_changes(server, world, s.resume_events)
            by0, cpu0 = ops.by_command(), server.cpu()
            start, done, failed = fleets.resume(targets)
            by1, cpu = ops.by_command(), server.cpu() - cpu0
            by_command = {k: v - by0.get(k, 0) for k, v in sorted(by1.items()) if v - by0.get(k, 0)}
            used = sum(v for k, v in by_command.items() if counted(k))
            res.raw.setdefault("redis_by_command", {})[server.name] = by_command
            after = fleets.collect()
            storm_reconnects = after.reconnects - setup.reconnects
            times = [t - start for t in done]
            summ = stats.summary(times)
            summ.update(all_current_s=(max(done) - start) / 1e9 if done else float("nan"),
                        redis_commands=float(used), redis_per_socket=used / n, failed=float(failed),
                        server_cpu_s=cpu, reconnects=float(storm_reconnects))
            res.notes.append(f"{server.name}: Redis commands per socket by command: " + ", ".join(
                f"{k} {v / n:.2f}" for k, v in sorted(by_command.items(), key=lambda kv: -kv[1])))
            if storm_reconnects:
                res.notes.append(f"{server.name}: the server closed sockets with a reconnect code during the storm; "
                                 f"clients reconnected {storm_reconnects} extra times (closes {dict(after.closes)})")
            out[server.name] = summ
            ctx.log(f"  {server.name}: all {n - failed}/{n} current after {summ['all_current_s']:.2f}s, "
                    f"{used} Redis commands, server CPU {cpu:.2f}s")
            fleets.disconnect(forget=True)
    finally:
        ops.close()
        fleets.stop()
        live.stop(sio_procs)
    ours, base = out["service"], out["socket.io"]
    res.metric("time until all current", "s", ours["all_current_s"], base["all_current_s"], "python-socketio", "lower")
    res.metric("per-client time to current, p50", "ms", ours["p50"], base["p50"], "python-socketio", "lower")
    res.metric("per-client time to current, p99", "ms", ours["p99"], base["p99"], "python-socketio", "lower")
    res.metric("Redis commands, whole storm", "", ours["redis_commands"], base["redis_commands"],
               "python-socketio", "lower")
    res.metric("Redis commands per socket", "", ours["redis_per_socket"], base["redis_per_socket"],
               "python-socketio", "lower")
    res.metric("server CPU, whole storm", "s", ours["server_cpu_s"], base["server_cpu_s"], "python-socketio", "lower")
    res.metric("clients never current", "", ours["failed"], base["failed"], "python-socketio", "lower")
    res.metric("extra reconnects the server asked for", "", ours["reconnects"], base["reconnects"],
               "python-socketio", "lower")
    res.latency = {"service": ours, "socket.io": base}
    res.raw["measured"] = out  # and res.raw["redis_by_command"]: per side, the storm's calls per command
    return res
