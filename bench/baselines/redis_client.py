"""The baselines' Redis client: the one redis-py offers for what REDIS_URL names, a plain client
for one node, `RedisCluster` (slot routing, MOVED/ASK followed) for a node of a Redis Cluster,
which is how their users would run them on a cluster. Which one is asked once, at start-up
(INFO cluster: excluded from the bench's command counts like every INFO)."""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio as aioredis


def is_cluster(url: str) -> bool:
    client = redis.Redis.from_url(url)
    try:
        return bool(int(client.info("cluster").get("cluster_enabled", 0)))
    finally:
        client.close()


def async_client(url: str, max_connections: int | None = None) -> Any:
    """`aioredis.RedisCluster` on a cluster; otherwise `aioredis.Redis`, with a blocking pool of
    `max_connections` when given (requests queue for a connection instead of failing)."""
    if is_cluster(url):
        return aioredis.RedisCluster.from_url(url)
    if max_connections is None:
        return aioredis.Redis.from_url(url)
    return aioredis.Redis(connection_pool=aioredis.BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=30))
