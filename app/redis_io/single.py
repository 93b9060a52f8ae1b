"""One Redis server: a node at REDIS_URL, the primary that Sentinel names, or
the embedded in-process one. All commands go to it through one `NodeWriter`."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis

from app.redis_io.node import NodeWriter
from app.redis_io.resp import Command


class SingleNode:
    """`topology`: "single" (REDIS_URL), "sentinel" (a primary found and
    followed through Sentinel by redis-py's SentinelConnectionPool) or
    "embedded" (fakeredis, one process)."""

    sharded = False  # plain PUBLISH / SUBSCRIBE

    def __init__(self, client: aioredis.Redis, topology: str) -> None:
        self.client = client
        self.topology = topology
        self.writer = NodeWriter(client.connection_pool)
        self.writers = [self.writer]

    def run(self, commands: Sequence[Command]) -> asyncio.Future[list[Any]]:
        return self.writer.submit(commands)

    async def ready(self) -> SingleNode:
        return self

    def pubsub_client(self, channel: bytes) -> tuple[str, aioredis.Redis] | None:
        return self.topology, self.client

    async def refresh(self) -> None:
        """Nothing to learn: the pool (or Sentinel) finds the server."""

    async def health(self) -> dict[str, Any]:
        try:
            ok = (await self.run([("PING",)]))[0] in (True, b"PONG", "PONG")
        except (aioredis.RedisError, OSError):
            ok = False
        return {"redis": ok, "topology": self.topology}

    async def aclose(self) -> None:
        await self.writer.aclose()
        await self.client.aclose(close_connection_pool=True)
