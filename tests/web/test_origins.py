"""Cross-site WebSocket hijacking and CORS (app.web.origins): a cookie sent by another
site's page is refused on every live transport; header and first-message tokens, and
clients that send no Origin, are unaffected; the allowed origins get CORS on the client
module, SSE and long-poll only."""

from collections.abc import AsyncIterator, Iterator

import httpx
import msgspec
import pytest
import redis.asyncio as aioredis
import websockets

from app.config import ConfigError, Settings, load_settings
from app.composition import create_app
from app.config_rules import origin_of, parse_origins
from tests.support.factories import token
from tests.support.live import ws_url
from tests.support.processes import ServiceProcess

ALLOWED = "https://app.example.com"
EVIL = "https://evil.example"


@pytest.fixture
def server(clean_redis: str) -> Iterator[ServiceProcess]:
    proc = ServiceProcess(clean_redis, env={"ALLOWED_ORIGINS": f"{ALLOWED}, http://localhost:3000"})
    yield proc
    proc.stop()


def test_origins_are_compared_in_their_serialised_form() -> None:
    assert origin_of("HTTPS://App.Example.com:443/path") == "https://app.example.com"
    assert origin_of("http://a.test:8080") == "http://a.test:8080"
    assert parse_origins("https://a.test, http://b.test:81 ") == {"https://a.test", "http://b.test:81"}
    for bad in ("null", "app.example.com", "https://"):
        with pytest.raises(ValueError):
            origin_of(bad)
    with pytest.raises(ConfigError):
        load_settings({"APP_ENV": "test", "ALLOWED_ORIGINS": "not-an-origin"})


async def test_a_cookie_handshake_from_another_site_is_refused(server: ServiceProcess, settings: Settings) -> None:
    tok = token(settings, endpoint="E1")
    cookie = {"Cookie": f"ss-tok={tok}"}
    for origin in (EVIL, "null", server.url.replace("127.0.0.1", "127.0.0.2")):
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(ws_url(server.url), origin=origin, additional_headers=cookie)  # type: ignore[arg-type]
        assert refused.value.response.status_code == 403
        assert b'"errorCode":"Forbidden"' in refused.value.response.body
    for origin in (None, ALLOWED, "http://localhost:3000", server.url):  # no Origin: not a browser
        async with websockets.connect(ws_url(server.url), origin=origin, additional_headers=cookie) as ws:  # type: ignore[arg-type]
            assert '"snapshot"' in str(await ws.recv())


async def test_tokens_a_page_cannot_make_the_browser_send_work_from_any_origin(
        server: ServiceProcess, settings: Settings) -> None:
    tok = token(settings, endpoint="E1")
    async with websockets.connect(ws_url(server.url), origin=EVIL,  # type: ignore[arg-type]
                                  additional_headers={"Authorization": f"Bearer {tok}", "Cookie": "ss-tok=x"}) as ws:
        assert '"snapshot"' in str(await ws.recv())
    ws2 = await websockets.connect(ws_url(server.url), origin=EVIL)  # type: ignore[arg-type]
    await ws2.send('{"type":"auth","token":"%s"}' % tok)
    assert '"snapshot"' in str(await ws2.recv())
    await ws2.close()


@pytest.fixture
async def http(real_redis: aioredis.Redis, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(msgspec.structs.replace(settings, allowed_origins=ALLOWED), redis=real_redis)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c


@pytest.mark.parametrize("request_", [
    ("/sessions/changes", {}),
    ("/sessions/live", {"Accept": "text/event-stream"}),
])
async def test_cookie_sse_and_long_poll_from_another_site_are_refused(
        http: httpx.AsyncClient, settings: Settings, request_: tuple[str, dict[str, str]]) -> None:
    path, headers = request_
    tok = token(settings, endpoint="E1")
    http.cookies.set("ss-tok", tok)
    r = await http.get(path, headers={**headers, "Origin": EVIL})
    assert r.status_code == 403 and r.json()["responseStatus"]["errorCode"] == "Forbidden"
    if path == "/sessions/changes":  # (the SSE stream would not end by itself)
        assert (await http.get(path, headers={"Origin": "http://testserver"})).status_code == 200
        assert (await http.get(path, headers={"Origin": ALLOWED})).status_code == 200
        assert (await http.get(path, headers={"Origin": EVIL, "Authorization": f"Bearer {tok}"})).status_code == 200


async def test_cors_for_the_allowed_origins_on_the_client_and_its_transports(http: httpx.AsyncClient) -> None:
    for path in ("/static/sessions-client.js", "/static/json-patch.js", "/static/live-transports.js"):
        r = await http.get(path, headers={"Origin": ALLOWED})
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == ALLOWED
        assert "access-control-allow-credentials" not in r.headers
        assert "access-control-allow-origin" not in (await http.get(path, headers={"Origin": EVIL})).headers
    pre = await http.options("/sessions/changes", headers={
        "Origin": ALLOWED, "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization"})
    assert pre.status_code == 200 and pre.headers["access-control-allow-origin"] == ALLOWED
    assert "authorization" in pre.headers["access-control-allow-headers"].lower()
    r = await http.get("/sessions/active", headers={"Origin": ALLOWED})
    assert "access-control-allow-origin" not in r.headers  # only what the client module needs
