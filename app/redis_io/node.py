"""One Redis node's coalescing writer: every batch asked for in one event-loop
turn goes out in ONE socket write on one connection.

Replies are handed back to each caller in order, so under concurrency a batch
costs a fraction of a write, a read and a loop wake-up; each caller still gets
exactly its own replies, error replies in their place (as exceptions: the
other commands still ran). A connection or timeout error fails every batch of
that write.

Connections come from the node's redis-py pool (its public `get_connection` /
`release`, and the connection's `send_packed_command` / `read_response`) and
are kept aside for the next write (at most `_MAX_IDLE`), which spares the
pool's locking. A connection whose write failed in any way is disconnected, so
a half-read one is never reused.

Resending. A kept connection may have died while idle (Redis restarted, a
failover): a write that fails with a connection error is sent once more on a
fresh connection, and only a second failure reaches the callers. So every
batch sent through here must be safe to send twice; the store's are by design
(reads, `SET NX`, and scripts that check an idempotency marker or a revision:
see `store.py`)."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.connection import ConnectionPool

from app.redis_io.resp import Command, pack

_MAX_IDLE = 64  # connections kept aside, beyond which they go back to the pool
_MAX_WRITE = 1024  # commands per coalesced write; a larger turn's batches go out in several
_LOST = (aioredis.ConnectionError, OSError)  # the connection is gone (not a slow server: no resend)

_Pending = tuple[Sequence[Command], "asyncio.Future[list[Any]]"]


def node_pool(url: str, max_connections: int, socket_timeout: float | None) -> ConnectionPool:
    """One node's connections. Blocking: under a burst, callers wait briefly for a
    connection instead of failing with "Too many connections"."""
    return aioredis.BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=10, health_check_interval=30,
        socket_timeout=socket_timeout, socket_connect_timeout=socket_timeout,
    )


class NodeWriter:
    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool
        self.loop: asyncio.AbstractEventLoop | None = None
        self.idle: list[Any] = []
        self.pending: list[_Pending] = []
        self.scheduled = False
        self.tasks: set[asyncio.Task[None]] = set()
        self.writes = 0  # socket writes made (each carrying one or more batches)
        self.batches = 0
        self.resends = 0  # writes sent again after their connection was found dead

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
        try:
            return await self._on_connection(packed, count, kept=True)
        except _LOST:
            self.resends += 1
            return await self._on_connection(packed, count, kept=False)

    async def _on_connection(self, packed: bytes, count: int, kept: bool) -> list[Any]:
        idle, pool = self.idle, self.pool
        conn: Any = idle.pop() if kept and idle else await pool.get_connection()  # type: ignore[no-untyped-call]
        try:
            replies = await _send(conn, packed, count)
        except BaseException:
            await conn.disconnect()  # a half-read connection must never be reused
            await pool.release(conn)
            raise
        if len(idle) < _MAX_IDLE:
            idle.append(conn)
        else:
            await pool.release(conn)
        return replies

    async def aclose(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        idle, self.idle = self.idle, []
        for conn in idle:
            await self.pool.release(conn)


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
