"""The live routes in-process: refused with 503 while the hub is draining or not
running (a WebSocket handshake gets an HTTP denial response, not an accept).
WebSocket handshakes on /sessions/live bypass Starlette's middleware and router
(app.main.App); their refusals still carry `responseStatus`."""

import json
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from app.config import Settings
from app.main import create_app
from tests.support.factories import token


async def handshake(app: Any, headers: list[tuple[bytes, bytes]], path: str = "/sessions/live") -> list[dict[str, Any]]:
    """One WebSocket handshake through the raw ASGI interface; what the app sent."""
    sent: list[dict[str, Any]] = []
    incoming = [{"type": "websocket.connect"}]

    async def receive() -> dict[str, Any]:
        return incoming.pop(0) if incoming else {"type": "websocket.disconnect", "code": 1000}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "websocket", "asgi": {"version": "3.0", "spec_version": "2.4"}, "path": path,
             "raw_path": path.encode(), "query_string": b"", "headers": headers, "scheme": "ws",
             "server": ("testserver", 80), "client": ("127.0.0.1", 1), "root_path": "", "subprotocols": [],
             "extensions": {"websocket.http.response": {}}}
    await app(scope, receive, send)
    return sent


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


async def test_an_unexpected_error_before_accept_is_a_500_with_response_status(
        real_redis: aioredis.Redis, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    from app.web import live

    def broken(settings: Settings, two_way: bool) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(live, "limits", broken)
    app = create_app(settings, redis=real_redis)
    app.state.services.live.running = True
    sent = await handshake(app, [(b"authorization", f"Bearer {token(settings)}".encode())])
    assert [m["type"] for m in sent] == ["websocket.http.response.start", "websocket.http.response.body"]
    assert sent[0]["status"] == 500
    assert json.loads(sent[1]["body"])["responseStatus"]["errorCode"] == "InternalServerError"


async def test_only_the_live_path_skips_the_router(real_redis: aioredis.Redis, settings: Settings,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Another WebSocket path still goes through Starlette (no such route: closed)."""
    from app.web import live

    called: list[str] = []

    async def fake_live(scope: Any, receive: Any, send: Any) -> None:
        called.append(scope["path"])
        await send({"type": "websocket.close", "code": 1000})

    monkeypatch.setattr(live, "live_socket", fake_live)
    app = create_app(settings, redis=real_redis)
    assert (await handshake(app, [], "/sessions/other"))[0]["type"] == "websocket.close"
    assert called == []
    await handshake(app, [], "/sessions/live")
    assert called == ["/sessions/live"]
