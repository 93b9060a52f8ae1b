"""`GET /sessions/active` and the Twilio webhooks are served beside Starlette's router
(app/web/direct.py): every response they give must be the one the router gives for the same
request, byte for byte.
The same app answers both ways: `App.__call__` (direct) and `Starlette.__call__` (the
router and the app's whole middleware stack)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import httpx
import msgspec
import pytest
from starlette.applications import Starlette
from starlette.types import Receive, Scope, Send

from app.composition import App, create_app
from app.config import Settings
from app.web.sessions import READ_PATH
from tests.flows import a_inbound_to_agent as a
from tests.flows.http import signed
from tests.support.api import bearer, seed
from tests.support.factories import event, token
from tests.support.processes import free_port

ORIGIN = "https://softphone.example"
TRACE = {"X-Request-Id": "same-id-both-ways"}


class RouterOnly:
    """The app, entered the way every other route is: through Starlette's stack."""

    def __init__(self, app: App) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await Starlette.__call__(self.app, scope, receive, send)


async def both(app: App, method: str = "GET", url: str = READ_PATH,
               **request: Any) -> tuple[httpx.Response, httpx.Response]:
    async def one(asgi: Any) -> httpx.Response:
        transport = httpx.ASGITransport(app=asgi, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            return await c.request(method, url, **request)
    return await one(app), await one(RouterOnly(app))


def same(direct: httpx.Response, routed: httpx.Response) -> None:
    assert direct.status_code == routed.status_code
    assert direct.headers.multi_items() == routed.headers.multi_items()
    assert direct.content == routed.content


@pytest.fixture
async def app(clean_redis: str, settings: Settings) -> AsyncIterator[App]:
    built = create_app(msgspec.structs.replace(settings, redis_url=clean_redis, allowed_origins=ORIGIN))
    assert isinstance(built, App) and ("GET", READ_PATH) in built.direct
    yield built
    await built.state.services.store.redis.aclose()


async def test_a_read_and_its_cache_hit_are_what_the_router_sends(app: App, settings: Settings) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        await seed(c, event("session.upsert", "A1", "S1", session={"endpointId": "E1", "callState": "Ringing"}))
    good = {**bearer(token(settings)), **TRACE}
    first, routed = await both(app, headers=good)
    same(first, routed)
    assert first.status_code == 200 and [s["id"] for s in first.json()["sessions"]] == ["S1"]
    assert app.state.services.reads.snapshots.hits >= 1  # the second read of the pair was a hit
    same(*await both(app, headers={**good, "Accept": "application/xml"}))
    same(*await both(app, headers={**good, "If-None-Match": first.headers["etag"]}))
    not_modified, _ = await both(app, headers={**good, "If-None-Match": first.headers["etag"]})
    assert not_modified.status_code == 304


async def test_refusals_are_what_the_router_sends(app: App, settings: Settings) -> None:
    good = token(settings)
    forged = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
    for headers in ({}, bearer(forged), {"Authorization": "Basic eA=="}, bearer(token(settings, roles=[]))):
        direct, routed = await both(app, headers={**headers, **TRACE})
        same(direct, routed)
        assert direct.status_code in (401, 403) and "responseStatus" in direct.json()


async def test_origin_rules_are_what_the_router_applies(app: App, settings: Settings) -> None:
    cookie = {"Cookie": f"ss-tok={token(settings)}", **TRACE}
    foreign, routed = await both(app, headers={**cookie, "Origin": "https://evil.example"})
    same(foreign, routed)
    assert foreign.status_code == 403
    allowed, routed = await both(app, headers={**cookie, "Origin": ORIGIN})
    same(allowed, routed)
    assert allowed.status_code == 200


async def test_twilio_webhooks_answer_what_the_router_answers(app: App, settings: Settings) -> None:
    step = a.FLOW.steps[0]
    good = signed(step, "http://testserver")
    headers = {**good["headers"], **TRACE}
    post = {"method": "POST", "url": good["url"], "content": good["content"]}
    direct, routed = await both(app, **post, headers=headers)  # applied, then a duplicate: both 204
    same(direct, routed)
    assert direct.status_code == 204
    forged = {**headers, "X-Twilio-Signature": headers["X-Twilio-Signature"][::-1]}
    direct, routed = await both(app, **post, headers=forged)
    same(direct, routed)
    assert direct.status_code == 403 and direct.json()["responseStatus"]["errorCode"] == "Forbidden"
    broken = replace(step, params={k: v for k, v in step.params.items() if k != "CallStatus"})
    bad = signed(broken, "http://testserver")
    direct, routed = await both(app, "POST", bad["url"], content=bad["content"], headers={**bad["headers"], **TRACE})
    same(direct, routed)
    assert direct.status_code == 400 and direct.json()["responseStatus"]["errorCode"] == "ValidationError"


async def test_a_store_outage_is_what_the_router_sends(settings: Settings) -> None:
    down = create_app(msgspec.structs.replace(settings, redis_url=f"redis://127.0.0.1:{free_port()}/0"))
    assert isinstance(down, App)
    try:
        direct, routed = await both(down, headers={**bearer(token(settings)), **TRACE})
    finally:
        await down.state.services.store.redis.aclose()
    same(direct, routed)
    assert direct.status_code == 503 and direct.json()["responseStatus"]["errorCode"] == "ServiceUnavailable"


@pytest.mark.parametrize("path", [READ_PATH, "/presence", "/live/connections"])
async def test_no_read_honours_the_cookie_from_a_foreign_origin(app: App, settings: Settings, path: str) -> None:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    cookie = {"Cookie": f"ss-tok={token(settings, roles=('User', 'Manager'))}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        assert (await c.get(path, headers={**cookie, "Origin": "https://evil.example"})).status_code == 403
        assert (await c.get(path, headers={**cookie, "Origin": ORIGIN})).status_code == 200
        assert (await c.get(path, headers=cookie)).status_code == 200  # no Origin: not a page's request
