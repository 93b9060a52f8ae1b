"""The sweep on a real Redis (one node and a 3-master cluster) against the stand-in
for Twilio's REST API (a real HTTP server, asked through the `twilio` library): what
Twilio says is applied through the webhooks' ingest path; no credentials mark the
session stale; two sweepers at once ask Twilio once per call."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import msgspec
import pytest

from app.config import Settings
from app.redis_io import connect
from app.storage import keys
from app.storage.session_store import SessionStore
from app.sweep import answers
from app.sweep.calls_api import CallsApi
from app.sweep.lease import Leases
from app.sweep.sweeper import Sweeper, account_counts
from app.twilio.ingest import Ingest, letter_for
from tests.support.twilio_api import TwilioApi, call_resource
from tests.sweep.calls import ACCOUNT_SID, AGENT, CUSTOMER, OTHER_ACCOUNT_SID, T0, answered, ringing, status

pytestmark = pytest.mark.cluster_too
TOKEN = "stand-in-auth-token-1"
LATER = T0 + timedelta(hours=5)  # every leg has been quiet for longer than any allowance


@pytest.fixture
def twilio_api() -> Iterator[TwilioApi]:
    api = TwilioApi({ACCOUNT_SID: TOKEN, OTHER_ACCOUNT_SID: "the-other-token"})
    yield api
    api.stop()


@pytest.fixture
def sweep_settings(settings: Settings, clean_redis: str, twilio_api: TwilioApi) -> Settings:
    """Credentials for ACCOUNT_SID only (no default token): OTHER_ACCOUNT_SID has none here."""
    return msgspec.structs.replace(
        settings, redis_url=clean_redis, twilio_api_url=twilio_api.url, twilio_auth_token="",
        twilio_auth_tokens=json.dumps({ACCOUNT_SID: TOKEN}), sweep_interval_seconds=0, sweep_fetch_timeout=5)


@pytest.fixture
async def store(sweep_settings: Settings) -> AsyncIterator[SessionStore]:
    store = SessionStore(connect(sweep_settings), sweep_settings)
    yield store
    await store.redis.aclose()


def sweeper(store: SessionStore, s: Settings, **kw: Any) -> Sweeper:
    return Sweeper(store, Ingest(store, s), CallsApi(s), s, clock=lambda: LATER, **kw)


async def deliver(store: SessionStore, s: Settings, callbacks: list[Any]) -> None:
    ingest = Ingest(store, s)
    for query, form, cb in callbacks:
        assert await ingest.handle(letter_for("status", query, form, cb), cb) == "applied"


async def test_a_call_twilio_says_completed_ends_with_that_outcome(
        store: SessionStore, sweep_settings: Settings, twilio_api: TwilioApi) -> None:
    await deliver(store, sweep_settings, answered())  # ... and both `completed` callbacks were lost
    end = T0 + timedelta(minutes=7)
    twilio_api.know(call_resource(ACCOUNT_SID, CUSTOMER, "completed", created=T0, start=T0, end=end, duration=420))
    twilio_api.know(call_resource(ACCOUNT_SID, AGENT, "completed", created=T0, start=T0, end=end, duration=415,
                                  to="client:alice", direction="outbound-dial", parent=CUSTOMER))
    counts = await sweeper(store, sweep_settings).sweep_account("A1")
    record = await store.get("A1", "S1")
    assert record is not None and record.info.ended and record.info.outcome == "completed"
    assert record.info.date_completed == "2024-05-01T10:07:00.000Z"
    assert dict(twilio_api.fetches) == {CUSTOMER: 1, AGENT: 1}
    assert counts == {"asked": 1, "resolved:completed": 2}
    shown = await account_counts(store, "A1", 30)
    assert shown.asked == 1 and shown.resolved == {"completed": 2} and shown.last_pass_at == "2024-05-01T15:00:00.000Z"
    view = await store.view("A1", None, whole_account=True)
    assert view.sessions == []  # no longer active


async def test_a_call_twilio_no_longer_knows_ends_lost(
        store: SessionStore, sweep_settings: Settings, twilio_api: TwilioApi) -> None:
    await deliver(store, sweep_settings, ringing())  # Twilio has never heard of it (404)
    counts = await sweeper(store, sweep_settings).sweep_account("A1")
    record = await store.get("A1", "S1")
    assert record is not None and record.info.ended and record.info.outcome == "lost"
    assert counts == {"asked": 1, "lost": 1} and twilio_api.fetches[CUSTOMER] == 1
    # The real callback turns up after all: it is the leg's end, the outcome follows it.
    await deliver(store, sweep_settings, [status(CUSTOMER, "no-answer", 1, T0 + timedelta(seconds=30))])
    record = await store.get("A1", "S1")
    assert record is not None and record.info.outcome == "no-answer"
    assert record.info.date_completed == "2024-05-01T10:00:30.000Z"


async def test_without_credentials_the_session_is_marked_stale_once(
        store: SessionStore, sweep_settings: Settings, twilio_api: TwilioApi) -> None:
    await deliver(store, sweep_settings, ringing(account_sid=OTHER_ACCOUNT_SID))
    sweep = sweeper(store, sweep_settings)
    assert await sweep.sweep_account("A1") == {"asked": 1, "stale": 1}
    record = await store.get("A1", "S1")
    assert record is not None and not record.info.ended and answers.is_stale(record)
    assert record.info.log is not None and record.info.log[-1].message == (
        f"stale: nothing heard since 2024-05-01T10:00:00.000Z; no Twilio credentials for {OTHER_ACCOUNT_SID}")
    assert twilio_api.fetches == {}
    assert await sweep.sweep_account("A1") == {}  # asked about within the recheck interval: left alone
    await store.redis.run([("DEL", keys.sweep_asked("A1", "S1"))])  # the interval is over
    assert await sweep.sweep_account("A1") == {"asked": 1}  # looked at again, not marked twice
    again = await store.get("A1", "S1")
    assert again is not None and again.rev == record.rev


async def test_without_a_rest_api_every_stuck_session_is_marked_stale(
        store: SessionStore, sweep_settings: Settings, twilio_api: TwilioApi) -> None:
    s = msgspec.structs.replace(sweep_settings, twilio_api_url="")
    await deliver(store, s, ringing())
    assert await sweeper(store, s).sweep_account("A1") == {"asked": 1, "stale": 1}
    record = await store.get("A1", "S1")
    assert record is not None and record.info.log is not None
    assert record.info.log[-1].message is not None and record.info.log[-1].message.endswith(
        "no Twilio REST API configured (TWILIO_API_URL)")


async def test_a_refused_token_is_an_error_and_the_session_is_marked_stale(
        store: SessionStore, sweep_settings: Settings, twilio_api: TwilioApi) -> None:
    twilio_api.tokens[ACCOUNT_SID] = "rotated-away"
    await deliver(store, sweep_settings, ringing())
    assert await sweeper(store, sweep_settings).sweep_account("A1") == {"asked": 1, "errors": 1, "stale": 1}
    record = await store.get("A1", "S1")
    assert record is not None and not record.info.ended and answers.is_stale(record)


async def test_an_answer_the_session_already_had_writes_nothing(
        store: SessionStore, sweep_settings: Settings, twilio_api: TwilioApi) -> None:
    await deliver(store, sweep_settings, answered())
    for sid in (CUSTOMER, AGENT):
        twilio_api.know(call_resource(ACCOUNT_SID, sid, "in-progress", created=T0, start=T0))
    before = await store.get("A1", "S1")
    assert await sweeper(store, sweep_settings).sweep_account("A1") == {"asked": 1, "confirmed": 2}
    after = await store.get("A1", "S1")
    assert before is not None and after is not None and after.rev == before.rev


async def test_two_sweepers_at_once_ask_twilio_once_per_call(
        sweep_settings: Settings, twilio_api: TwilioApi) -> None:
    """Two instances, each with its own Redis connection and lease token, pass at the
    same moment, over three stuck sessions; Twilio is slow, so their passes overlap."""
    stores = [SessionStore(connect(sweep_settings), sweep_settings) for _ in range(2)]
    try:
        for n in range(3):
            await deliver(stores[0], sweep_settings, ringing(session=f"S{n}"))  # same CallSid: one per session below
        twilio_api.delay = 0.2
        first, second = (sweeper(s, sweep_settings) for s in stores)
        held = await asyncio.gather(first.run_pass(), second.run_pass())
        assert sorted(held, key=len) == [[], ["A1"]]  # one of them had the account's lease
        assert twilio_api.fetches[CUSTOMER] == 3  # one per stuck session, not two
        again = await asyncio.gather(first.run_pass(), second.run_pass())
        assert again == held  # the holder keeps its lease
        assert twilio_api.fetches[CUSTOMER] == 3
    finally:
        for s in stores:
            await s.redis.aclose()


async def test_a_lease_given_up_or_expired_is_taken_by_the_next_process(
        store: SessionStore, sweep_settings: Settings) -> None:
    one, two = Leases(store.redis, 60), Leases(store.redis, 60)
    assert await one.take(["A1", "A2"]) == ["A1", "A2"]
    assert await two.take(["A1", "A2"]) == []
    await one.release(["A1"])
    assert await two.take(["A1", "A2"]) == ["A1"]
    assert await one.take(["A1", "A2"]) == ["A2"]  # renewed its own
    await store.redis.run([("PEXPIRE", keys.sweep_lease("A2"), 1)])
    await asyncio.sleep(0.01)  # past the 1 ms expiry set just above (Redis' clock, not asserted on)
    assert await two.take(["A2"]) == ["A2"]


async def test_a_new_session_puts_its_account_on_the_sweeps_list(
        store: SessionStore, sweep_settings: Settings) -> None:
    await deliver(store, sweep_settings, ringing(account="A7", session="S70"))
    [members] = await store.redis.run([("SMEMBERS", keys.sweep_accounts())])
    assert {m.decode() if isinstance(m, bytes) else m for m in members} == {"A7"}
