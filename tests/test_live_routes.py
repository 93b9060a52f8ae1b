"""The live routes in-process: refused with 503 while the hub is draining or not
running (a WebSocket handshake gets an HTTP denial response, not an accept)."""

from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from app.config import Settings
from app.main import create_app
from tests.support.factories import token


async def handshake(app: Any, headers: list[tuple[bytes, bytes]]) -> list[dict[str, Any]]:
    """One WebSocket handshake through the raw ASGI interface; what the app sent."""
    sent: list[dict[str, Any]] = []
    incoming = [{"type": "websocket.connect"}]

    async def receive() -> dict[str, Any]:
        return incoming.pop(0) if incoming else {"type": "websocket.disconnect", "code": 1000}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "websocket", "asgi": {"version": "3.0", "spec_version": "2.4"}, "path": "/sessions/live",
             "raw_path": b"/sessions/live", "query_string": b"", "headers": headers, "scheme": "ws",
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
    assert sent[0]["type"] == "websocket.http.response.start" and sent[0]["status"] == 503
    assert (b"retry-after", b"1") in sent[0]["headers"]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as http:
        auth = {"Authorization": f"Bearer {tok}"}
        r = await http.get("/sessions/changes", headers=auth)
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        r = await http.get("/sessions/live", headers={**auth, "Accept": "text/event-stream"})
        assert r.status_code == 503
        assert (await http.get("/sessions/active", headers=auth)).status_code == 200  # REST is unaffected
