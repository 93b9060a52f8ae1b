"""The events API's use case on a real Redis: the owner check is one read, and
a commit claims only a session that read found unowned."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
import redis

from app.config import Settings
from app.domain.platform_events import BatchInvalid, parse_batch
from app.ingest.events import EventIngest
from app.storage import keys
from app.storage.session_store import SessionStore
from tests.support.counting import CountingRedis
from tests.support.factories import event


@pytest.fixture
async def counted(clean_redis: str) -> AsyncIterator[CountingRedis]:
    client = CountingRedis.connect(clean_redis)
    yield client
    await client.aclose()


def batch(*events: dict[str, object]) -> list:
    return parse_batch(json.dumps({"events": list(events)}).encode(), 100)


def owner_commands(client: CountingRedis, session_id: str) -> list[str]:
    return [args[0].upper() for args in client.commands if keys.owner(session_id) in args[1:2]]


async def test_a_new_session_is_claimed_once_and_an_owned_one_not_at_all(
        counted: CountingRedis, settings: Settings) -> None:
    ingest = EventIngest(SessionStore(counted, settings))
    new = [event("session.log", "A1", "S1", message=str(i)) for i in range(3)]
    assert (await ingest.handle(batch(*new))).applied == 3
    assert owner_commands(counted, "S1") == ["GET", "SET"]  # the check, then the first commit's claim
    counted.commands.clear()
    more = [event("session.log", "A1", "S1", message=str(i)) for i in range(3)]
    assert (await ingest.handle(batch(*more))).applied == 3
    assert owner_commands(counted, "S1") == ["GET"]  # the check proved the owner


async def test_another_account_claiming_after_the_check_gets_the_event_rejected(
        counted: CountingRedis, clean_redis: str, settings: Settings) -> None:
    """Between the owner check and the commit, another account binds S2: the
    commit's claim refuses it (nothing stored for S2), the rest is applied."""
    rival = redis.Redis.from_url(clean_redis)

    def claim_s2_first(batch: list[list[str]]) -> None:
        if any(args[:2] == ["HMGET", keys.session("A1", "S2")] for args in batch):
            rival.set(keys.owner("S2"), "B1", nx=True)

    counted.before_send = claim_s2_first
    store = SessionStore(counted, settings)
    result = await EventIngest(store).handle(batch(
        event("session.log", "A1", "S1", message="one"), event("session.log", "A1", "S2", message="two")))
    rival.close()
    assert [r.status for r in result.results] == ["applied", "rejected"] and result.applied == 1
    assert await store.get("A1", "S2") is None and await store.owners(["S2"]) == {"S2": "B1"}


async def test_an_event_for_another_accounts_session_rejects_the_batch(
        counted: CountingRedis, settings: Settings) -> None:
    ingest = EventIngest(SessionStore(counted, settings))
    await ingest.handle(batch(event("session.log", "B1", "S1", message="theirs")))
    with pytest.raises(BatchInvalid) as exc:
        await ingest.handle(batch(event("session.log", "A1", "S2", message="ok"),
                                  event("session.log", "A1", "S1", message="hijack")))
    assert [(e.error_code, e.field_name) for e in exc.value.errors] == [("AccountMismatch", "events[1].accountId")]
    assert await SessionStore(counted, settings).owners(["S2"]) == {"S2": None}
