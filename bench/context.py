"""What every scenario gets: the sizes, the shared Redis (one node or a cluster: `redis.kind`),
the ASGI server the service runs under (`server`: uvicorn or granian), the service processes,
and a log.

`services` holds max(2, procs) processes: the HTTP scenarios use the first `procs`; the live
scenarios keep their sockets on the first and post events to the others, so the process that
holds the sockets does only the push (events reach it through Redis, as in production)."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

from bench.procs import RedisOps, RedisTopology, ServiceProcess, service_env
from bench.sizes import Sizes


@dataclass
class Context:
    sizes: Sizes
    redis: RedisTopology
    services: list[ServiceProcess]
    started: float = field(default_factory=time.monotonic)
    server: str = "uvicorn"  # SERVER of every service process this pass starts

    def service_env(self) -> dict[str, str]:
        """The environment of a service process of this pass (a scenario starting its own too)."""
        return {**service_env(), "SERVER": self.server}

    @property
    def redis_url(self) -> str:
        """What the service and the baselines are given (on a cluster, one node's URL)."""
        return self.redis.url

    def redis_ops(self) -> RedisOps:
        """Commands counter over every master."""
        return self.redis.ops()

    @property
    def http_services(self) -> list[ServiceProcess]:
        return self.services[: self.sizes.procs]

    @property
    def ports(self) -> list[int]:
        return [s.port for s in self.http_services]

    def log(self, message: str) -> None:
        print(f"[{time.monotonic() - self.started:7.1f}s] [{self.redis.kind}, {self.server}] {message}", file=sys.stderr, flush=True)
