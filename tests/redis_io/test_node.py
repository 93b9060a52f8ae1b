"""`redis_io`: our RESP packer, and one node's batches coalesced across callers
into one socket write (counts, never timings), on real Redis and fakeredis;
a write whose kept connection died is resent once on a fresh one."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.asyncio as aioredis
from hypothesis import given
from hypothesis import strategies as st
from redis.asyncio.connection import Connection

from app.redis_io import Command, SingleNode, pack, wrap
from tests.support.resp import resp_commands
from tests.support.counting import CountingRedis

_arg = st.one_of(st.text(max_size=20), st.binary(max_size=20), st.integers(-(2**63), 2**63 - 1))


@given(st.lists(st.tuples(st.sampled_from(["SET", "EXISTS", "EVALSHA"]), st.lists(_arg, max_size=6)), max_size=5))
def test_pack_sends_what_redis_py_sends(commands: list[tuple[str, list[Any]]]) -> None:
    batch: list[Command] = [(name, *args) for name, args in commands]
    assert pack(batch) == b"".join(Connection().pack_commands(batch))
    assert resp_commands(pack(batch)) == [
        [a.encode() if isinstance(a, str) else a if isinstance(a, bytes) else str(a).encode() for a in c]
        for c in batch
    ]


def test_pack_refuses_what_it_cannot_send() -> None:
    with pytest.raises(TypeError):
        pack([("SET", "k", 1.5)])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        pack([("SET", "k", True)])


async def test_each_caller_gets_its_own_replies(any_redis: aioredis.Redis) -> None:
    node = wrap(any_redis)
    await any_redis.set("n", "x")
    a, b, c = await asyncio.gather(
        node.run([("SET", "a", "1"), ("GET", "a")]),
        node.run([("INCR", "n"), ("EXISTS", "a")]),  # n is not a number: an error reply, in place
        node.run([("GET", "missing")]),
    )
    assert a == [b"OK", b"1"]
    assert isinstance(b[0], aioredis.ResponseError) and b[1] == 1
    assert c == [None]


async def test_batches_of_one_turn_share_one_write(clean_redis: str) -> None:
    redis = CountingRedis.connect(clean_redis)
    node = wrap(redis)
    try:
        await node.run([("PING",)])  # a connection set aside
        before = redis.round_trips
        replies = await asyncio.gather(*(node.run([("INCR", "c"), ("GET", "c")]) for _ in range(20)))
        assert redis.round_trips - before == 1
        assert sorted(int(r[1]) for r in replies) == list(range(1, 21))
        assert all(int(r[0]) == int(r[1]) for r in replies)  # each its own replies, in order
        before = redis.round_trips
        await node.run([("GET", "c")])
        await node.run([("GET", "c")])  # a later turn: a write of its own
        assert redis.round_trips - before == 2
    finally:
        await redis.aclose()


class BreakableConnection(Connection):
    """A real connection whose next sends can be made to fail, as a socket does
    when the server went away (restart, failover) while the connection was idle."""

    failures = 0

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        if BreakableConnection.failures:
            BreakableConnection.failures -= 1
            raise aioredis.ConnectionError("Connection closed by server.")
        await super().send_packed_command(command, check_health)


async def test_a_write_on_a_dead_kept_connection_is_resent_once_on_a_fresh_one(clean_redis: str) -> None:
    redis = aioredis.Redis.from_url(clean_redis, connection_class=BreakableConnection)
    node = SingleNode(redis, "single")
    try:
        await node.run([("PING",)])
        BreakableConnection.failures = 1  # the kept one is dead; a fresh one works
        results = await asyncio.gather(node.run([("INCR", "k")]), node.run([("PING",), ("GET", "k")]))
        assert results == [[1], [b"PONG", b"1"]]  # one write, resent once, each batch applied once
        assert node.writer.resends == 1
        assert len(node.writer.idle) == 1  # (the pool hands back the same object, reconnected)
    finally:
        BreakableConnection.failures = 0
        await redis.aclose()


async def test_a_write_that_fails_twice_fails_every_batch_in_it(clean_redis: str) -> None:
    redis = aioredis.Redis.from_url(clean_redis, connection_class=BreakableConnection)
    node = SingleNode(redis, "single")
    try:
        await node.run([("PING",)])
        BreakableConnection.failures = 2  # the fresh connection fails too: Redis really is down
        results = await asyncio.gather(node.run([("PING",)]), node.run([("PING",), ("PING",)]),
                                       return_exceptions=True)
        assert all(isinstance(r, aioredis.ConnectionError) for r in results)
        assert node.writer.idle == []
        assert await node.run([("SET", "k", "v"), ("GET", "k")]) == [b"OK", b"v"]  # and then it is back
    finally:
        BreakableConnection.failures = 0
        await redis.aclose()


async def test_a_cancelled_caller_does_not_disturb_the_others(any_redis: aioredis.Redis) -> None:
    node = wrap(any_redis)
    doomed = asyncio.ensure_future(node.run([("SET", "x", "1")]))
    kept = asyncio.ensure_future(node.run([("GET", "nothing"), ("SET", "y", "2")]))
    doomed.cancel()  # both submitted in this loop turn; nothing is sent before it ends
    assert await kept == [None, b"OK"]
    assert await any_redis.get("x") is None  # cancelled before it was sent: never sent
