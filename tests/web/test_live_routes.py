"""The live routes in-process: refused with 503 while the hub is draining or not
running (a WebSocket handshake gets an HTTP denial response, not an accept).
WebSocket handshakes on /sessions/live bypass Starlette's middleware and router
(app.composition.App); their refusals still carry `responseStatus`."""

import asyncio
import json
from collections.abc import MutableMapping
from typing import Any

import httpx
import msgspec
import pytest
import redis.asyncio as aioredis

from app.auth.tokens import TokenExpired
from app.config import Settings
from app.composition import create_app
from app.storage.session_store import StoreUnavailable
from app.web.errors import ApiError
from app.web.live import deny_handshake
from tests.support.factories import token


async def handshake(app: Any, headers: list[tuple[bytes, bytes]], path: str = "/sessions/live") -> list[dict[str, Any]]:
    """One WebSocket handshake through the raw ASGI interface; what the app sent."""
    sent: list[dict[str, Any]] = []
    incoming = [{"type": "websocket.connect"}]

    async def receive() -> dict[str, Any]:
        return incoming.pop(0) if incoming else {"type": "websocket.disconnect", "code": 1000}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(handshake_scope(path, headers), receive, send)
    return sent


def handshake_scope(path: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {"type": "websocket", "asgi": {"version": "3.0", "spec_version": "2.4"}, "path": path,
            "raw_path": path.encode(), "query_string": b"", "headers": headers, "scheme": "ws",
            "server": ("testserver", 80), "client": ("127.0.0.1", 1), "root_path": "", "subprotocols": [],
            "extensions": {"websocket.http.response": {}}}


@pytest.mark.parametrize("draining", [False, True])
async def test_no_live_hub_means_503_everywhere(draining: bool, real_redis: aioredis.Redis, settings: Settings) -> None:
    app = create_app(settings, redis=real_redis)  # no lifespan: the hub never started
    hub = app.state.services.live
    hub.running, hub.draining = draining, draining
    tok = token(settings)
    sent = await handshake(app, [(b"authorization", f"Bearer {tok}".encode())])
    assert [m["type"] for m in sent] == ["websocket.http.response.start", "websocket.http.response.body"]
    assert sent[0]["status"] == 503 and (b"retry-after", b"1") in sent[0]["headers"]
    assert json.loads(sent[1]["body"])["responseStatus"]["errorCode"] == "ServiceUnavailable"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as http:
        auth = {"Authorization": f"Bearer {tok}"}
        r = await http.get("/sessions/changes", headers=auth)
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        r = await http.get("/sessions/live", headers={**auth, "Accept": "text/event-stream"})
        assert r.status_code == 503
        assert (await http.get("/sessions/active", headers=auth)).status_code == 200  # REST is unaffected


@pytest.mark.parametrize(("exc", "status", "code"), [
    (RuntimeError("boom"), 500, "InternalServerError"),  # nothing registered for it: the catch-all
    (ApiError(403, "Forbidden", "no"), 403, "Forbidden"),
    (TokenExpired("expired"), 401, "TokenException"),  # a subclass: its base's (AuthError) handler
    (StoreUnavailable("down"), 503, "ServiceUnavailable"),
])
async def test_a_refusal_before_accept_is_answered_by_the_apps_handler_for_it(
        exc: Exception, status: int, code: str, real_redis: aioredis.Redis, settings: Settings) -> None:
    """The handshake's denial comes from the handler the real app registered for the
    exception's class (its nearest base), else the catch-all 500, with `responseStatus`."""
    app = create_app(settings, redis=real_redis)
    sent: list[MutableMapping[str, Any]] = []

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope = {**handshake_scope("/sessions/live", []), "app": app}
    await deny_handshake(scope, send, exc)
    assert [m["type"] for m in sent] == ["websocket.http.response.start", "websocket.http.response.body"]
    assert sent[0]["status"] == status
    assert json.loads(sent[1]["body"])["responseStatus"]["errorCode"] == code


def test_limits_are_built_with_each_app_from_its_settings(real_redis: aioredis.Redis, settings: Settings) -> None:
    """Built with the app (not at its first connection), one per app, shared by its connections."""
    app = create_app(settings, redis=real_redis)
    other = create_app(msgspec.structs.replace(settings, live_queue_max_bytes=4096), redis=real_redis)
    mine = app.state.services.live_limits
    assert mine.socket.timing.pong_timeout == settings.live_pong_timeout and mine.stream.timing.pong_timeout is None
    assert other.state.services.live_limits.socket.queue_max_bytes == 4096


async def test_only_the_live_path_skips_the_router(real_redis: aioredis.Redis, settings: Settings) -> None:
    """A WebSocket on /sessions/live is answered by the live handler (here: refused, the hub is
    not running, with an HTTP denial that only it sends); another WebSocket path still goes
    through Starlette's router (no such route: closed)."""
    app = create_app(settings, redis=real_redis)
    assert [m["type"] for m in await handshake(app, [], "/sessions/other")] == ["websocket.close"]
    sent = await handshake(app, [], "/sessions/live")
    assert sent[0]["type"] == "websocket.http.response.start" and sent[0]["status"] == 503


async def test_an_accepted_socket_keeps_neither_the_handshake_headers_nor_the_credential(
        real_redis: aioredis.Redis, settings: Settings) -> None:
    """The scope and every coroutine frame of a live socket last as long as it does: once it is
    accepted and subscribed, the scope's headers are empty and no frame holds the token."""
    app = create_app(settings, redis=real_redis)
    tok = token(settings)
    scope = handshake_scope("/sessions/live", [(b"authorization", f"Bearer {tok}".encode()), (b"x-other", b"1")])
    sent: list[MutableMapping[str, Any]] = []
    incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    incoming.put_nowait({"type": "websocket.connect"})

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    async with app.router.lifespan_context(app):
        task = asyncio.create_task(app(scope, incoming.get, send))
        while not any(b'"snapshot"' in (m.get("bytes") or m.get("text", "").encode()) for m in sent):
            await asyncio.sleep(0.01)
        assert sent[0]["type"] == "websocket.accept"
        assert sorted(scope) == ["app", "client", "path", "scheme", "server", "type"]  # no headers
        while (chain := coroutines(task))[-1].cr_code.co_name != "get":  # until it idles, reading
            await asyncio.sleep(0.01)
        held = [value for coro in chain for value in coro.cr_frame.f_locals.values()]
        assert len(chain) > 3 and tok not in held
        incoming.put_nowait({"type": "websocket.disconnect", "code": 1000})
        await asyncio.wait_for(task, 5)


def coroutines(task: asyncio.Task[Any]) -> list[Any]:
    """The task's coroutines, outermost first, down to what it awaits."""
    chain, coro = [], task.get_coro()
    while hasattr(coro, "cr_frame"):
        chain.append(coro)
        coro = coro.cr_await
    return chain
