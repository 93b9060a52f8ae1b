"""The one place that wires settings, Redis, the store and the routes together.

`build_services` makes every object the app runs on when the app is created (so an app
driven without its lifespan, e.g. by httpx's ASGITransport, has them all too); the
lifespan starts and stops what runs in the background. Settings come in as an argument:
`app()` (the Procfile's `uvicorn --factory app.composition:app`) reads them from the environment,
`python -m app serve` builds them from its arguments and the environment (`serving`)."""

from __future__ import annotations

import contextlib
import logging
from typing import Any, AsyncIterator, Callable, Mapping

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send

from app.apidocs import routes as apidocs
from app.config import Settings, load_settings
from app.gc_policy import GcPauses, GcPolicy
from app.ingest.events import EventIngest
from app.auth.jwks import build_verifier
from app.live.broker import Broker
from app.live.client import LiveLimits
from app.live.hub import build_hub
from app.live.presence import build_presence
from app.live.signals import drain_on_sigterm
from app.observability import metrics
from app.observability.access import AccessMiddleware
from app.observability.hooks import MeasuredStore
from app.observability.logs import configure_logging
from app.storage.position_reads import PositionBatcher
from app.storage.presence_store import PresenceStore
from app.redis_io import REDIS_DOWN, Redis, connect, wrap
from app.services import Services
from app.sweep.calls_api import CallsApi
from app.sweep.sweeper import Sweeper
from app.web.snapshot_cache import SnapshotReads, Snapshots
from app.web import connections, console, direct, errors, events, health, live, presence, sessions, sweep, twilio
from app.web.origins import ClientCors, OriginPolicy
from app.web.twilio import TwilioWebhooks


def build_services(settings: Settings, redis: Redis) -> Services:
    store = MeasuredStore(redis, settings)
    broker = Broker(redis)
    hub = build_hub(store, broker, settings, lifetimes=GC)
    presence = build_presence(PresenceStore(redis), settings)
    broker.on_presence = presence.on_publication
    webhooks = TwilioWebhooks(store, settings)
    return Services(
        settings=settings,
        store=store,
        verifier=build_verifier(settings),
        live=hub,
        live_limits=LiveLimits.of(settings),
        reads=SnapshotReads(PositionBatcher(redis), Snapshots()),
        origins=OriginPolicy(settings),
        events=EventIngest(store),
        twilio=webhooks,
        metrics=metrics.Metrics(store, hub, gc_pauses=GC_PAUSES, gc_policy=GC),
        sweeper=Sweeper(store, webhooks.ingest, CallsApi(settings), settings),
        presence=presence,
    )


LIVE_PATH = "/sessions/live"
GC = GcPolicy()  # this process's (installed by `serving`)
GC_PAUSES = GcPauses()  # how long its collections took (installed by `serving`, whatever the policy)


class App(Starlette):
    """The service's ASGI app. WebSocket handshakes on `/sessions/live` go straight to the
    live handler (it handles its own refusals with the app's exception handlers), and
    `GET /sessions/active` and the Twilio webhooks to their handlers inside the app's
    middleware (app.web.direct);
    everything else, SSE and long-poll on the same paths included, goes through Starlette's
    middleware and router. A live socket lives for hours: this way no middleware or routing
    coroutine, scope copy or Starlette `WebSocket` stays alive with it. (`__call__` stays a
    coroutine function: servers tell ASGI 3 from ASGI 2 by it.)"""

    def __init__(self, *, direct: Mapping[tuple[str, str], ASGIApp] | None = None, **starlette: Any) -> None:
        super().__init__(**starlette)
        self.direct = dict(direct or {})  # (method, path): the routes served beside the router

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            direct = self.direct.get((scope["method"], _route_path(scope)))
            if direct is not None:
                scope["app"] = self
                await direct(scope, receive, send)
                return
        elif kind == "websocket" and _route_path(scope) == LIVE_PATH:
            scope["app"] = self
            await live.live_socket(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def _route_path(scope: Scope) -> str:
    """The path the router matches (without the mount prefix), as Starlette computes it."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root):] if root and path.startswith(root) else path


def create_app(settings: Settings, redis: Redis | Any | None = None) -> Starlette:
    """The app on `redis` (a `Redis`, or a redis-py client for one node), else on
    the Redis the settings name."""
    owns_redis = redis is None
    client = wrap(redis) if redis is not None else connect(settings)
    svc = build_services(settings, client)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        hub = svc.live
        try:  # learn the topology (one node or a cluster, its slot map) now, not on the first request
            await client.ready()
        except REDIS_DOWN as exc:  # Redis not up yet: /health says so, and the first use retries
            logging.getLogger("app").warning("Redis not reachable at start-up: %s", exc)
        await hub.start()
        await svc.sweeper.start()  # no call stuck forever (app/sweep/): the first pass after one interval
        await svc.presence.start()
        # SIGTERM: tell live clients to reconnect elsewhere before the server stops.
        restore = drain_on_sigterm(lambda: hub.drain(settings.live_drain_spread_ms, settings.live_drain_timeout))
        try:
            yield
        finally:
            restore()
            await svc.sweeper.stop()
            await svc.presence.stop()
            await hub.stop()
            if owns_redis:
                await client.aclose()

    allowed = svc.origins.allowed
    cors = [Middleware(ClientCors, origins=allowed)] if allowed else []  # app.web.origins
    middleware = [Middleware(AccessMiddleware), *cors]
    hot = {("GET", sessions.READ_PATH): direct.endpoint(sessions.get_active_sessions, errors.HANDLERS),
           **{("POST", path): direct.asgi_endpoint(hook, errors.HANDLERS) for path, hook in twilio.WEBHOOKS.items()}}
    app = App(
        direct={key: direct.wrapped(endpoint, middleware) for key, endpoint in hot.items()},
        routes=[*health.routes(), *events.routes(), *sessions.routes(), *live.routes(), *presence.routes(),
                *connections.routes(), *twilio.routes(), *console.routes(), *apidocs.routes(), *metrics.routes(),
                *sweep.routes()],
        middleware=middleware,
        exception_handlers=errors.HANDLERS,
        lifespan=lifespan,
    )
    app.state.services = svc
    return app


def serving(settings: Settings) -> Callable[[], Starlette]:
    """A server's app factory for these settings: the app is built when the server loads it,
    in the server's event loop, with the service's logging and, once the app is built, the
    process's garbage-collector policy (GC_POLICY, app.gc_policy: one per process, so only
    here and not in `create_app`, which tests call many times in one process). Under uvicorn
    (SERVER), its live protocol is told the kernel send buffer to ask for each socket, before
    any socket opens; under granian the app imports nothing of uvicorn (granian has no hook
    for a socket option: LIVE_SOCKET_SEND_BUFFER is not applied there)."""
    def factory() -> Starlette:
        configure_logging(settings)
        built = create_app(settings)
        if settings.server == "uvicorn":
            from app.live.uvicorn_ws import LiveWebSocketProtocol

            LiveWebSocketProtocol.send_buffer_bytes = settings.live_socket_send_buffer
        GC_PAUSES.install()
        if settings.gc_policy == "freeze":
            GC.install()
        return built
    return factory


def app() -> Starlette:
    """Uvicorn factory: `uvicorn --factory app.composition:app`, on the settings the environment gives."""
    return serving(load_settings())()
