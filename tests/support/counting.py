"""A redis-py client that records what it sends, on the wire: round trips,
every command, the keys of every script call; and can act just before a write
(a rival writer stepping in). For tests that count a request's cost or make a
race happen at an exact point."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.connection import Connection

from tests.support.resp import resp_commands


class CountingConnection(Connection):
    """Counts round trips where they happen, on the wire: each socket write of
    one command or of a whole batch (a pipeline, or the store's
    `Redis.run`) is one round trip, whatever sent it (so a client
    library's hidden extra request, like a pipeline's `SCRIPT EXISTS`, is
    counted too). `run` coalesces the batches of concurrent requests into one
    write; the tests send one request at a time, so a write carries one
    request's batch and the counts are per request. Records the keys of every
    script call, read back from the bytes sent, however they were packed."""

    client: CountingRedis

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        self.client.round_trips += 1
        data = command.encode() if isinstance(command, str) else (
            command if isinstance(command, bytes) else b"".join(command))
        batch = [[_text(arg) for arg in args] for args in resp_commands(data)]
        if self.client.before_send is not None:
            self.client.before_send(batch)
        for args in batch:
            self.client.commands.append(tuple(args))
            if args[0].upper() in ("EVALSHA", "EVAL"):
                self.client.scripts.append(tuple(args[3:3 + int(args[2])]))
        await super().send_packed_command(command, check_health)


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


class CountingRedis(aioredis.Redis):
    round_trips: int
    commands: list[tuple[str, ...]]
    scripts: list[tuple[str, ...]]
    before_send: Callable[[list[list[str]]], None] | None

    @classmethod
    def connect(cls, url: str) -> CountingRedis:
        holder: dict[str, CountingRedis] = {}
        connection = type("Counted", (CountingConnection,), {"client": property(lambda _: holder["client"])})
        redis = cls.from_url(url, connection_class=connection)
        redis.round_trips, redis.commands, redis.scripts, redis.before_send = 0, [], [], None
        holder["client"] = redis
        return redis


async def calls_of(r: aioredis.Redis, command: str) -> int | None:
    """How many times Redis has run `command` (INFO commandstats, scripts' inner calls
    included); None on fakeredis, which has no commandstats."""
    try:
        stats = await r.info("commandstats")
    except Exception:  # noqa: BLE001 - fakeredis has no commandstats
        return None
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))
