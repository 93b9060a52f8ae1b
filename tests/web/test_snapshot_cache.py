"""The snapshot cache of GET /sessions/active: keys, LRU bounds, single flight (pure), and
its consistency and batching against real Redis (in-process apps and real processes)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from app.auth.tokens import Principal
from app.config import Settings
from app.storage.position_reads import PositionBatcher
from app.redis_io import wrap
from app.domain.positions import Position
from app.web.snapshot_cache import Snapshot, SnapshotCache, SnapshotKey, SnapshotReads, Snapshots, key_for
from app.domain.visibility import Viewer
from tests.support.api import EVENTS_KEY, bearer, seed
from bench.samples import full_session_fields
from tests.support.factories import event, token
from tests.support.processes import ServiceProcess

# ---- pure: keys, cache, single flight ------------------------------------------------------


def _principal(**kw: Any) -> Principal:
    base: dict[str, Any] = {"user_id": "u", "account_id": "A1", "endpoint_id": "E1", "roles": frozenset({"User"}),
                            "name": None, "expires_at": 0.0}
    return Principal(**{**base, **kw})


def test_key_is_everything_that_decides_the_bytes_and_nothing_else() -> None:
    k = key_for(_principal(), "json", "GetActiveSessions")
    # who the user is, their name, token expiry and unrelated roles do not change what they see
    assert key_for(_principal(user_id="v", name="Bob", expires_at=9.0, roles=frozenset({"User", "X"})),
                   "json", "GetActiveSessions") == k
    assert key_for(_principal(endpoint_id="E2"), "json", "GetActiveSessions") != k
    assert key_for(_principal(account_id="A2"), "json", "GetActiveSessions") != k
    assert key_for(_principal(), "xml", "GetActiveSessions") != k
    assert key_for(_principal(), "csv", "GetMySessions") != key_for(_principal(), "csv", "GetActiveSessions")
    # managers and admins see the whole account whatever their endpoint
    manager = key_for(_principal(roles=frozenset({"User", "Manager"}), endpoint_id="E1"), "json", "G")
    admin = key_for(_principal(roles=frozenset({"Admin"}), endpoint_id="E7"), "json", "G")
    assert manager == admin and manager.viewer.whole_account and manager.viewer.endpoint_id is None
    # an endpoint named like anything never collides with the whole-account view
    assert key_for(_principal(endpoint_id="*"), "json", "G") != manager
    assert key_for(_principal(endpoint_id=None), "json", "G") != manager


def _snap(epoch: str | None, cursor: int, body: bytes = b"x") -> Snapshot:
    return Snapshot(Position(epoch, cursor), body, f'"{epoch}:{cursor}"', ())


def _key(n: int) -> SnapshotKey:
    return SnapshotKey(Viewer(f"A{n}", "E1", False), "json", "GetActiveSessions")


def test_cache_is_lru_bounded_by_count_and_bytes() -> None:
    cache = SnapshotCache(max_entries=3, max_bytes=10_000)
    for n in range(3):
        cache.put(_key(n), _snap("e", 1))
    assert cache.get(_key(0)) is not None  # now most recent
    cache.put(_key(3), _snap("e", 1))
    assert len(cache) == 3 and cache.get(_key(1)) is None and cache.get(_key(0)) is not None
    big = _snap("e", 1, b"y" * 4000)
    cache.put(_key(4), big)
    cache.put(_key(5), big)
    assert cache.bytes <= 10_000 and cache.get(_key(5)) is big
    cache.put(_key(6), _snap("e", 1, b"z" * 20_000))  # larger than the whole budget: not kept
    assert cache.get(_key(6)) is None and cache.bytes <= 10_000
    assert cache.bytes == sum(s.size for s in cache._entries.values())


def test_cache_keeps_the_newer_snapshot_of_one_epoch() -> None:
    cache = SnapshotCache()
    cache.put(_key(0), _snap("e", 5))
    cache.put(_key(0), _snap("e", 4))
    assert cache.get(_key(0)).position == Position("e", 5)  # type: ignore[union-attr]
    cache.put(_key(0), _snap("f", 1))  # a new incarnation of the log always wins
    assert cache.get(_key(0)).position == Position("f", 1)  # type: ignore[union-attr]


async def test_hit_only_at_exactly_the_current_position() -> None:
    snaps = Snapshots()
    builds: list[Position] = []

    def build_at(pos: Position) -> Any:
        async def build() -> Snapshot:
            builds.append(pos)
            return _snap(pos.epoch, pos.cursor)
        return build

    for pos in (Position("e", 1), Position("e", 1), Position("e", 2), Position("f", 2), Position(None, 0), Position(None, 0)):
        assert (await snaps.get(_key(0), pos, build_at(pos))).position == pos
    # built at e:1, hit, built at e:2, new epoch f:2 built; no epoch never hits
    assert builds == [Position("e", 1), Position("e", 2), Position("f", 2), Position(None, 0), Position(None, 0)]
    assert snaps.hits == 1


async def test_concurrent_rebuilds_coalesce_but_never_onto_an_older_one() -> None:
    snaps = Snapshots()
    release = asyncio.Event()
    calls: list[Position] = []

    def build_at(pos: Position) -> Any:
        async def build() -> Snapshot:
            calls.append(pos)
            await release.wait()
            return _snap(pos.epoch, pos.cursor)
        return build

    first = asyncio.create_task(snaps.get(_key(0), Position("e", 3), build_at(Position("e", 3))))
    await asyncio.sleep(0)
    same = [asyncio.create_task(snaps.get(_key(0), p, build_at(p))) for p in (Position("e", 3), Position("e", 2))]
    newer = asyncio.create_task(snaps.get(_key(0), Position("e", 4), build_at(Position("e", 4))))
    await asyncio.sleep(0)
    release.set()
    results = await asyncio.gather(first, *same, newer)
    # the two at or behind e:3 joined the first build; e:4 (a write they may predate) built its own
    assert calls == [Position("e", 3), Position("e", 4)]
    assert [r.position.cursor for r in results] == [3, 3, 3, 4]
    assert snaps.joins == 2


async def test_a_joiner_rebuilds_when_the_builder_goes_away() -> None:
    snaps = Snapshots()
    started = asyncio.Event()

    async def slow() -> Snapshot:
        started.set()
        await asyncio.sleep(10)
        raise AssertionError("unreachable")

    async def fast() -> Snapshot:
        return _snap("e", 1)

    builder = asyncio.create_task(snaps.get(_key(0), Position("e", 1), slow))
    await started.wait()
    joiner = asyncio.create_task(snaps.get(_key(0), Position("e", 1), fast))
    await asyncio.sleep(0)
    builder.cancel()
    assert (await joiner).position == Position("e", 1)


# ---- batching -----------------------------------------------------------------------------


class CountingRedis:
    """The slice of the client the batcher uses, counting pipelines sent (round trips)
    and optionally holding each one until released."""

    def __init__(self, inner: aioredis.Redis) -> None:
        self.inner = wrap(inner)
        self.executes = 0
        self.gate: asyncio.Event | None = None

    async def run(self, commands: Any) -> Any:
        self.executes += 1
        if self.gate is not None:
            await self.gate.wait()
        return await self.inner.run(commands)


async def _mget_calls(r: aioredis.Redis) -> int:
    stats = await r.info("commandstats")
    return int(stats.get("cmdstat_mget", {}).get("calls", 0))


async def test_positions_asked_in_one_turn_go_as_one_pipeline(real_redis: aioredis.Redis) -> None:
    counting = CountingRedis(real_redis)
    batcher = PositionBatcher(counting)  # type: ignore[arg-type]
    await real_redis.set("cs:{a:A1}:epoch", "ep1")
    await real_redis.set("cs:{a:A1}:seq", 7)
    mgets = await _mget_calls(real_redis)
    positions = await asyncio.gather(*(batcher.position(f"A{n % 5}") for n in range(100)))
    assert counting.executes == 1  # 100 asks, one round trip
    assert await _mget_calls(real_redis) - mgets == 5  # one MGET per distinct account
    assert positions[1] == positions[6] == Position("ep1", 7) and positions[0] == Position(None, 0)
    assert batcher.round_trips == 1 and batcher.asks == 100


async def test_an_ask_made_while_a_batch_is_out_waits_for_the_next(real_redis: aioredis.Redis) -> None:
    """A batch on the wire may have been answered before a later ask's write was
    acknowledged: the later ask must never share it."""
    counting = CountingRedis(real_redis)
    counting.gate = asyncio.Event()
    batcher = PositionBatcher(counting)  # type: ignore[arg-type]
    await real_redis.set("cs:{a:A1}:epoch", "ep1")
    early = asyncio.create_task(batcher.position("A1"))
    while counting.executes == 0:
        await asyncio.sleep(0)
    await real_redis.incr("cs:{a:A1}:seq")  # a write acknowledged while the first batch is out
    late = asyncio.create_task(batcher.position("A1"))
    await asyncio.sleep(0.01)
    assert counting.executes == 1  # one in flight at a time: the late ask waits
    counting.gate.set()
    assert (await late) == Position("ep1", 1) and counting.executes == 2
    assert (await early).cursor in (0, 1)


async def test_concurrent_reads_share_round_trips(real_redis: aioredis.Redis, settings: Settings) -> None:
    """Through the app: many concurrent GETs cost a fraction of a round trip each (counted
    as MGETs in Redis INFO commandstats, never timed)."""
    async with _app(settings, real_redis) as c:
        await seed(c, *(event("session.upsert", f"A{a}", f"S{a}", session={"endpointId": "E1"}) for a in range(4)))
        tokens = [token(settings, account=f"A{n % 4}", sub=f"u{n}") for n in range(80)]
        for t in tokens[:4]:
            assert (await c.get("/sessions/active", headers=bearer(t))).status_code == 200  # warm
        before = await _mget_calls(real_redis)
        replies = await asyncio.gather(*(c.get("/sessions/active", headers=bearer(t)) for t in tokens))
        assert all(r.status_code == 200 and len(r.json()["sessions"]) == 1 for r in replies)
        mgets = await _mget_calls(real_redis) - before
        assert mgets <= 4 * 4, mgets  # ≤ a few batches of one MGET per account, not one per request


# ---- consistency through the API ------------------------------------------------------------


@asynccontextmanager
async def _app(settings: Settings, redis: aioredis.Redis, cached: bool = True) -> AsyncIterator[httpx.AsyncClient]:
    from app.composition import create_app

    app = create_app(settings, redis=redis)
    if not cached:  # a cache that keeps nothing (no byte budget): every request builds afresh
        svc = app.state.services
        svc.reads = SnapshotReads(svc.reads.positions, Snapshots(SnapshotCache(max_bytes=0)))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


FORMAT_PATHS = [
    "/sessions/active", "/sessions/active.xml", "/sessions/active?format=jsv", "/sessions/active.csv",
    "/csv/reply/GetMySessions", "/xml/reply/GetActiveSessions", "/api/GetMySessions", "/sessions/my.jsv",
]


@pytest.mark.parametrize("path", FORMAT_PATHS)
async def test_a_cache_hit_is_byte_identical_to_a_fresh_build(
    real_redis: aioredis.Redis, settings: Settings, path: str
) -> None:
    async with _app(settings, real_redis) as cached, _app(settings, real_redis, cached=False) as fresh:
        await seed(cached, event("session.upsert", "A1", "S1", session=full_session_fields()),
                   event("session.upsert", "A1", "S2", at="2024-05-01T09:00:00Z", session={"endpointId": "E1"}),
                   event("session.upsert", "A1", "S3", session={"endpointId": "E2"}))
        for roles in (("User",), ("User", "Manager")):
            h = bearer(token(settings, roles=roles))
            first = await cached.get(path, headers=h)
            hit = await cached.get(path, headers=bearer(token(settings, roles=roles, sub="someone-else")))
            build = await fresh.get(path, headers=h)
            assert first.status_code == hit.status_code == build.status_code == 200
            assert hit.content == first.content == build.content
            assert hit.headers.multi_items()[:-1] == build.headers.multi_items()[:-1]  # all but X-Request-Id
            assert b"S1" in hit.content
            assert (b"S3" in hit.content) == ("Manager" in roles)
            svc = cached._transport.app.state.services  # type: ignore[attr-defined]
            assert svc.reads.snapshots.hits >= 1


async def test_304_and_etag_are_kept(real_redis: aioredis.Redis, settings: Settings) -> None:
    async with _app(settings, real_redis) as c:
        await seed(c, event("session.upsert", "A1", "S1", session={"endpointId": "E1"}))
        h = bearer(token(settings))
        r = await c.get("/sessions/active", headers=h)
        etag = r.headers["etag"]
        assert etag.endswith(':1"')
        nm = await c.get("/sessions/active", headers={**h, "If-None-Match": etag})
        assert nm.status_code == 304 and nm.content == b"" and nm.headers["etag"] == etag
        xml = await c.get("/sessions/active.xml", headers={**h, "If-None-Match": etag})
        assert xml.status_code == 200 and xml.headers["etag"] == etag[:-1] + ';xml"'
        await seed(c, event("session.upsert", "A1", "S2", session={"endpointId": "E9"}))
        r = await c.get("/sessions/active", headers={**h, "If-None-Match": etag})
        assert r.status_code == 200 and r.headers["etag"].endswith(':2"')


async def test_a_write_on_b_is_seen_by_the_next_read_on_a(
    clean_redis: str, settings: Settings
) -> None:
    ra, rb = aioredis.from_url(clean_redis), aioredis.from_url(clean_redis)
    try:
        async with _app(settings, ra) as a, _app(settings, rb) as b:
            user, manager = bearer(token(settings)), bearer(token(settings, roles=("User", "Manager"), sub="m"))
            for n in range(10):
                for h in (user, manager):  # warm A's cache at the current position
                    assert len((await a.get("/sessions/active", headers=h)).json()["sessions"]) == n
                await seed(b, event("session.upsert", "A1", f"S{n}", session={"endpointId": "E1"}))
                for h in (user, manager):
                    ids = [s["id"] for s in (await a.get("/sessions/active", headers=h)).json()["sessions"]]
                    assert f"S{n}" in ids and len(ids) == n + 1
            # and an end on B disappears on A at once
            await seed(b, event("session.end", "A1", "S0"))
            ids = [s["id"] for s in (await a.get("/sessions/active", headers=user)).json()["sessions"]]
            assert "S0" not in ids and len(ids) == 9
    finally:
        await ra.aclose()
        await rb.aclose()


async def test_redis_losing_its_data_invalidates(real_redis: aioredis.Redis, settings: Settings) -> None:
    async with _app(settings, real_redis) as c:
        h = bearer(token(settings))
        await seed(c, event("session.upsert", "A1", "S1", session={"endpointId": "E1"}))
        r = await c.get("/sessions/active", headers=h)
        assert [s["id"] for s in r.json()["sessions"]] == ["S1"] and r.headers["etag"].endswith(':1"')
        assert (await c.get("/sessions/active", headers=h)).content == r.content  # cached
        await real_redis.flushdb()  # Redis lost everything
        empty = await c.get("/sessions/active", headers=h)
        assert empty.json() == {"sessions": []}
        # A new incarnation reaching the very same cursor is still a different position.
        await real_redis.flushdb()
        await seed(c, event("session.upsert", "A1", "S2", session={"endpointId": "E1"}))
        r2 = await c.get("/sessions/active", headers=h)
        assert [s["id"] for s in r2.json()["sessions"]] == ["S2"]
        assert r2.headers["etag"].endswith(':1"') and r2.headers["etag"] != r.headers["etag"]


def test_two_real_processes_read_their_writes(clean_redis: str, settings: Settings) -> None:
    a, b = ServiceProcess(clean_redis), ServiceProcess(clean_redis)
    try:
        user = bearer(token(settings))
        events = {"Authorization": f"Bearer {EVENTS_KEY}"}
        with httpx.Client(timeout=10) as http:
            for n in range(20):
                before = http.get(a.url + "/sessions/active", headers=user)
                assert len(before.json()["sessions"]) == n  # A's cache is current here
                w = http.post(b.url + "/events", headers=events, json={"events": [
                    event("session.upsert", "A1", f"S{n}", session={"endpointId": "E1", "callState": "Ringing"})]})
                assert w.status_code == 200, w.text
                after = http.get(a.url + "/sessions/active", headers=user)
                assert f"S{n}".encode() in after.content and len(after.json()["sessions"]) == n + 1
                assert after.headers["etag"] != before.headers["etag"]
    finally:
        a.stop()
        b.stop()


async def test_the_embedded_store_reads_its_writes(settings: Settings) -> None:
    import fakeredis

    r = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer())
    try:
        async with _app(settings, r) as c:
            h = bearer(token(settings))
            assert (await c.get("/sessions/active", headers=h)).json() == {"sessions": []}
            await seed(c, event("session.upsert", "A1", "S1", session={"endpointId": "E1"}))
            assert [s["id"] for s in (await c.get("/sessions/active", headers=h)).json()["sessions"]] == ["S1"]
    finally:
        await r.aclose()


async def test_redis_down_is_503_in_the_negotiated_format(settings: Settings) -> None:
    from tests.support.processes import free_port

    r = aioredis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=1)
    try:
        async with _app(settings, r) as c:
            resp = await c.get("/sessions/active.xml", headers=bearer(token(settings)))
            assert resp.status_code == 503 and b"<ErrorCode>ServiceUnavailable</ErrorCode>" in resp.content
    finally:
        await r.aclose()
