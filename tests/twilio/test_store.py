"""Flows through the whole write path (resolution, dead letters and replay, the
atomic commit) on the embedded store: any order and duplicates still give the
in-order result. Fewer examples than the pure properties: each is a full run."""

from __future__ import annotations

import asyncio
from urllib.parse import urlencode

import fakeredis
import msgspec
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from app.config import Settings
from app.domain.records import SessionRecord
from app.storage.session_store import SessionStore
from app.twilio.callbacks import parse
from app.twilio.deadletters import DeadLetters
from app.twilio.ingest import Ingest, letter_for
from tests.flows import FLOWS
from tests.flows.model import Flow, Step
from tests.flows.pure import opened, run, wire


async def deliver(ingest: Ingest, step: Step) -> str:
    kind = "status" if step.path == "/twilio/status" else "conference"
    query, form = urlencode(step.query), list(step.params.items())
    cb = parse(kind, query, form)
    return await ingest.handle(letter_for(kind, query, form, cb), cb)


async def through_store(flow: Flow, steps: list[Step],
                        settings: Settings) -> tuple[SessionRecord | None, int, int]:
    """The final record, the dead letters left over, and how many were written."""
    redis = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer())
    try:
        store = SessionStore(redis, settings)
        start = opened(flow)
        if start is not None:
            await store.commit("A1", flow.session, lambda _: start, claim=True)
        ingest = Ingest(store, settings)
        for step in steps:
            await deliver(ingest, step)
        dead = DeadLetters(redis, 10, 60)
        return await store.get("A1", flow.session), len(await dead.all()), await dead.count()
    finally:
        await redis.aclose()


def in_order(flow: Flow) -> SessionRecord | None:
    record = None
    for record in run(flow, flow.steps):
        pass
    return record


@pytest.mark.parametrize("name", sorted(FLOWS))
@hsettings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_order_through_the_store(name: str, settings: Settings, data: st.DataObject) -> None:
    flow = FLOWS[name]
    extra = data.draw(st.lists(st.sampled_from(flow.steps), max_size=3))
    steps = data.draw(st.permutations([*flow.steps, *extra]))
    record, dead_letters_left, _ = asyncio.run(through_store(flow, steps, settings))
    expected = in_order(flow)
    assert record is not None and expected is not None
    assert dead_letters_left == 0, "a dead letter was never replayed"
    assert wire(record) == wire(expected)
    assert record.meta == expected.meta


async def test_reversed_flow_replays_every_dead_letter(settings: Settings) -> None:
    """(d) backwards: the customer's `completed` comes first and is dead-lettered;
    the conference events that link it bring it back."""
    flow = FLOWS["d"]
    record, left, written = await through_store(flow, list(reversed(flow.steps)), settings)
    assert written == 1 and left == 0 and record is not None
    assert msgspec.to_builtins(record.info)["outcome"] == "completed"
    assert wire(record) == wire(in_order(flow))
