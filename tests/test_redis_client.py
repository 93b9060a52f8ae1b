"""`redis_client.run`: our RESP packer, and batches coalesced across callers
into one socket write (counts, never timings), on real Redis and fakeredis."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.asyncio as aioredis
from hypothesis import given
from hypothesis import strategies as st
from redis.asyncio.connection import Connection

from app.redis_client import Command, pack, run, writer_of
from tests.support.resp import resp_commands
from tests.test_twilio_cost import CountingRedis

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
    await any_redis.set("n", "x")
    a, b, c = await asyncio.gather(
        run(any_redis, [("SET", "a", "1"), ("GET", "a")]),
        run(any_redis, [("INCR", "n"), ("EXISTS", "a")]),  # n is not a number: an error reply, in place
        run(any_redis, [("GET", "missing")]),
    )
    assert a == [b"OK", b"1"]
    assert isinstance(b[0], aioredis.ResponseError) and b[1] == 1
    assert c == [None]


async def test_batches_of_one_turn_share_one_write(clean_redis: str) -> None:
    redis = CountingRedis.connect(clean_redis)
    try:
        await run(redis, [("PING",)])  # a connection set aside
        before = redis.round_trips
        replies = await asyncio.gather(*(run(redis, [("INCR", "c"), ("GET", "c")]) for _ in range(20)))
        assert redis.round_trips - before == 1
        assert sorted(int(r[1]) for r in replies) == list(range(1, 21))
        assert all(int(r[0]) == int(r[1]) for r in replies)  # each its own replies, in order
        before = redis.round_trips
        await run(redis, [("GET", "c")])
        await run(redis, [("GET", "c")])  # a later turn: a write of its own
        assert redis.round_trips - before == 2
    finally:
        await redis.aclose()


async def test_a_failed_write_fails_every_batch_and_drops_its_connection(clean_redis: str) -> None:
    redis = aioredis.Redis.from_url(clean_redis, retry_on_error=[], retry=None)
    try:
        await run(redis, [("PING",)])
        writer = writer_of(redis)
        assert writer is not None
        [conn] = writer.idle
        conn.retry.update_supported_errors([])
        conn.retry._retries = 0

        async def broken(*_: Any, **__: Any) -> None:
            raise aioredis.ConnectionError("gone")

        conn.send_packed_command = broken
        results = await asyncio.gather(run(redis, [("PING",)]), run(redis, [("PING",), ("PING",)]),
                                       return_exceptions=True)
        assert all(isinstance(r, aioredis.ConnectionError) for r in results)
        assert conn not in writer.idle and not conn.is_connected  # disconnected, never reused half-read
        del conn.send_packed_command
        assert await run(redis, [("SET", "k", "v"), ("GET", "k")]) == [b"OK", b"v"]  # a fresh connection
    finally:
        await redis.aclose()


async def test_a_cancelled_caller_does_not_disturb_the_others(any_redis: aioredis.Redis) -> None:
    doomed = asyncio.ensure_future(run(any_redis, [("SET", "x", "1")]))
    kept = asyncio.ensure_future(run(any_redis, [("GET", "nothing"), ("SET", "y", "2")]))
    await asyncio.sleep(0)  # both submitted, nothing sent yet
    doomed.cancel()
    assert await kept == [None, b"OK"]
    assert await any_redis.get("x") is None  # cancelled before it was sent: never sent


async def test_the_writer_does_not_keep_its_client_alive(clean_redis: str) -> None:
    import gc
    import weakref

    redis = aioredis.Redis.from_url(clean_redis)
    await run(redis, [("PING",)])
    pool = weakref.ref(redis.connection_pool)
    await redis.aclose()
    del redis
    gc.collect()
    assert pool() is None
