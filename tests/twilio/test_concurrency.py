"""Every flow's callbacks fired at once, each twice, at two real server
processes sharing one real Redis: each session ends exactly as in-order
delivery leaves it, and no dead letter is left behind."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator

import httpx
import pytest
import redis.asyncio as aioredis

from app.config import Settings
from app.storage.session_store import SessionStore
from app.twilio.deadletters import DeadLetters
from tests.flows import FLOWS
from tests.flows.http import open_session, signed
from tests.flows.model import Step
from tests.flows.pure import run, wire
from tests.support.processes import ServiceProcess

# No PUBLIC_URL: each process checks signatures against the URL it was called
# at (scheme + Host), which is what the test signs.
ENV = {"PUBLIC_URL": ""}


@pytest.fixture
def two_services(clean_redis: str) -> Iterator[list[ServiceProcess]]:
    procs = [ServiceProcess(clean_redis, env=ENV) for _ in range(2)]
    yield procs
    for proc in procs:
        proc.stop()


async def test_parallel_callbacks_give_the_in_order_result(two_services: list[ServiceProcess],
                                                           clean_redis: str, settings: Settings) -> None:
    deliveries = [(flow, step) for flow in FLOWS.values() for step in flow.steps * 2]
    random.Random(7).shuffle(deliveries)
    async with httpx.AsyncClient(base_url=two_services[0].url, timeout=30) as platform:
        for flow in FLOWS.values():
            await open_session(platform, flow)

    async with httpx.AsyncClient(timeout=30) as client:
        async def fire(i: int, step: Step) -> int:
            r = await client.post(**signed(step, two_services[i % 2].url))
            return r.status_code

        statuses = await asyncio.gather(*(fire(i, step) for i, (_, step) in enumerate(deliveries)))
    assert set(statuses) == {204}, [p.output()[-2000:] for p in two_services]

    redis = aioredis.from_url(clean_redis)
    try:
        store = SessionStore(redis, settings)
        for flow in FLOWS.values():
            expected = None
            for expected in run(flow, flow.steps):
                pass
            record = await store.get("A1", flow.session)
            assert record is not None and expected is not None
            assert wire(record) == wire(expected), flow.name
            assert record.meta == expected.meta, flow.name
        assert await DeadLetters(redis, 10, 60).all() == []
    finally:
        await redis.aclose()
