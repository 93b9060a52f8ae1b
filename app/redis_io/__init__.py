"""Redis, whatever its shape: one node, a primary followed through Sentinel,
a Redis Cluster, or the embedded in-process store.

Everything the service sends is a batch of raw commands through
`Redis.run(commands)`: coalesced per node and loop turn (`node.py`), routed by
slot in a cluster (`routing.py`, `cluster.py`). `connect` builds the right one
from the settings; with a plain REDIS_URL it asks that node whether it is part
of a cluster (once, on first use) and discovers the rest by itself."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import redis.asyncio as aioredis

from app.redis_io.cluster import Cluster, ClusterDown
from app.redis_io.node import NodeWriter, node_pool
from app.redis_io.resp import Command, pack
from app.redis_io.routing import RoutingError
from app.redis_io.single import SingleNode

if TYPE_CHECKING:
    from app.config import Settings

__all__ = ["REDIS_DOWN", "Cluster", "ClusterDown", "Command", "Redis", "RoutingError", "SingleNode", "connect",
           "pack", "wrap"]

REDIS_DOWN = (aioredis.ConnectionError, aioredis.TimeoutError, OSError)
"""What "Redis cannot be reached right now" looks like (ClusterDown included): answered 503."""


class Redis(Protocol):
    """What the store, the position reads and the broker need of Redis."""

    topology: str  # "embedded" | "single" | "sentinel" | "cluster"
    sharded: bool  # pub/sub is sharded (SPUBLISH / SSUBSCRIBE)

    def run(self, commands: Sequence[Command]) -> Awaitable[list[Any]]: ...

    async def ready(self) -> Redis: ...

    def pubsub_client(self, channel: bytes) -> tuple[str, aioredis.Redis] | None: ...

    async def refresh(self) -> None: ...

    async def health(self) -> dict[str, Any]: ...

    @property
    def writers(self) -> list[NodeWriter]: ...

    async def aclose(self) -> None: ...


class _Discovered:
    """A REDIS_URL that may name a cluster node: resolved on first use, then
    every call goes straight to the concrete backend."""

    def __init__(self, url: str, settings: Settings) -> None:
        self._url = url
        self._settings = settings
        self._impl: SingleNode | Cluster | None = None
        self._lock = asyncio.Lock()
        self.topology = "single"
        self.sharded = False

    async def ready(self) -> Redis:
        if self._impl is None:
            async with self._lock:
                if self._impl is None:
                    self._impl = await self._discover()
                    self.topology, self.sharded = self._impl.topology, self._impl.sharded
                    # From now on a batch goes straight to the backend: no extra coroutine per batch.
                    self.run = self._impl.run  # type: ignore[method-assign,assignment]
        return self._impl

    async def _discover(self) -> SingleNode | Cluster:
        s = self._settings
        timeout = s.redis_socket_timeout or None
        pool = node_pool(self._url, s.redis_max_connections, timeout)
        single = SingleNode(aioredis.Redis(connection_pool=pool), "single")
        try:
            info = (await single.run([("INFO", "cluster")]))[0]
        except BaseException:
            await single.aclose()
            raise
        text = info.decode() if isinstance(info, bytes) else str(info)
        if "cluster_enabled:1" not in text:
            return single
        await single.aclose()
        return await Cluster(self._url, max_connections=s.redis_max_connections, socket_timeout=timeout,
                             retry_seconds=s.redis_retry_seconds).ready()

    async def run(self, commands: Sequence[Command]) -> list[Any]:
        """Until the topology is known (then `ready` puts the backend's own `run` here)."""
        impl = await self.ready()
        return await impl.run(commands)

    def pubsub_client(self, channel: bytes) -> tuple[str, aioredis.Redis] | None:
        return None if self._impl is None else self._impl.pubsub_client(channel)

    async def refresh(self) -> None:
        await (await self.ready()).refresh()

    async def health(self) -> dict[str, Any]:
        try:
            impl = await self.ready()
        except REDIS_DOWN:
            return {"redis": False, "topology": self.topology}
        return await impl.health()

    @property
    def writers(self) -> list[NodeWriter]:
        return [] if self._impl is None else self._impl.writers

    async def aclose(self) -> None:
        if self._impl is not None:
            await self._impl.aclose()


def connect(settings: Settings) -> Redis:
    """The Redis the settings name: Sentinel (REDIS_SENTINELS), a node or a
    cluster (REDIS_URL), else the embedded in-process store."""
    if settings.redis_sentinels:
        from redis.asyncio.sentinel import Sentinel

        timeout = settings.redis_socket_timeout or None
        hosts = [(h.rpartition(":")[0] or "127.0.0.1", int(h.rpartition(":")[2]))
                 for h in settings.redis_sentinels.split(",") if h.strip()]
        sentinel = Sentinel(hosts, socket_timeout=timeout, socket_connect_timeout=timeout)  # type: ignore[no-untyped-call, unused-ignore]  # typed from redis-py 8.2
        client = sentinel.master_for(settings.redis_sentinel_master, socket_timeout=timeout,
                                     socket_connect_timeout=timeout)
        return SingleNode(client, "sentinel")
    if settings.redis_url:
        return _Discovered(settings.redis_url, settings)
    # Embedded store: a complete in-process Redis (fakeredis with Lua), so a
    # laptop runs the exact same code path, scripts included, with no server.
    import fakeredis

    return SingleNode(fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer()), "embedded")


def wrap(client: aioredis.Redis | Redis) -> Redis:
    """A redis-py client (one node, or fakeredis) as a `Redis`; a `Redis` as it is."""
    if isinstance(client, aioredis.Redis):
        embedded = type(client).__module__.startswith("fakeredis")
        return SingleNode(client, "embedded" if embedded else "single")
    return client
