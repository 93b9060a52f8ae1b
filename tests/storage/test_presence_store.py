"""Presence leases in Redis (lua/presence.lua through PresenceStore), on a real Redis, a real
Redis Cluster and fakeredis (the embedded store). Publications are read through the
service's own broker; times are given, not read from a clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import fakeredis
import msgspec
import pytest

from app.config import Settings
from app.domain import presence
from app.domain.presence import PresenceEvent
from app.live.broker import Broker
from app.redis_io import Redis, connect, wrap
from app.storage.presence_store import PresenceStore

pytestmark = pytest.mark.cluster_too  # every test here runs on one node and on a Redis Cluster

A = "A1"


@pytest.fixture(params=["real", "fakeredis"])
async def redis(request: pytest.FixtureRequest, clean_redis: str, settings: Settings) -> AsyncIterator[Redis]:
    if request.param == "real":
        client = connect(msgspec.structs.replace(settings, redis_url=clean_redis))
    else:
        client = wrap(fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer()))
    await client.ready()
    yield client
    await client.aclose()


class Heard:
    """Presence publications of one account, through app.live.broker."""

    def __init__(self, redis: Redis) -> None:
        self.broker = Broker(redis)
        self.events: asyncio.Queue[PresenceEvent] = asyncio.Queue()
        self.broker.on_presence = lambda account, data: self.events.put_nowait(presence.parse_publication(data))

    async def __aenter__(self) -> Heard:
        await self.broker.start(lambda change: None, lambda account: None)
        await self.broker.subscribe(A)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.broker.stop()

    async def next(self) -> tuple[int, str, str]:
        event = await asyncio.wait_for(self.events.get(), 10)
        return event.version, event.kind, event.entry.endpoint_id

    async def nothing_before(self, store: PresenceStore, marker: str = "EZ") -> None:
        """No publication is pending: a marker join, published after everything before it, comes next."""
        await store.join(A, f"marker-{marker}", marker, presence.entry_of(marker, "m", None, 0), now_ms=0,
                         expiry_ms=10**15)
        assert (await self.next())[1:] == ("join", marker)


def entry(endpoint: str, user: str = "u") -> bytes:
    return presence.entry_of(endpoint, user, None, 0)


async def test_an_endpoint_joins_with_its_first_connection_and_leaves_with_its_last(redis: Redis) -> None:
    store = PresenceStore(redis)
    async with Heard(redis) as heard:
        assert await store.join(A, "p:1", "E1", entry("E1", "alice"), now_ms=0, expiry_ms=10_000) == 1
        assert await heard.next() == (1, "join", "E1")
        await store.join(A, "p:2", "E1", entry("E1", "alice"), now_ms=0, expiry_ms=10_000)  # a second tab
        await store.join(A, "p:2", "E1", entry("E1", "alice"), now_ms=0, expiry_ms=10_000)  # said twice: one lease
        roster = await store.read(A, now_ms=0)
        assert roster.version == 1 and [(e.endpoint_id, e.user_id, e.connections) for e in roster.entries] == [
            ("E1", "alice", 2)]
        assert await store.leave(A, ["p:1"]) == 1  # one tab closed: still present
        assert [e.connections for e in (await store.read(A, now_ms=0)).entries] == [1]
        assert await store.leave(A, ["p:2", "p:2"]) == 2
        assert await heard.next() == (2, "leave", "E1")
        assert (await store.read(A, now_ms=0)).entries == []
        await store.leave(A, ["p:2"])  # again: nothing more
        await heard.nothing_before(store)


async def test_a_renewed_lease_holds_and_an_unrenewed_one_is_swept_with_its_leave(redis: Redis) -> None:
    store = PresenceStore(redis)
    async with Heard(redis) as heard:
        await store.join(A, "p:1", "E1", entry("E1"), now_ms=0, expiry_ms=1_000)
        await store.join(A, "q:1", "E2", entry("E2"), now_ms=0, expiry_ms=1_000)
        assert [await heard.next(), await heard.next()] == [(1, "join", "E1"), (2, "join", "E2")]
        ticked = await store.tick({A: ["p:1"]}, [], now_ms=900, expiry_ms=1_900)  # p renews, q's process died
        assert ticked[A].missing == [] and ticked[A].version == 2
        assert [e.endpoint_id for e in (await store.read(A, now_ms=999)).entries] == ["E1", "E2"]
        ticked = await store.tick({}, [A], now_ms=1_000, expiry_ms=2_000)  # a sweep by anyone
        assert await heard.next() == (3, "leave", "E2")
        assert ticked[A].version == 3
        assert [e.endpoint_id for e in (await store.read(A, now_ms=1_000)).entries] == ["E1"]
        await heard.nothing_before(store)


async def test_a_tick_leaves_the_ended_connections_then_renews_the_rest_past_one_chunk(redis: Redis) -> None:
    store = PresenceStore(redis)
    async with Heard(redis) as heard:
        ids = [f"p:{n}" for n in range(1_200)]  # more than one renewal chunk of the script
        for n, connection in enumerate(ids):
            await store.join(A, connection, f"E{n % 3}", entry(f"E{n % 3}"), now_ms=0, expiry_ms=1_000)
        assert [await heard.next() for _ in range(3)] == [(1, "join", "E0"), (2, "join", "E1"), (3, "join", "E2")]
        ended = [c for n, c in enumerate(ids) if n % 3 == 2]  # every connection of E2
        kept = [c for c in ids if c not in ended]
        ticked = await store.tick({A: kept}, [], now_ms=900, expiry_ms=5_000, leave={A: ended})
        assert ticked[A].missing == [] and ticked[A].version == 4
        assert await heard.next() == (4, "leave", "E2")
        present = (await store.read(A, now_ms=4_999)).entries  # every kept lease renewed past its first expiry
        assert [(e.endpoint_id, e.connections) for e in present] == [("E0", 400), ("E1", 400)]
        await heard.nothing_before(store)


async def test_a_read_sweeps_first_so_a_poller_never_sees_an_expired_lease(redis: Redis) -> None:
    store = PresenceStore(redis)
    async with Heard(redis) as heard:
        await store.join(A, "p:1", "E1", entry("E1"), now_ms=0, expiry_ms=1_000)
        assert (await store.read(A, now_ms=1_000)).entries == []
        assert [await heard.next(), await heard.next()] == [(1, "join", "E1"), (2, "leave", "E1")]


async def test_a_tick_names_the_leases_it_could_not_renew_and_never_recreates_them(redis: Redis) -> None:
    store = PresenceStore(redis)
    await store.join(A, "p:1", "E1", entry("E1"), now_ms=0, expiry_ms=1_000)
    await store.read(A, now_ms=5_000)  # swept while its process was paused
    ticked = await store.tick({A: ["p:1", "p:2"], "A2": ["p:3"]}, [A], now_ms=5_001, expiry_ms=6_000)
    assert ticked[A].missing == ["p:1", "p:2"] and ticked["A2"].missing == ["p:3"]
    assert (await store.read(A, now_ms=5_001)).entries == []  # the caller joins them again, with a join


async def test_many_processes_sweeping_at_once_publish_each_leave_exactly_once(
        redis: Redis, clean_redis: str, settings: Settings) -> None:
    store = PresenceStore(redis)
    sweepers = [PresenceStore(connect(msgspec.structs.replace(settings, redis_url=clean_redis)))
                if redis.topology != "embedded" else PresenceStore(redis) for _ in range(6)]
    try:
        async with Heard(redis) as heard:
            for n in range(20):
                await store.join(A, f"dead:{n}", f"E{n % 5}", entry(f"E{n % 5}"), now_ms=0, expiry_ms=1_000)
            joins = [await heard.next() for _ in range(5)]
            assert sorted(e for _, _, e in joins) == [f"E{n}" for n in range(5)]
            results = await asyncio.gather(*(s.tick({}, [A], now_ms=2_000, expiry_ms=3_000) for s in sweepers))
            leaves = [await heard.next() for _ in range(5)]
            assert sorted(e for _, kind, e in leaves if kind == "leave") == [f"E{n}" for n in range(5)]
            assert [v for v, _, _ in joins + leaves] == list(range(1, 11))  # one version per change, no repeats
            assert max(r[A].version for r in results) == 10
            await heard.nothing_before(store)
    finally:
        for sweeper in sweepers:
            if sweeper.redis is not redis:
                await sweeper.redis.aclose()
