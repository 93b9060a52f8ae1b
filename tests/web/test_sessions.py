"""GET /sessions/active and its ServiceStack routes, formats and auth, in-process on real Redis."""

import xml.etree.ElementTree as ET

import httpx
import pytest

from app.config import Settings
from tests.support.api import bearer, seed
from bench.samples import full_session_fields
from tests.support.factories import event, token

pytestmark = pytest.mark.cluster_too  # every test here runs on one node and on a Redis Cluster

JSON_CT = "application/json; charset=utf-8"
NS = "{http://schemas.datacontract.org/2004/07/Voice.Api.Sessions}"
ENTITY_NS = "{http://schemas.datacontract.org/2004/07/Voice.Api}"


async def test_empty_view_is_an_empty_list(client: httpx.AsyncClient, settings: Settings) -> None:
    r = await client.get("/sessions/active", headers=bearer(token(settings)))
    assert r.status_code == 200 and r.content == b'{"sessions":[]}' and r.headers["content-type"] == JSON_CT


ROUTES = [
    ("GET", "/sessions/active"), ("GET", "/sessions/active.json"), ("GET", "/api/GetActiveSessions"),
    ("POST", "/api/GetActiveSessions"), ("GET", "/api/getactivesessions"), ("GET", "/json/reply/GetActiveSessions"),
    ("POST", "/json/reply/getActiveSessions"), ("GET", "/sessions/my"), ("GET", "/api/GetMySessions"),
    ("POST", "/json/reply/GetMySessions"), ("GET", "/api/GetActiveSessions.json"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_every_route_returns_the_same_sessions(
    client: httpx.AsyncClient, settings: Settings, method: str, path: str
) -> None:
    await seed(client, event("session.upsert", "A1", "S1", session={"endpointId": "E1", "callState": "Ringing"}))
    kwargs = {"json": {}} if method == "POST" else {}
    r = await client.request(method, path, headers=bearer(token(settings)), **kwargs)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == JSON_CT
    [s] = r.json()["sessions"]
    assert (s["id"], s["accountId"], s["callState"]) == ("S1", "A1", "Ringing")


@pytest.mark.parametrize(
    ("path", "headers", "media"),
    [
        ("/sessions/active?format=xml", {}, "application/xml"),
        ("/sessions/active.xml", {}, "application/xml"),
        ("/xml/reply/GetActiveSessions", {}, "application/xml"),
        ("/api/GetActiveSessions.xml", {}, "application/xml"),
        ("/sessions/active", {"Accept": "application/xml"}, "application/xml"),
        ("/sessions/active?format=jsv", {}, "text/jsv"),
        ("/jsv/reply/GetActiveSessions", {}, "text/jsv"),
        ("/sessions/active.csv", {}, "text/csv"),
        ("/csv/reply/GetActiveSessions", {}, "text/csv"),
        ("/sessions/active?format=nope", {}, "application/json"),
        ("/xml/reply/GetActiveSessions?format=json", {}, "application/json"),
        ("/sessions/active", {"Accept": "*/*", "Content-Type": "application/json"}, "application/json"),
    ],
)
async def test_format_negotiation(
    client: httpx.AsyncClient, settings: Settings, path: str, headers: dict[str, str], media: str
) -> None:
    await seed(client, event("session.upsert", "A1", "S1", session={"endpointId": "E1"}))
    r = await client.get(path, headers={**bearer(token(settings)), **headers})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith(media)
    assert b"S1" in r.content
    if media == "text/csv":
        assert r.headers["content-disposition"] == "attachment;filename=GetActiveSessions.csv"


async def test_fully_populated_session_round_trips_as_json(client: httpx.AsyncClient, settings: Settings) -> None:
    fields = full_session_fields()
    await seed(client, event("session.upsert", "A1", "S1", session=fields))
    r = await client.get("/sessions/active", headers=bearer(token(settings, roles=("User", "Manager"))))
    [s] = r.json()["sessions"]
    expected = {**fields, "id": "S1", "accountId": "A1", "ended": False, "dateCreated": "2024-05-01T10:00:00.000Z",
                "dateLastModified": "2024-05-01T10:00:00.000Z"}
    assert s == expected  # false/0 kept, nothing missing, nothing extra


async def test_xml_of_a_session_uses_datacontract_layout(client: httpx.AsyncClient, settings: Settings) -> None:
    await seed(client, event("session.upsert", "A1", "S1", session=full_session_fields()))
    r = await client.get("/sessions/active.xml", headers=bearer(token(settings, endpoint="E3")))
    assert r.content.startswith(b'<?xml version="1.0" encoding="utf-8"?><GetActiveSessionsResponse')
    root = ET.fromstring(r.content)
    info = root.find(f"{NS}Sessions/{NS}SessionInfo")
    assert info is not None
    assert info.find(f"{ENTITY_NS}Id").text == "S1"  # type: ignore[union-attr]
    assert info.find(f"{NS}AnsweredById").text == "E3"  # type: ignore[union-attr]


# ---- auth --------------------------------------------------------------------

async def test_no_token_is_401_with_challenge_and_response_status(client: httpx.AsyncClient) -> None:
    r = await client.get("/sessions/active")
    assert r.status_code == 401 and "WWW-Authenticate" in r.headers
    status = r.json()["responseStatus"]
    assert status["errorCode"] == "Unauthorized" and status["message"] and status["errors"] == []


async def test_bad_and_expired_tokens_are_401(client: httpx.AsyncClient, settings: Settings) -> None:
    r = await client.get("/sessions/active", headers=bearer("not.a.token"))
    assert r.status_code == 401 and r.json()["responseStatus"]["errorCode"] == "TokenException"
    expired = token(settings, ttl=-10)
    r = await client.get("/sessions/active", headers=bearer(expired))
    assert r.status_code == 401 and r.json()["responseStatus"]["message"] == "Token has expired"
    forged = token(Settings(jwt_secret="another-secret-0123456789abcdef012345", events_api_key="x"))
    assert (await client.get("/sessions/active", headers=bearer(forged))).status_code == 401


async def test_missing_role_is_403_in_negotiated_format(client: httpx.AsyncClient, settings: Settings) -> None:
    no_role = token(settings, roles=("Guest",))
    r = await client.get("/sessions/active", headers=bearer(no_role))
    assert r.status_code == 403 and r.json()["responseStatus"]["errorCode"] == "Forbidden"
    r = await client.get("/sessions/active.xml", headers=bearer(no_role))
    assert r.status_code == 403 and r.headers["content-type"].startswith("application/xml")
    assert b"<ErrorCode>Forbidden</ErrorCode>" in r.content
    admin = token(settings, roles=("Admin",))
    assert (await client.get("/sessions/active", headers=bearer(admin))).status_code == 200


async def test_ss_tok_cookie_authenticates(client: httpx.AsyncClient, settings: Settings) -> None:
    await seed(client, event("session.upsert", "A1", "S1", session={"endpointId": "E1"}))
    r = await client.get("/sessions/active", headers={"Cookie": f"ss-tok={token(settings)}"})
    assert r.status_code == 200 and len(r.json()["sessions"]) == 1


async def test_unknown_operation_and_format_are_404(client: httpx.AsyncClient, settings: Settings) -> None:
    h = bearer(token(settings))
    for path in ("/api/DeleteEverything", "/json/reply/Nope", "/yaml/reply/GetActiveSessions"):
        r = await client.get(path, headers=h)
        assert r.status_code == 404 and "responseStatus" in r.json()


async def test_prebuilt_response_sends_what_starlette_would() -> None:
    """The cached-read response skips `Response.__init__` (app/web/sessions.py `_Prebuilt`):
    through the real Starlette it must send exactly what a publicly built `Response` sends."""
    from starlette.responses import Response

    from app.domain.positions import Position
    from app.web.sessions import _Prebuilt
    from app.web.snapshot_cache import Snapshot

    body = b'{"sessions":[]}'
    headers = {"ETag": '"e1:7"', "Cache-Control": "private, no-cache"}
    public = Response(body, headers=headers, media_type="application/json; charset=utf-8")
    raw = tuple((k.lower().encode(), v.encode()) for k, v in headers.items())
    raw += ((b"content-length", str(len(body)).encode()), (b"content-type", b"application/json; charset=utf-8"))
    prebuilt = _Prebuilt(Snapshot(Position("e1", 7), body, '"e1:7"', raw))

    async def sent(response: Response) -> list[dict[str, object]]:
        out: list[dict[str, object]] = []

        async def receive() -> dict[str, object]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, object]) -> None:
            out.append(message)

        await response({"type": "http", "method": "GET", "path": "/", "headers": []}, receive, send)  # type: ignore[arg-type]
        return out

    def normal(messages: list[dict[str, object]]) -> list[dict[str, object]]:
        return [{**m, "headers": sorted(m["headers"])} if "headers" in m else m for m in messages]  # type: ignore[arg-type]

    assert normal(await sent(prebuilt)) == normal(await sent(public))
