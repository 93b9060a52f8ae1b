"""POST /events: applied once each, bad input rejected whole with nothing applied."""

import json
import socket
from typing import BinaryIO

import httpx
import pytest
import redis.asyncio as aioredis

from app.config import Settings
from tests.support.api import bearer, post_events, seed
from tests.support.factories import event, token
from tests.support.processes import ServiceProcess

pytestmark = pytest.mark.cluster_too  # every test here runs on one node and on a Redis Cluster


async def keyspace(r: aioredis.Redis) -> dict[bytes, object]:
    """Everything stored, to prove a rejected request changed nothing."""
    out: dict[bytes, object] = {}
    for key in sorted(await r.keys("*")):
        kind = (await r.type(key)).decode()
        out[key] = {"string": r.get, "hash": r.hgetall, "set": r.smembers, "stream": r.xrange}[kind](key)
        out[key] = await out[key]  # type: ignore[misc]
    return out


async def active(client: httpx.AsyncClient, settings: Settings, **kw: object) -> list[dict]:
    r = await client.get("/sessions/active", headers=bearer(token(settings, **kw)))
    assert r.status_code == 200
    return r.json()["sessions"]  # type: ignore[no-any-return]


async def test_a_call_lifecycle(client: httpx.AsyncClient, settings: Settings) -> None:
    reply = await seed(
        client,
        event("session.upsert", "A1", "S1", session={"endpointId": "E1", "callState": "Ringing", "direction": "Incoming"}),
        event("session.member", "A1", "S1", at="2024-05-01T10:00:02Z",
              member={"callSid": "CA2", "endpointId": "E2", "role": "Agent", "callState": "Connected"}),
        event("session.log", "A1", "S1", at="2024-05-01T10:00:03Z", message="agent joined"),
    )
    assert reply["applied"] == 3 and reply["duplicates"] == 0
    [s] = await active(client, settings, endpoint="E2")
    assert s["members"][0]["role"] == "Agent" and s["log"] == [{"date": "2024-05-01T10:00:03.000Z", "message": "agent joined"}]
    await seed(client, event("session.end", "A1", "S1", at="2024-05-01T10:09:00Z", outcome="Completed"))
    assert await active(client, settings, endpoint="E1") == []
    assert await active(client, settings, endpoint="E2") == []


async def test_repeated_event_id_is_a_noop(client: httpx.AsyncClient, settings: Settings) -> None:
    first = event("session.upsert", "A1", "S1", event_id="dup-1", session={"endpointId": "E1", "displayName": "one"})
    again = {**first, "session": {"endpointId": "E1", "displayName": "two"}}
    assert (await seed(client, first))["applied"] == 1
    reply = await seed(client, again, again)
    assert reply["applied"] == 0 and reply["duplicates"] == 2
    [s] = await active(client, settings)
    assert s["displayName"] == "one"


BAD_BODIES = [
    (b'{"events": [', "SerializationException"),
    (b'{"events": [{"type": "session.explode", "eventId": "e", "accountId": "A1", "sessionId": "S1",'
     b' "occurredAt": "2024-05-01T10:00:00Z"}]}', "ValidationError"),
    (b'{"events": [{"type": "session.upsert", "eventId": "e", "accountId": "A1", "sessionId": "S1",'
     b' "occurredAt": "2024-05-01T10:00:00Z", "session": {"ended": "no", "callState": 3}}]}', "ValidationError"),
    (b'{"nope": 1}', "ValidationError"),
    (b'{"events":' + b"[" * 1000 + b"]" * 1000 + b"}", "SerializationException"),
    (b'{"events": [{"type": "session.end", "eventId": "e", "accountId": "A1", "sessionId": "S1\\n",'
     b' "occurredAt": "2024-05-01T10:00:00Z"}]}', "ValidationError"),
    (b'{"events": [{"type": "session.end", "eventId": "e", "accountId": "A1", "sessionId": "S1",'
     b' "occurredAt": "9999-12-31T23:59:59-14:00"}]}', "ValidationError"),
]


@pytest.mark.parametrize(("body", "code"), BAD_BODIES)
async def test_bad_input_is_400_and_changes_nothing(
    client: httpx.AsyncClient, real_redis: aioredis.Redis, body: bytes, code: str
) -> None:
    await seed(client, event("session.upsert", "A1", "S0", session={"endpointId": "E1"}))
    before = await keyspace(real_redis)
    r = await client.post("/events", content=body, headers={"Authorization": "Bearer test-events-key",
                                                            "Content-Type": "application/json"})
    assert r.status_code == 400
    status = r.json()["responseStatus"]
    assert status["errors"] and status["errors"][0]["errorCode"] == code
    assert await keyspace(real_redis) == before


async def test_one_bad_event_rejects_the_whole_batch(client: httpx.AsyncClient, real_redis: aioredis.Redis) -> None:
    before = await keyspace(real_redis)
    r = await post_events(client, event("session.upsert", "A1", "S1", session={"endpointId": "E1"}),
                          event("session.upsert", "A1", "S2", session={"muted": True}))
    assert r.status_code == 400
    assert [e["fieldName"] for e in r.json()["responseStatus"]["errors"]] == ["events[1].session.muted"]
    assert await keyspace(real_redis) == before


async def test_session_belongs_to_its_account(client: httpx.AsyncClient, real_redis: aioredis.Redis) -> None:
    await seed(client, event("session.upsert", "A1", "S1", session={"endpointId": "E1"}))
    before = await keyspace(real_redis)
    r = await post_events(client, event("session.upsert", "A2", "S2", session={"endpointId": "E1"}),
                          event("session.log", "A2", "S1", message="hijack"))
    assert r.status_code == 400
    assert r.json()["responseStatus"]["errors"][0]["fieldName"] == "events[1].accountId"
    assert await keyspace(real_redis) == before


@pytest.mark.parametrize("auth", [None, "Bearer wrong-key", "Basic dGVzdC1ldmVudHMta2V5Og==", "Bearer "])
async def test_wrong_or_missing_api_key_is_401(client: httpx.AsyncClient, real_redis: aioredis.Redis,
                                               auth: str | None) -> None:
    headers = {"Authorization": auth} if auth else {}
    r = await client.post("/events", json={"events": [event("session.end", "A1", "S1")]}, headers=headers)
    assert r.status_code == 401 and r.json()["responseStatus"]["errorCode"] == "Unauthorized"
    assert await real_redis.dbsize() == 0


async def test_the_api_key_is_not_taken_from_a_cookie(client: httpx.AsyncClient, real_redis: aioredis.Redis) -> None:
    client.cookies.set("ss-tok", "test-events-key")
    r = await client.post("/events", json={"events": [event("session.end", "A1", "S1")]})
    assert r.status_code == 401
    assert await real_redis.dbsize() == 0


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", "application/jsonp"])
async def test_the_body_must_be_declared_json(client: httpx.AsyncClient, real_redis: aioredis.Redis,
                                              content_type: str | None) -> None:
    body = json.dumps({"events": [event("session.end", "A1", "S1")]}).encode()
    headers = {"Authorization": "Bearer test-events-key", **({"Content-Type": content_type} if content_type else {})}
    r = await client.post("/events", content=body, headers=headers)
    assert r.status_code == 415 and r.json()["responseStatus"]["errorCode"] == "UnsupportedMediaType"
    assert await real_redis.dbsize() == 0
    ok = await client.post("/events", content=body, headers={**headers, "Content-Type": "application/json; charset=utf-8"})
    assert ok.status_code == 200


def test_deeply_nested_json_keeps_the_connection(service: ServiceProcess) -> None:
    """A 400, not a 500 that drops the keep-alive connection: the next request on the
    same socket is answered."""
    deep = b'{"events":' + b"[" * 1000 + b"]" * 1000 + b"}"
    good = json.dumps({"events": [event("session.end", "A1", "S1")]}).encode()
    with socket.create_connection(("127.0.0.1", service.port), timeout=10) as sock:
        reader = sock.makefile("rb")
        assert _exchange(sock, reader, deep)[0] == 400
        status, body = _exchange(sock, reader, good)
        assert status == 200 and json.loads(body)["applied"] == 1


def _exchange(sock: socket.socket, reader: BinaryIO, body: bytes) -> tuple[int, bytes]:
    """One HTTP/1.1 request on a kept-alive socket; its status and body."""
    sock.sendall(b"POST /events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer test-events-key\r\n"
                 b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    status = int(reader.readline().split()[1])
    headers = {}
    while (line := reader.readline().strip()):
        name, _, value = line.decode().partition(":")
        headers[name.lower()] = value.strip()
    assert headers.get("connection") != "close"
    return status, reader.read(int(headers["content-length"]))


async def test_oversize_body_is_413(client: httpx.AsyncClient, settings: Settings, real_redis: aioredis.Redis) -> None:
    huge = [event("session.log", "A1", f"S{i}", message="x" * 4000) for i in range(settings.max_body_bytes // 4000 + 5)]
    r = await post_events(client, *huge)
    assert r.status_code == 413 and r.json()["responseStatus"]["errorCode"] == "RequestEntityTooLarge"
    assert await real_redis.dbsize() == 0


async def test_user_token_cannot_post_events(client: httpx.AsyncClient, settings: Settings) -> None:
    r = await post_events(client, event("session.end", "A1", "S1"), key=token(settings, roles=("Admin",)))
    assert r.status_code == 401
