"""Shared fixtures: a real redis-server started for the run (or REDIS_URL),
fakeredis for fast store tests, the app in-process and as a real process."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import fakeredis
import httpx
import pytest
import redis
import redis.asyncio as aioredis

from app.config import Settings, load_settings
from app.store import SessionStore
from tests.support.processes import RedisServer, ServiceProcess


@pytest.fixture(scope="session")
def settings() -> Settings:
    return load_settings({"APP_ENV": "test"})


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A real Redis for the whole run. REDIS_URL (a disposable database: it is
    flushed between tests) or a throwaway redis-server on a free port."""
    given = os.environ.get("REDIS_URL")
    if given:
        yield given
        return
    server = RedisServer()  # raises, failing the run loudly, if redis-server is missing
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def clean_redis(redis_url: str) -> Iterator[str]:
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
async def real_redis(clean_redis: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(clean_redis)
    yield client
    await client.aclose()


@pytest.fixture
def store(any_redis: aioredis.Redis, settings: Settings) -> SessionStore:
    return SessionStore(any_redis, settings)


@pytest.fixture
async def client(real_redis: aioredis.Redis, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app in-process (ASGI) on real Redis."""
    from app.main import create_app

    app = create_app(settings, redis=real_redis)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@pytest.fixture
def service(clean_redis: str) -> Iterator[ServiceProcess]:
    """The service as a real process on real Redis."""
    proc = ServiceProcess(clean_redis)
    yield proc
    proc.stop()
