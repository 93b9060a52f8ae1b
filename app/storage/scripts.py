"""Lua scripts of app/storage/lua/ and how a batch that calls them is sent.

A script is called by `EVALSHA`; where a node does not have it cached yet
(NOSCRIPT: nothing of it ran), the same batch is sent again from there with
`EVAL`, which caches it on that node. Used by every store of this package."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from redis.exceptions import NoScriptError

from app.redis_io import Command, Redis


class Script:
    """A Lua script in app/storage/lua/. Scripts that may start an epoch get
    `generation.lua` in front."""

    def __init__(self, name: str, *, generation: bool = False) -> None:
        lua = Path(__file__).parent / "lua"
        self.body = ((lua / "generation.lua").read_text() if generation else "") + (lua / name).read_text()
        self.sha = hashlib.sha1(self.body.encode()).hexdigest()

    def call(self, keys: Sequence[str], args: Sequence[str | bytes | int]) -> Command:
        return ("EVALSHA", self.sha, len(keys), *keys, *args)


async def run(redis: Redis, commands: Sequence[Command], bodies: Mapping[str, str]) -> list[Any]:
    """One batch (see redis_io). A script a node has not cached is sent again as EVAL
    (`bodies`: sha -> script), with every command after it, so the batch's order holds;
    so nothing before a script may be a write whose reply matters twice."""
    replies = await redis.run(commands)
    for index, reply in enumerate(replies):
        if isinstance(reply, NoScriptError):  # it and what follows it, again, in order
            again = await redis.run([_as_eval(command, bodies) for command in commands[index:]])
            return [*replies[:index], *again]
    return replies


def _as_eval(command: Command, bodies: Mapping[str, str]) -> Command:
    if command[0] == "EVALSHA":
        return ("EVAL", bodies[str(command[1])], *command[2:])
    return command
