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
_MAX_WRITE = 1024  # commands per coalesced write; a larger turn's batches go out in several
_WRITER = "_callstate_writer"  # the attribute of a pool that holds its writer


_HEADS = [b"$%d\r\n" % n for n in range(1024)]  # bulk string headers, built once


def pack(commands: Sequence[Command]) -> bytes:
    """RESP arrays of bulk strings for `commands`, as one bytes object (what
    redis-py's `pack_commands` sends, without its encoder and buffer logic).
    Arguments are str (UTF-8), bytes or int; anything else is a TypeError."""
    out: list[bytes] = []
    add = out.append
    heads = _HEADS
    for command in commands:
        add(b"*%d\r\n" % len(command))
        for arg in command:
            kind = type(arg)
            if kind is str:
                data = arg.encode()  # type: ignore[union-attr]
            elif kind is bytes:
                data = arg
            elif kind is int:
                data = b"%d" % arg  # type: ignore[str-format]
            else:
                data = _other(arg)
            size = len(data)
            add(heads[size] if size < 1024 else b"$%d\r\n" % size)
            add(data)
            add(b"\r\n")
    return b"".join(out)


def _other(arg: object) -> bytes:
    """Subclasses (a str enum, say) as their base type; nothing else."""
    if isinstance(arg, str):
        return arg.encode()
    if isinstance(arg, bytes):
        return bytes(arg)
    if isinstance(arg, int) and not isinstance(arg, bool):
        return b"%d" % arg
    raise TypeError(f"cannot send {type(arg).__name__} to Redis")


async def run(redis: aioredis.Redis, commands: Sequence[Command]) -> list[Any]:
    """Send `commands` as one batch and read their replies in order: like a
    non-transactional pipeline, without a pipeline object and its per-command
    bookkeeping (the hot write path runs two of these per callback). Replies
    are raw (bytes, ints, lists); an error reply comes back in its place as a
    `ResponseError` (the other commands still ran).

    Batches are coalesced: every batch asked for in the same event-loop turn
    (on the same client's pool) goes out in ONE socket write on one
    connection, and the replies are handed back to each caller in order, so
    under concurrency a batch costs a fraction of a write, a read and a loop
    wake-up. Each caller still gets exactly its own replies and error
    replies; a connection or timeout error fails every batch of that write.

    Connections come from the client's pool and are kept aside for the next
    write (at most `_MAX_IDLE`), which spares the pool's locking; a connection
    whose write failed in any way is disconnected, so a half-read one is never
    reused. One timeout (the connection's `socket_timeout`) bounds the whole
    write. On a connection error the whole write is resent on a fresh
    connection as the client's retry policy allows, as redis-py's pipeline
    does, so every batch sent here must be safe to send twice (reads, `SET NX`,
    scripts that check an idempotency marker or a revision)."""
    pool: Any = redis.connection_pool
    writer: _Writer | None = getattr(pool, _WRITER, None)
    if writer is None:
        writer = _Writer(pool)
        setattr(pool, _WRITER, writer)  # on the pool, so both go together (its kept connections refer to it)
    return await writer.submit(commands)


def writer_of(redis: aioredis.Redis) -> _Writer | None:
    """The client's coalescing writer, once it has run a batch (tests, counters)."""
    return getattr(redis.connection_pool, _WRITER, None)


_Pending = tuple[Sequence[Command], "asyncio.Future[list[Any]]"]


class _Writer:
    """One pool's coalescing writer (see `run`)."""

    def __init__(self, pool: Any) -> None:
        self.pool = weakref.ref(pool)  # the pool holds the writer
        self.loop: asyncio.AbstractEventLoop | None = None
        self.idle: list[Any] = []
        self.pending: list[_Pending] = []
        self.scheduled = False
        self.tasks: set[asyncio.Task[None]] = set()
        self.writes = 0  # socket writes made (each carrying one or more batches)
        self.batches = 0

    def submit(self, commands: Sequence[Command]) -> asyncio.Future[list[Any]]:
        loop = asyncio.get_running_loop()
        if loop is not self.loop:  # a new loop (tests): nothing of the old one's can be used here
            self.loop, self.idle, self.pending, self.scheduled = loop, [], [], False
        future: asyncio.Future[list[Any]] = loop.create_future()
        self.pending.append((commands, future))
        if not self.scheduled:
            self.scheduled = True
            # After every callback already queued for this turn: they all share the write.
            loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        self.scheduled = False
        pending, self.pending = self.pending, []
        loop = asyncio.get_running_loop()
        group: list[_Pending] = []
        size = 0
        for item in pending:
            if item[1].done():  # its caller was cancelled before anything was sent
                continue
            if group and size + len(item[0]) > _MAX_WRITE:
                self._start(loop, group)
                group, size = [], 0
            group.append(item)
            size += len(item[0])
        if group:
            self._start(loop, group)

    def _start(self, loop: asyncio.AbstractEventLoop, group: list[_Pending]) -> None:
        task = loop.create_task(self._write(group))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _write(self, group: list[_Pending]) -> None:
        try:
            commands = [command for batch, _ in group for command in batch]
            replies = await self._round_trip(pack(commands), len(commands))
        except BaseException as exc:
            for _, future in group:
                if not future.done():
                    future.set_exception(exc if isinstance(exc, Exception) else aioredis.ConnectionError(
                        "Redis write cancelled"))
            if not isinstance(exc, Exception):
                raise
            return
        self.writes += 1
        self.batches += len(group)
        at = 0
        for batch, future in group:
            n = len(batch)
            if not future.done():
                future.set_result(replies[at:at + n])
            at += n

    async def _round_trip(self, packed: bytes, count: int) -> list[Any]:
        idle, pool = self.idle, self.pool()
        if pool is None:
            raise aioredis.ConnectionError("Redis client closed")
        conn: Any = idle.pop() if idle else await pool.get_connection()
        try:
            replies: list[Any] = await conn.retry.call_with_retry(lambda: _send(conn, packed, count),
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


async def _send(conn: Any, packed: bytes, count: int) -> list[Any]:
    replies: list[Any] = []
    try:
        async with asyncio.timeout(conn.socket_timeout):
            await conn.send_packed_command(packed)
            for _ in range(count):
                try:
                    replies.append(await conn.read_response(timeout=math.inf))  # bounded above, once
                except aioredis.ResponseError as exc:
                    replies.append(exc)
    except TimeoutError:
        await conn.disconnect()
        raise aioredis.TimeoutError(f"Timeout reading from {getattr(conn, 'host', 'redis')}") from None
    return replies
