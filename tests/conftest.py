"""Shared fixtures: a real redis-server started for the run (or REDIS_URL), and
a real 3-master Redis Cluster for the modules marked `cluster_too` (their
tests run against both: the `redis_url` fixture is parametrised), fakeredis
for fast store tests, the app in-process and as a real process."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

import fakeredis
import httpx
import msgspec
import pytest
import redis
import redis.asyncio as aioredis

from app.config import Settings, load_settings
from app.redis_io import connect
from app.storage.session_store import SessionStore
from tests.support.processes import CLUSTERS, RedisClusterServers, RedisServer, ServiceProcess


@pytest.fixture(scope="session")
def settings() -> Settings:
    return load_settings({"APP_ENV": "test"})


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests of modules marked `cluster_too` run on one node and on a cluster."""
    if "redis_url" in metafunc.fixturenames and metafunc.definition.get_closest_marker("cluster_too"):
        metafunc.parametrize("redis_url", ["single", "cluster"], indirect=True, scope="session")


@pytest.fixture(scope="session")
def redis_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A real Redis for the whole run. REDIS_URL (a disposable database: it is
    flushed between tests) or a throwaway redis-server on a free port; for the
    "cluster" parameter, a throwaway 3-master Redis Cluster (started once)."""
    if getattr(request, "param", "single") == "cluster":
        cluster = RedisClusterServers(masters=3)  # raises, failing loudly, if redis-server is missing
        CLUSTERS[cluster.url] = cluster
        try:
            yield cluster.url
        finally:
            del CLUSTERS[cluster.url]
            cluster.stop()
        return
    given = os.environ.get("REDIS_URL")
    if given:
        yield given
        return
    server = RedisServer()  # raises, failing the run loudly, if redis-server is missing
    try:
        yield server.url
    finally:
        server.stop()


def is_cluster(url: str) -> bool:
    return url in CLUSTERS


@pytest.fixture
def clean_redis(redis_url: str) -> Iterator[str]:
    if is_cluster(redis_url):
        CLUSTERS[redis_url].flush()
        yield redis_url
        return
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    client.close()
    yield redis_url


@pytest.fixture(params=["redis", "fakeredis"])
async def any_redis(request: pytest.FixtureRequest) -> AsyncIterator[aioredis.Redis]:
    """Store logic runs against both a real Redis and fakeredis."""
    if request.param == "redis":
        url = request.getfixturevalue("clean_redis")
        client = aioredis.from_url(url)
    else:
        client = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer())
    yield client
    await client.aclose()


@pytest.fixture
async def real_redis(clean_redis: str) -> AsyncIterator[Any]:
    """A redis-py client of the test's Redis, for the tests' own looking and
    poking (a RedisCluster client on the cluster)."""
    client: Any = (aioredis.RedisCluster.from_url(clean_redis) if is_cluster(clean_redis)
                   else aioredis.from_url(clean_redis))
    yield client
    await client.aclose()


@pytest.fixture
def store(any_redis: aioredis.Redis, settings: Settings) -> SessionStore:
    return SessionStore(any_redis, settings)


@pytest.fixture
async def url_store(clean_redis: str, settings: Settings) -> AsyncIterator[SessionStore]:
    """The store as the service builds it from REDIS_URL (a node or a cluster)."""
    store = SessionStore(connect(msgspec.structs.replace(settings, redis_url=clean_redis)), settings)
    yield store
    await store.redis.aclose()


@pytest.fixture
async def client(clean_redis: str, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app in-process (ASGI) on real Redis, connected the way the service
    connects (REDIS_URL: a node or a cluster)."""
    from app.composition import create_app

    app = create_app(msgspec.structs.replace(settings, redis_url=clean_redis))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c
    finally:
        await app.state.services.store.redis.aclose()


@pytest.fixture
def service(clean_redis: str) -> Iterator[ServiceProcess]:
    """The service as a real process on real Redis."""
    proc = ServiceProcess(clean_redis)
    yield proc
    proc.stop()
