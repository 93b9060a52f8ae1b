"""Flows (a)-(f) as recorded, signed callbacks through the app on real Redis:
what `GET /sessions/active` shows each user after every step, and the session
each flow ends with."""

from __future__ import annotations

import httpx
import msgspec
import pytest

from app.config import Settings
from app.storage.session_store import SessionStore
from tests.flows import FLOWS
from tests.flows.http import deliver, open_session, seen_by
from tests.flows.model import USERS, Expect, Flow

pytestmark = pytest.mark.cluster_too  # every test here runs on one node and on a Redis Cluster


async def assert_views(client: httpx.AsyncClient, settings: Settings, flow: Flow, expected: Expect, at: str) -> None:
    for user in USERS:
        view = await seen_by(client, settings, user)
        session = view.get(flow.session)
        shown = None if session is None else session.get("callState", "")
        assert shown == expected.sees(user), f"{flow.name} after {at}: {user} sees {shown!r}"
        assert set(view) <= {flow.session}, f"{user} sees sessions of no flow: {set(view)}"


@pytest.mark.parametrize("name", sorted(FLOWS))
async def test_flow_as_each_user_sees_it(name: str, client: httpx.AsyncClient, settings: Settings,
                                         url_store: SessionStore) -> None:
    flow = FLOWS[name]
    await open_session(client, flow)
    if flow.opening_sees is not None:
        await assert_views(client, settings, flow, flow.opening_sees, "the platform's opening event")
    for i, step in enumerate(flow.steps):
        r = await deliver(client, step)
        assert r.status_code == 204, r.text
        label = f"step {i} ({step.params.get('CallStatus') or step.params['StatusCallbackEvent']})"
        await assert_views(client, settings, flow, step.then, label)

    record = await url_store.get("A1", flow.session)  # type: ignore[arg-type]
    assert record is not None
    final = msgspec.to_builtins(record.info)
    assert {k: final.get(k) for k in flow.final} == flow.final
    assert len(final["log"]) == len(flow.steps), "one log entry per accepted callback"


async def test_redelivered_flow_changes_nothing(client: httpx.AsyncClient, settings: Settings,
                                                url_store: SessionStore) -> None:
    """Twilio retries: every callback delivered again after the flow is a no-op."""
    flow = FLOWS["e"]
    store = url_store
    for step in flow.steps:
        await deliver(client, step)
    before = await store.get("A1", flow.session)
    cursor = await store.cursor("A1")
    for step in flow.steps:
        assert (await deliver(client, step)).status_code == 204
    after = await store.get("A1", flow.session)
    assert after == before and await store.cursor("A1") == cursor
