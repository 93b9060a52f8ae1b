"""What the live scenarios (push, fan-out, memory, resume) share: the servers side by side (the
service's `/sessions/live`, the python-socketio baseline, and for fan-out the raw ceiling on
`websockets`' own server), their subscribers, and the stamped events that drive them."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

from bench import httpload
from bench import world as w
from bench.context import Context
from bench.httpclient import request_bytes
from bench.httpload import HttpLoad, HttpResult
from bench.model import ScenarioResult
from bench.procs import BaselineProcess, BaselineServer, ServiceProcess, cpu_seconds
from bench.wsfleet import ClientSpec, Fleets, Setup

EVENT_CONNECTIONS = 16  # sender connections (open loop: a slow server queues, it is not spared)


@dataclass
class Server:
    """One side of a live comparison: who the sockets talk to and who takes the events."""

    name: str
    kind: str  # wsfleet client kind
    procs: list[ServiceProcess]  # sockets go to procs[0]; events round-robin over the others

    @property
    def socket_base(self) -> str:
        return self.procs[0].url.replace("http://", "ws://")

    @property
    def event_ports(self) -> list[int]:
        return [p.port for p in (self.procs[1:] or self.procs)]

    @property
    def url(self) -> str:
        return self.procs[0].url

    @property
    def event_url(self) -> str:
        return (self.procs[1:] or self.procs)[0].url

    def cpu(self) -> float:
        """CPU seconds of every process of this side (push and ingest)."""
        return sum(cpu_seconds(p.proc.pid) for p in self.procs)

    def socket_cpu(self) -> float:
        """CPU seconds of the process holding the sockets (the push alone)."""
        return cpu_seconds(self.procs[0].proc.pid)

    @property
    def socket_pid(self) -> int:
        return self.procs[0].proc.pid


def service(ctx: Context) -> Server:
    return Server("service", "callstate", ctx.services)


def socketio(ctx: Context) -> tuple[Server, list[BaselineProcess]]:
    procs = [BaselineProcess("socketio_server", ctx.redis_url) for _ in range(len(ctx.services))]
    return Server("socket.io", "socketio", list(procs)), procs


def raw(ctx: Context) -> tuple[Server, list[ServiceProcess]]:
    """The raw fan-out ceiling (bench/baselines/raw_broadcast.py): sockets on `websockets`' own
    server, events to as many ingest processes as the service has besides its push process. It
    speaks the part of the service's protocol the fleet reads, so its clients are `callstate` ones."""
    procs: list[ServiceProcess] = [BaselineServer("raw_broadcast", ctx.redis_url)]
    try:
        procs += [BaselineProcess("raw_broadcast", ctx.redis_url) for _ in range(max(1, len(ctx.services) - 1))]
    except BaseException:
        stop(procs)
        raise
    return Server("websockets.broadcast (raw)", "callstate", procs), procs


def stop(procs: list[ServiceProcess]) -> None:
    for p in procs:
        p.stop()


def specs(server: Server, viewers: list[w.Viewer]) -> list[ClientSpec]:
    return [ClientSpec(server.kind, server.socket_base, v.token, f"{v.account}|{v.endpoint or '*'}")
            for v in viewers]


def seed_and_subscribe(ctx: Context, res: ScenarioResult, fleets: Fleets, server: Server, world: w.World,
                       viewers: list[w.Viewer], label: str) -> Setup:
    """Seed the world's sessions through `server`'s event path, then subscribe every viewer's socket,
    noting slow setups."""
    w.seed(server.event_url, world.seed_events())
    fleets.reset()
    setup = fleets.connect(specs(server, viewers))
    ctx.log(f"  {label}: {len(viewers)} sockets subscribed in {setup.describe()}")
    if setup.troubled:
        res.notes.append(f"{label}: subscribing {len(viewers)} sockets took {setup.describe()}")
    return setup


def receivers_per_event(world: w.World, viewers: list[w.Viewer]) -> float:
    """How many sockets see an event on a uniformly random session (frames per event)."""
    managers: dict[str, int] = {}
    users: dict[tuple[str, str], int] = {}
    for v in viewers:
        if v.manager:
            managers[v.account] = managers.get(v.account, 0) + 1
        else:
            users[(v.account, v.endpoint or "")] = users.get((v.account, v.endpoint or ""), 0) + 1
    total = 0
    for a in range(world.accounts):
        acc = world.account(a)
        for e in range(world.endpoints):
            total += managers.get(acc, 0) + users.get((acc, world.endpoint(e)), 0)
    return total / (world.accounts * world.endpoints)


class Events:
    """Load source: one `session.upsert` per request, on a random session, stamped at send time."""

    def __init__(self, index: int, prefix: str, accounts: int, endpoints: int, sessions: int,
                 tag: str) -> None:
        self.world = w.World(prefix, accounts, endpoints, sessions)
        self.rng = random.Random(f"{tag}-{index}")
        self.tag = f"{tag}-{index}"
        self.n = 0
        self.headers = {"Authorization": f"Bearer {w.EVENTS_KEY}", "Content-Type": "application/json"}

    def next(self) -> bytes:
        a, e, s = self.world.random_session(self.rng)
        self.n += 1
        body = w.stamped_upsert(f"{self.tag}-{self.n}", self.world.account(a), self.world.session(a, e, s),
                                time.time_ns())
        return request_bytes("POST", "/events", "127.0.0.1", body, self.headers)


def send_events(ctx: Context, server: Server, world: w.World, rate: float, tag: str,
                duration: float | None = None) -> HttpResult:
    load = HttpLoad(
        source="bench.scenarios.live:Events", ports=server.event_ports, mode="open",
        concurrency=EVENT_CONNECTIONS, duration=duration or ctx.sizes.duration, rate=rate,
        source_args={"prefix": world.prefix, "accounts": world.accounts, "endpoints": world.endpoints,
                     "sessions": world.sessions_per_endpoint, "tag": tag},
    )
    result = httpload.run(load, 1)
    if result.ok == 0:
        raise RuntimeError(f"{server.name}: no event accepted (statuses {result.statuses}, failed {result.failed})")
    return result
