"""The pure transition each event makes."""

import json

from app.domain.platform_events import apply_event, parse_batch
from app.domain.dtos import SessionCallState, SessionInfo
from tests.support.factories import event


def one(**kw: object) -> object:
    return parse_batch(json.dumps({"events": [kw]}).encode(), 10)[0]


def run(*events: dict) -> SessionInfo:
    info = None
    for raw in events:
        info = apply_event(info, parse_batch(json.dumps({"events": [raw]}).encode(), 10)[0])
    assert info is not None
    return info


def test_upsert_sets_clears_and_keeps() -> None:
    info = run(
        event("session.upsert", "A", "S", session={"callState": "Ringing", "fromName": "Bob", "toAddress": "+1"}),
        event("session.upsert", "A", "S", at="2024-05-01T10:00:05Z", session={"callState": "Connected", "fromName": None}),
    )
    assert info.call_state is SessionCallState.CONNECTED
    assert info.from_name is None and info.to_address == "+1"
    assert (info.id, info.account_id) == ("S", "A")
    assert info.date_created == "2024-05-01T10:00:00.000Z"
    assert info.date_last_modified == "2024-05-01T10:00:05.000Z"


def test_member_matched_by_call_sid_then_identity() -> None:
    info = run(
        event("session.member", "A", "S", member={"callSid": "CA1", "identity": "x", "muted": False}),
        event("session.member", "A", "S", member={"identity": "y", "endpointId": "E2"}),
        event("session.member", "A", "S", member={"callSid": "CA1", "muted": True}),
        event("session.member", "A", "S", member={"identity": "y", "role": "Agent"}),
    )
    assert [(m.call_sid, m.identity, m.muted, m.endpoint_id, m.role) for m in info.members or []] == [
        ("CA1", "x", True, None, None), (None, "y", None, "E2", "Agent"),
    ]


def test_log_appends_with_own_or_event_date() -> None:
    info = run(event("session.log", "A", "S", message="one"),
               event("session.log", "A", "S", message="two", date="2024-05-01T09:00:00Z"))
    assert [(e.date, e.message) for e in info.log or []] == [
        ("2024-05-01T10:00:00.000Z", "one"), ("2024-05-01T09:00:00.000Z", "two")]


def test_end_sets_final_fields_and_never_revives() -> None:
    info = run(
        event("session.upsert", "A", "S", session={"callState": "Connected", "displayName": "Call"}),
        event("session.end", "A", "S", at="2024-05-01T10:05:00Z", outcome="Completed"),
        event("session.upsert", "A", "S", at="2024-05-01T10:06:00Z",
              session={"callState": "Ringing", "displayName": "Changed", "customerName": "Late Co"}),
        event("session.end", "A", "S", at="2024-05-01T10:07:00Z", outcome="Other"),
    )
    assert info.ended is True and info.call_state is SessionCallState.DISCONNECTED
    assert info.date_completed == "2024-05-01T10:05:00.000Z" and info.outcome == "Completed"
    assert info.display_name == "Call" and info.customer_name == "Late Co"
