"""Connecting to Redis: a real server at REDIS_URL, or the embedded in-process one."""

from __future__ import annotations

import asyncio
import math
import weakref
from collections.abc import Sequence
from typing import Any

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


Command = tuple[str | bytes | int, ...]

_MAX_IDLE = 64  # connections kept aside per pool for `run`, beyond which they go back to the pool
_idle: weakref.WeakKeyDictionary[Any, list[Any]] = weakref.WeakKeyDictionary()


async def run(redis: aioredis.Redis, commands: Sequence[Command]) -> list[Any]:
    """Send `commands` in one write and read their replies in order: one round
    trip, like a non-transactional pipeline, without building a pipeline object
    and its per-command bookkeeping (the hot write path runs two of these per
    callback). Replies are raw (bytes, ints, lists); an error reply comes back
    in its place as a `ResponseError` (the other commands still ran).

    Connections come from the client's pool and are kept aside for the next
    batch (at most `_MAX_IDLE`), which spares the pool's locking per batch; a
    connection whose batch failed in any way is disconnected, so a half-read
    one is never reused. One timeout (the connection's `socket_timeout`) bounds
    the whole batch. On a connection error the batch is resent on a fresh
    connection as the client's retry policy allows, as redis-py's pipeline
    does, so every batch sent here must be safe to send twice (reads, `SET NX`,
    scripts that check an idempotency marker or a revision)."""
    pool: Any = redis.connection_pool
    idle = _idle.get(pool)
    if idle is None:
        idle = _idle[pool] = []
    conn: Any = idle.pop() if idle else await pool.get_connection()
    try:
        replies: list[Any] = await conn.retry.call_with_retry(lambda: _send(conn, commands),
                                                              lambda _: conn.disconnect())
    except BaseException:
        await conn.disconnect()  # a half-read connection must never be reused
        await pool.release(conn)
        raise
    if len(idle) < _MAX_IDLE:
        idle.append(conn)
    else:
        await pool.release(conn)
    return replies


async def _send(conn: Any, commands: Sequence[Command]) -> list[Any]:
    replies: list[Any] = []
    try:
        async with asyncio.timeout(conn.socket_timeout):
            await conn.send_packed_command(conn.pack_commands(commands))
            for _ in commands:
                try:
                    replies.append(await conn.read_response(timeout=math.inf))  # bounded above, once
                except aioredis.ResponseError as exc:
                    replies.append(exc)
    except TimeoutError:
        await conn.disconnect()
        raise aioredis.TimeoutError(f"Timeout reading from {getattr(conn, 'host', 'redis')}") from None
    return replies
