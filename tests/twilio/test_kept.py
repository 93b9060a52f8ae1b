"""Kept commits (`SessionStore.commit` with `keep`: a session's next callback in a
process starts from the record its last commit wrote, with no read) on real Redis, one
node and a Cluster: every callback is applied exactly once in any arrival order, however
many processes share the Redis, and the stored bytes are the ones in-order delivery
through one process stores."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import msgspec
import pytest

from app.composition import create_app
from app.config import Settings
from app.storage import keys
from tests.flows import FLOWS
from tests.flows.http import deliver, open_session
from tests.flows.model import Flow, Step

pytestmark = pytest.mark.cluster_too

Stored = dict[str, tuple[bytes, bytes, bytes]]  # session -> (info, meta, rev) as stored


@asynccontextmanager
async def apps(redis_url: str, settings: Settings, count: int) -> AsyncIterator[list[httpx.AsyncClient]]:
    """`count` instances of the app on one Redis, each with its own store (and kept
    records): as many processes, in one event loop."""
    built = [create_app(msgspec.structs.replace(settings, redis_url=redis_url)) for _ in range(count)]
    clients = [httpx.AsyncClient(transport=httpx.ASGITransport(app=a), base_url="http://testserver") for a in built]
    try:
        yield clients
    finally:
        for c in clients:
            await c.aclose()
        for a in built:
            await a.state.services.store.redis.aclose()


async def stored(real_redis: Any, flows: list[Flow]) -> Stored:
    out: Stored = {}
    for flow in flows:
        account = next(s.query["accountId"] for s in flow.steps if "accountId" in s.query)
        info, meta, rev = await real_redis.hmget(keys.session(account, flow.session), "info", "meta", "rev")
        out[flow.session] = (info, meta, rev)
    return out


async def in_order(clean_redis: str, settings: Settings, real_redis: Any) -> Stored:
    """What one process stores for every flow delivered in order, once; Redis emptied after."""
    async with apps(clean_redis, settings, 1) as [client]:
        for flow in FLOWS.values():
            await open_session(client, flow)
            for step in flow.steps:
                assert (await deliver(client, step)).status_code == 204
    reference = await stored(real_redis, list(FLOWS.values()))
    await real_redis.flushall()
    return reference


async def fire(clients: list[httpx.AsyncClient], deliveries: list[Step], pick: Callable[[int], int]) -> None:
    statuses = await asyncio.gather(*(deliver(clients[pick(i)], step) for i, step in enumerate(deliveries)))
    assert {r.status_code for r in statuses} == {204}, [r.text for r in statuses if r.status_code != 204]


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_shuffled_duplicated_callbacks_over_three_processes_store_the_in_order_bytes(
        seed: int, clean_redis: str, settings: Settings, real_redis: Any) -> None:
    """Every step of every flow twice, shuffled, all at once, each to one of three app
    instances at random: kept records go stale under each other (conflicts sent back
    with the current record), duplicates meet kept records (the read answers them);
    each session's info and meta bytes and its revision (one per applied callback: none
    applied twice, none lost) are the in-order ones, and no letter is left."""
    reference = await in_order(clean_redis, settings, real_redis)
    rng = random.Random(seed)
    deliveries = [step for flow in FLOWS.values() for step in flow.steps * 2]
    rng.shuffle(deliveries)
    async with apps(clean_redis, settings, 3) as clients:
        for flow in FLOWS.values():
            await open_session(clients[0], flow)
        await fire(clients, deliveries, lambda i: rng.randrange(3))
    assert await stored(real_redis, list(FLOWS.values())) == reference
    assert await real_redis.lrange(keys.dead_letters(), 0, -1) == []


async def test_a_process_that_kept_every_session_applies_each_callback_once_more_delivered(
        clean_redis: str, settings: Settings, real_redis: Any) -> None:
    """Two processes take turns in order (each one's kept record is stale at every
    callback), then every callback again to both at once: the repeats are duplicates,
    nothing changes."""
    reference = await in_order(clean_redis, settings, real_redis)
    async with apps(clean_redis, settings, 2) as clients:
        for flow in FLOWS.values():
            await open_session(clients[0], flow)
            for i, step in enumerate(flow.steps):
                assert (await deliver(clients[i % 2], step)).status_code == 204
        after = await stored(real_redis, list(FLOWS.values()))
        assert after == reference
        again = [step for flow in FLOWS.values() for step in flow.steps]
        await fire(clients * 2, again * 2, lambda i: i % 4)
    assert await stored(real_redis, list(FLOWS.values())) == reference
