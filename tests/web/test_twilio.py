"""The webhook routes: trust, limits, errors, Redis down, and dead letters."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import httpx
import msgspec
import pytest
import redis.asyncio as aioredis
from redis.asyncio.connection import Connection

from app.storage import keys
from app.config import Settings
from app.composition import create_app
from app.storage.session_store import SessionStore
from app.twilio.deadletters import DeadLetters
from tests.flows import FLOWS
from tests.flows import a_inbound_to_agent as a
from tests.flows.http import deliver, open_session, seen_by, signed
from tests.flows.model import TWILIO_ACCOUNT, USERS, Step, call, context, expect
from tests.support.resp import resp_commands

BASE = "http://testserver"
NO = expect(None)


async def keys_now(redis: aioredis.Redis) -> list[bytes]:
    return sorted(await redis.keys("*"))


def with_params(step: Step, **changes: str | None) -> Step:
    params = {k: v for k, v in {**step.params, **changes}.items() if v is not None}
    return Step(step.path, step.query, params, step.then)


async def nobody_sees_anything(client: httpx.AsyncClient, settings: Settings) -> None:
    for user in USERS:
        assert await seen_by(client, settings, user) == {}, user


async def test_applied_callback_is_204_with_no_body(client: httpx.AsyncClient) -> None:
    r = await deliver(client, a.FLOW.steps[0])
    assert r.status_code == 204 and r.content == b""


@pytest.mark.parametrize("tamper", ["no signature", "wrong token", "other query", "other param", "other host"])
async def test_bad_signature_is_403_and_stores_nothing(tamper: str, client: httpx.AsyncClient,
                                                       real_redis: aioredis.Redis) -> None:
    step = a.FLOW.steps[0]
    request = signed(step, BASE)
    if tamper == "no signature":
        del request["headers"]["X-Twilio-Signature"]
    elif tamper == "wrong token":
        request = signed(step, BASE, auth_token="not-our-token")
    elif tamper == "other query":
        request["url"] = request["url"].replace("S-a", "S-z")
    elif tamper == "other param":
        request["content"] = urlencode({**step.params, "CallStatus": "completed"}).encode()
    else:
        request["headers"]["X-Twilio-Signature"] = step.signature("https://evil.example")
    before = await keys_now(real_redis)
    r = await client.post(**request)
    assert r.status_code == 403
    assert r.json()["responseStatus"]["errorCode"] == "Forbidden"
    assert await keys_now(real_redis) == before


@pytest.mark.parametrize(("changes", "field"), [
    ({"CallSid": None}, "CallSid"),
    ({"CallStatus": "answered"}, "CallStatus"),
    ({"Timestamp": "not a date"}, "Timestamp"),
])
async def test_malformed_callback_is_400_and_stores_nothing(changes: dict[str, Any], field: str,
                                                            client: httpx.AsyncClient,
                                                            real_redis: aioredis.Redis) -> None:
    before = await keys_now(real_redis)
    r = await deliver(client, with_params(a.FLOW.steps[0], **changes))
    assert r.status_code == 400
    status = r.json()["responseStatus"]
    assert status["errorCode"] == "ValidationError"
    assert field in [e["fieldName"] for e in status["errors"]]
    assert await keys_now(real_redis) == before


async def test_oversize_body_is_413(client: httpx.AsyncClient, real_redis: aioredis.Redis) -> None:
    step = with_params(a.FLOW.steps[0], Padding="x" * 70_000)
    before = await keys_now(real_redis)
    r = await deliver(client, step)
    assert r.status_code == 413
    assert await keys_now(real_redis) == before


async def test_token_chosen_by_account_sid(real_redis: aioredis.Redis, settings: Settings) -> None:
    tokens = json.dumps({TWILIO_ACCOUNT: ["old-token", "new-token"]})
    app = create_app(msgspec.structs.replace(settings, twilio_auth_tokens=tokens), redis=real_redis)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as c:
        step = a.FLOW.steps[0]
        assert (await c.post(**signed(step, BASE))).status_code == 403  # the default token is not this account's
        assert (await c.post(**signed(step, BASE, auth_token="new-token"))).status_code == 204
        assert (await c.post(**signed(a.FLOW.steps[1], BASE, auth_token="old-token"))).status_code == 204


class FlakyConnection(Connection):
    """A real Redis connection that fails (before sending anything) any write
    holding a command named in its client's `failing`: a batch fails as a whole."""

    client: FlakyRedis

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        data = command.encode() if isinstance(command, str) else (
            command if isinstance(command, bytes) else b"".join(command))
        if any(args[0].decode().upper() in self.client.failing for args in resp_commands(data)):
            raise aioredis.ConnectionError("Redis is down (test)")
        await super().send_packed_command(command, check_health)


class FlakyRedis(aioredis.Redis):
    failing: frozenset[str] = frozenset()

    @classmethod
    def connect(cls, url: str) -> FlakyRedis:
        holder: dict[str, FlakyRedis] = {}
        connection = type("Flaky", (FlakyConnection,), {"client": property(lambda _: holder["client"])})
        redis = holder["client"] = cls.from_url(url, connection_class=connection)
        return redis


@pytest.fixture
async def flaky(clean_redis: str, settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, FlakyRedis]]:
    redis = FlakyRedis.connect(clean_redis)
    app = create_app(settings, redis=redis)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as c:
        yield c, redis
    await redis.aclose()


@pytest.mark.parametrize("failing", [{"GET", "MGET", "SET", "EVALSHA"}, {"EVALSHA"}])
async def test_redis_down_is_503_and_stores_nothing(failing: set[str], flaky: tuple[httpx.AsyncClient, FlakyRedis],
                                                    settings: Settings) -> None:
    client, redis = flaky
    redis.failing = frozenset(failing)
    r = await deliver(client, a.FLOW.steps[0])
    assert r.status_code == 503
    assert r.json()["responseStatus"]["errorCode"] == "ServiceUnavailable"
    redis.failing = frozenset()
    store = SessionStore(redis, settings)
    assert await store.get("A1", a.S) is None and await store.cursor("A1") == 0
    assert await redis.exists(keys.call_link(a.C), keys.call_link(a.P), keys.dead_letters()) == 0
    # Twilio's retry (URL fragment #rc=…&rp=5xx) then applies it, once.
    assert (await deliver(client, a.FLOW.steps[0])).status_code == 204
    assert (await deliver(client, a.FLOW.steps[0])).status_code == 204
    assert await store.cursor("A1") == 1


async def test_unresolvable_callback_is_kept_and_replayed_later(client: httpx.AsyncClient, settings: Settings,
                                                                real_redis: aioredis.Redis) -> None:
    """The customer's `completed` (number-level URL, no session) arrives before
    anything links its CallSid: answered 204, dead-lettered, shown to nobody;
    the child's first callback links it, and what it said is applied."""
    dead = DeadLetters(real_redis, 10, 60)
    parent_completed = a.FLOW.steps[-1]
    assert (await deliver(client, parent_completed)).status_code == 204
    [letter] = await dead.all()
    assert letter.kind == "status" and dict(letter.form)["CallSid"] == a.P and "links" in letter.reason
    assert await dead.count() == 1
    assert await SessionStore(real_redis, settings).get("A1", a.S) is None
    await nobody_sees_anything(client, settings)

    assert (await deliver(client, a.FLOW.steps[0])).status_code == 204
    record = await SessionStore(real_redis, settings).get("A1", a.S)
    assert record is not None and record.info.ended is True  # the customer had hung up: nothing to show
    assert len(record.info.log or []) == 2
    assert await dead.all() == [] and await real_redis.llen(keys.dead_letter_index(a.P)) == 0
    await nobody_sees_anything(client, settings)
    for step in a.FLOW.steps[1:]:
        assert (await deliver(client, step)).status_code == 204
    record = await SessionStore(real_redis, settings).get("A1", a.S)
    assert record is not None and record.info.answered_by_id == "E-alice" and record.info.outcome == "completed"


@pytest.mark.parametrize("case", ["no account", "another account's session"])
async def test_callback_for_a_session_it_cannot_have_is_dead_lettered(case: str, client: httpx.AsyncClient,
                                                                       settings: Settings,
                                                                       real_redis: aioredis.Redis) -> None:
    store = SessionStore(real_redis, settings)
    if case == "no account":
        query = {"sessionId": "S-orphan"}
    else:
        await store.commit("A2", "S-theirs", lambda _: None, claim=True)  # claimed by A2, nothing stored
        query = context("S-theirs", **a.ALICE)
    step = call(a.C, "in-progress", 2, 10, query, NO, direction="outbound-dial", frm="+15551230000",
                to="client:alice")
    assert (await deliver(client, step)).status_code == 204
    assert len(await DeadLetters(real_redis, 10, 60).all()) == 1
    assert await store.get("A1", "S-orphan") is None and await store.get("A2", "S-theirs") is None
    await nobody_sees_anything(client, settings)


async def test_all_flows_interleaved_on_one_account(client: httpx.AsyncClient, settings: Settings) -> None:
    """Every flow at once, steps interleaved: after each step every user sees
    exactly the sessions each flow's current step says they see, no others."""
    current = {name: flow.opening_sees or expect(None) for name, flow in FLOWS.items()}
    pending = {name: list(flow.steps) for name, flow in FLOWS.items()}
    for flow in FLOWS.values():
        await open_session(client, flow)
    while any(pending.values()):
        for name, steps in pending.items():
            if not steps:
                continue
            step = steps.pop(0)
            assert (await deliver(client, step)).status_code == 204
            current[name] = step.then
            for user in USERS:
                view = await seen_by(client, settings, user)
                shown = {sid: s.get("callState", "") for sid, s in view.items()}
                wanted = {FLOWS[n].session: e.sees(user) for n, e in current.items() if e.sees(user) is not None}
                assert shown == wanted, f"{user} after {name} step"
    await nobody_sees_anything(client, settings)


async def test_session_without_account_in_url_is_found_through_its_owner(client: httpx.AsyncClient,
                                                                         settings: Settings,
                                                                         real_redis: aioredis.Redis) -> None:
    assert (await deliver(client, a.FLOW.steps[0])).status_code == 204
    step = call(a.C, "ringing", 1, 3, {"sessionId": a.S, "endpointId": "E-alice", "role": "Agent"}, NO,
                direction="outbound-dial", frm="+15551230000", to="client:alice", parent=a.P)
    assert (await deliver(client, step)).status_code == 204
    record = await SessionStore(real_redis, settings).get("A1", a.S)
    assert record is not None and len(record.info.log or []) == 2
    assert await DeadLetters(real_redis, 10, 60).all() == []
