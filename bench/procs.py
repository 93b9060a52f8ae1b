"""The processes a run measures: Redis (one redis-server, or a 3-master Redis Cluster), the
service, the baselines; and what the OS says they cost (CPU seconds, RSS) and what Redis did
for them (commands, summed over every master). The servers themselves are started by
bench/servers.py (which the tests use too)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import redis

from bench.servers import (
    ROOT,
    RedisClusterServers,
    RedisServer,
    ServiceProcess,
)

__all__ = [
    "PUBLIC_URL",
    "ROOT",
    "TWILIO_TOKEN",
    "BaselineProcess",
    "BaselineServer",
    "RedisOps",
    "RedisServer",
    "RedisTopology",
    "ServiceProcess",
    "cpu_seconds",
    "machine_busy",
    "rss_bytes",
    "service_env",
    "start_redis",
    "start_services",
]

REDIS_KINDS = ("single", "cluster")
CLUSTER_MASTERS = 3

TWILIO_TOKEN = "bench-twilio-auth-token-0123456789ab"
# What the service is told Twilio called; signatures are computed over this URL.
PUBLIC_URL = "https://callstate.bench.invalid"
_TICKS = os.sysconf("SC_CLK_TCK")


def service_env() -> dict[str, str]:
    return {"TWILIO_AUTH_TOKEN": TWILIO_TOKEN, "PUBLIC_URL": PUBLIC_URL}


def start_services(redis_url: str, count: int, env: dict[str, str]) -> list[ServiceProcess]:
    """`count` separate `python -m app serve` processes, each on its own port, one Redis."""
    started: list[ServiceProcess] = []
    try:
        for _ in range(count):
            started.append(ServiceProcess(redis_url, env=env))
    except BaseException:
        for p in started:
            p.stop()
        raise
    return started


class BaselineProcess(ServiceProcess):
    """A baseline ASGI app (`bench.baselines.<module>:app`) under uvicorn with the service's
    event loop and HTTP parser (uvloop, httptools) and uvicorn's default WebSocket settings
    (how python-socketio is usually deployed), on a free port."""

    def __init__(self, module: str, redis_url: str, env: dict[str, str] | None = None) -> None:
        self._start(
            [sys.executable, "-m", "uvicorn", "--factory", f"bench.baselines.{module}:app",
             "--host", "127.0.0.1", "--port", "{port}", "--log-level", "warning",
             "--timeout-graceful-shutdown", "5"],
            f"bench-{module}", {"REDIS_URL": redis_url, **service_env(), **(env or {})},
        )


class BaselineServer(ServiceProcess):
    """A baseline that is its own server, not an ASGI app: `python -m bench.baselines.<module>`,
    listening on HOST:PORT (the raw fan-out ceiling, `websockets`' own asyncio server)."""

    def __init__(self, module: str, redis_url: str) -> None:
        self._start([sys.executable, "-m", f"bench.baselines.{module}"], f"bench-{module}",
                    {"REDIS_URL": redis_url, **service_env()})


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, all cores, from /proc/stat;
    two readings give how loaded the machine was in between (1.0 = every core busy)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    total = sum(fields[:8])
    return (total - idle) / _TICKS, total / _TICKS


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


class RedisTopology:
    """The Redis a run measures against: `kind` "single" (one redis-server) or "cluster" (a real
    Redis Cluster of `CLUSTER_MASTERS` masters, no replicas, on loopback). `url` is what the
    service and the baselines are given (on a cluster, one node's URL: the service discovers
    the rest by itself)."""

    def __init__(self, kind: str) -> None:
        if kind not in REDIS_KINDS:
            raise ValueError(f"unknown Redis topology {kind!r}; choose from {', '.join(REDIS_KINDS)}")
        self.kind = kind
        self._server: RedisServer | RedisClusterServers = (
            RedisClusterServers(masters=CLUSTER_MASTERS, replicas=0) if kind == "cluster" else RedisServer())
        self.url: str = self._server.url
        if isinstance(self._server, RedisClusterServers):
            self.master_urls = [f"redis://127.0.0.1:{n.port}/0" for n in self._server.masters()]
        else:
            self.master_urls = [self.url]

    @property
    def label(self) -> str:
        return f"Redis Cluster, {len(self.master_urls)} masters" if self.kind == "cluster" else "one Redis node"

    def flush(self) -> None:
        """FLUSHALL on every master (the only node, or each master of the cluster)."""
        for url in self.master_urls:
            client = redis.Redis.from_url(url)
            try:
                client.flushall()
            finally:
                client.close()

    def ops(self) -> RedisOps:
        return RedisOps(self.master_urls)

    def stop(self) -> None:
        self._server.stop()


def start_redis(kind: str) -> RedisTopology:
    return RedisTopology(kind)


# Not the clients' work: our own INFO reads (and the commit script's INFO replication call), and
# the slot-map reads of cluster clients (CLUSTER SLOTS/SHARDS/NODES, the service's and redis-py's;
# Redis 7 names them `cmdstat_cluster|slots` and so on: every subcommand is left out).
NOT_COUNTED = frozenset({"info", "cluster"})


def counted(command: str) -> bool:
    """Whether a commandstats name (`get`, `cluster|slots`) is the clients' work."""
    return command.split("|", 1)[0] not in NOT_COUNTED


class RedisOps:
    """Commands Redis executed (every command, including those a Lua script runs), from
    INFO commandstats, so a scenario can report the Redis work it caused; summed over every
    URL given (each master of a cluster), without INFO and CLUSTER (see NOT_COUNTED)."""

    def __init__(self, urls: str | list[str]) -> None:
        self._clients = [redis.Redis.from_url(u) for u in ([urls] if isinstance(urls, str) else urls)]

    def total(self) -> int:
        return sum(n for k, n in self.by_command().items() if counted(k))

    def by_command(self) -> dict[str, int]:
        """Calls per command (every command, NOT_COUNTED ones too), summed over the nodes."""
        out: dict[str, int] = {}
        for client in self._clients:
            for k, v in client.info("commandstats").items():
                name = k.removeprefix("cmdstat_")
                out[name] = out.get(name, 0) + int(v["calls"])
        return out

    def close(self) -> None:
        for client in self._clients:
            client.close()
