"""The baselines' Redis client for what REDIS_URL names: one node, or a node of a Redis Cluster.

On a cluster each key's command goes straight to the master of its slot, read once from
`CLUSTER SLOTS` at start-up: one plain redis-py client (a connection pool) per master. That is
the least work a client can do on a cluster, which suits a ceiling; the bench moves no slot
while it measures, so MOVED/ASK never happen. redis-py 8.1's `RedisCluster` (asyncio) was
tried first and fails under the bench's load: with 32 concurrent requests it answered a
third of them with `AttributeError: 'NoneType' object has no attribute 'writelines'` and
`RuntimeError: unable to perform operation on <TCPTransport closed=True ...>` (connections
closed under in-flight commands), so the ceiling measured 109/s instead of >1,000/s.
Which Redis it is is asked once (INFO cluster: left out of the bench's command counts like
every INFO)."""

from __future__ import annotations

import bisect

import redis
import redis.asyncio as aioredis
from redis.crc import key_slot


def _pool_client(url: str, max_connections: int | None) -> aioredis.Redis:
    if max_connections is None:
        return aioredis.Redis.from_url(url)
    # Requests queue for a pooled connection instead of failing under a burst.
    return aioredis.Redis(connection_pool=aioredis.BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=30))


class Router:
    """`router(key)`: the client to send `key`'s commands (or a MULTI on keys of its slot) to."""

    def __init__(self, url: str, max_connections: int | None = None) -> None:
        probe = redis.Redis.from_url(url)
        try:
            self.cluster = bool(int(probe.info("cluster").get("cluster_enabled", 0)))
            slots = probe.execute_command("CLUSTER", "SLOTS") if self.cluster else []
        finally:
            probe.close()
        if not self.cluster:
            self._single = _pool_client(url, max_connections)
            return
        clients: dict[tuple[str, int], aioredis.Redis] = {}
        ranges = sorted((int(start), int(end), (_text(m[0]), int(m[1]))) for start, end, m, *_ in slots)
        for _, _, (host, port) in ranges:
            if (host, port) not in clients:
                clients[(host, port)] = _pool_client(f"redis://{host}:{port}/0", max_connections)
        self._starts = [start for start, _, _ in ranges]
        self._by_range = [clients[node] for _, _, node in ranges]

    def __call__(self, key: str) -> aioredis.Redis:
        if not self.cluster:
            return self._single
        return self._by_range[bisect.bisect_right(self._starts, key_slot(key.encode())) - 1]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
