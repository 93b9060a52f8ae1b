"""The one place that wires settings, Redis, the store and the routes together."""

from __future__ import annotations

import contextlib
import logging
from typing import AsyncIterator

import redis.asyncio as aioredis
from starlette.applications import Starlette
from starlette.exceptions import HTTPException

from app.auth import TokenVerifier
from app.config import Settings, load_settings
from app.live.broker import Broker
from app.live.hub import build_hub
from app.live.signals import drain_on_sigterm
from app.redis_batch import PositionBatcher
from app.redis_client import connect
from app.services import Services
from app.snapshots import SnapshotReads, Snapshots
from app.store import SessionStore
from app.web import console, errors, events, health, live, sessions, twilio


def build_services(settings: Settings, redis: aioredis.Redis) -> Services:
    verifier = TokenVerifier(settings.jwt_verify_key(), settings.jwt_algorithm)
    store = SessionStore(redis, settings)
    hub = build_hub(store, Broker(redis), settings)
    reads = SnapshotReads(PositionBatcher(redis), Snapshots())
    return Services(settings=settings, store=store, verifier=verifier, live=hub, reads=reads)


def create_app(settings: Settings | None = None, redis: aioredis.Redis | None = None) -> Starlette:
    settings = settings or load_settings()
    owns_redis = redis is None
    client = redis if redis is not None else connect(settings)
    svc = build_services(settings, client)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        hub = svc.live
        assert hub is not None
        await hub.start()
        # SIGTERM: tell live clients to reconnect elsewhere before the server stops.
        restore = drain_on_sigterm(lambda: hub.drain(settings.live_drain_spread_ms, settings.live_drain_timeout))
        try:
            yield
        finally:
            restore()
            await hub.stop()
            if owns_redis:
                await client.aclose()

    app = Starlette(
        routes=[*health.routes(), *events.routes(), *sessions.routes(), *live.routes(), *twilio.routes(),
                *console.routes()],
        exception_handlers={
            **errors.HANDLERS,
            HTTPException: errors.http_exception,
            Exception: errors.unexpected,
        },
        lifespan=lifespan,
    )
    app.state.services = svc
    return app


def app() -> Starlette:
    """Uvicorn factory: `uvicorn --factory app.main:app`."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    return create_app()
