"""Connecting to Redis: a real server at REDIS_URL, or the embedded in-process one."""

from __future__ import annotations

import redis.asyncio as aioredis

from app.config import Settings


def connect(settings: Settings) -> aioredis.Redis:
    if settings.redis_url:
        # A blocking pool: under a burst, callers wait briefly for a connection
        # instead of failing with "Too many connections".
        pool = aioredis.BlockingConnectionPool.from_url(
            settings.redis_url, max_connections=settings.redis_max_connections, timeout=10,
            health_check_interval=30,
        )
        return aioredis.Redis(connection_pool=pool)
    # Embedded store: a complete in-process Redis (fakeredis with Lua), so a
    # laptop runs the exact same code path, scripts included, with no server.
    import fakeredis

    return fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer())
