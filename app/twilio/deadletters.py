"""Callbacks no session could be found for (Redis I/O).

Each is kept whole (the signed query string and every form parameter) in one
bounded list, newest first, for operators, and a copy is filed under each
Twilio SID it names, so that when a later callback links one of those SIDs to
a session the letter can be replayed and nothing it said is lost. Nothing here
is ever shown through the API.
"""

from __future__ import annotations

from typing import Final

import msgspec

import redis.asyncio as aioredis

from app.storage import keys
from app.redis_io import Command, Redis, wrap
from app.redis_io.replies import raise_errors

PER_SID_MAX: Final = 100


class Letter(msgspec.Struct, frozen=True, kw_only=True):
    """A verified callback as received."""

    kind: str  # "status" | "conference": the endpoint it came to
    query: str  # the raw query string, as signed
    form: list[tuple[str, str]]
    received_at: str
    reason: str = ""
    sids: list[str] = []


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(Letter).decode


class DeadLetters:
    def __init__(self, redis: Redis | aioredis.Redis, max_len: int, ttl_seconds: int) -> None:
        self.redis = wrap(redis)
        self.max_len = max_len
        self.ttl = ttl_seconds

    async def add(self, letter: Letter) -> None:
        raw = _encode(letter)
        commands: list[Command] = [("LPUSH", keys.dead_letters(), raw), ("LTRIM", keys.dead_letters(), 0, self.max_len - 1)]
        for sid in letter.sids:
            index = keys.dead_letter_index(sid)
            commands += [("LPUSH", index, raw), ("LTRIM", index, 0, PER_SID_MAX - 1), ("EXPIRE", index, self.ttl)]
        commands.append(("INCR", keys.dead_letter_count()))
        raise_errors(await self.redis.run(commands))

    async def naming(self, sid: str) -> list[tuple[str, Letter]]:
        """The letters waiting on `sid`, oldest first, each with its stored text
        (what `remove` needs to find every copy)."""
        [rows] = raise_errors(await self.redis.run([("LRANGE", keys.dead_letter_index(sid), 0, -1)]))
        texts = [row.decode() if isinstance(row, bytes) else row for row in reversed(rows)]
        return [(text, _decode(text)) for text in texts]

    async def remove(self, raw: str, letter: Letter) -> None:
        commands: list[Command] = [("LREM", keys.dead_letters(), 0, raw)]
        commands += [("LREM", keys.dead_letter_index(sid), 0, raw) for sid in letter.sids]
        raise_errors(await self.redis.run(commands))

    async def all(self) -> list[Letter]:
        """Every kept letter, newest first (for operators and tests)."""
        [rows] = raise_errors(await self.redis.run([("LRANGE", keys.dead_letters(), 0, -1)]))
        return [_decode(raw) for raw in rows]

    async def count(self) -> int:
        [count] = raise_errors(await self.redis.run([("GET", keys.dead_letter_count())]))
        return int(count or 0)
