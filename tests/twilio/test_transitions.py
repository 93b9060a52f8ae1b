"""The pure Twilio state machine: rules one by one, then properties over every
flow (any arrival order, any duplicates)."""

from __future__ import annotations

import json
from collections.abc import Sequence

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.domain.platform_events import apply_event, parse_batch
from app.domain.dtos import SessionCallState, SessionMemberInfo
from app.domain.records import SessionRecord
from app.twilio.transitions import apply
from app.domain.visibility import is_active, session_endpoints
from tests.flows import FLOWS
from tests.flows import a_inbound_to_agent as a
from tests.flows import d_conference_hold as d
from tests.flows.model import ALICE, CUSTOMER, Flow, Step, call, context, expect, iso
from tests.flows.pure import callback, opened, run, wire

NO = expect(None)


def final(flow: Flow, steps: Sequence[Step]) -> SessionRecord | None:
    record = None
    for record in run(flow, steps):
        pass
    return record


def test_duplicate_changes_nothing() -> None:
    first = apply(None, callback(a.FLOW.steps[0]))
    assert first is not None
    assert apply(first, callback(a.FLOW.steps[0])) is None


def test_late_earlier_status_only_fills_missing_fields() -> None:
    answered = call(a.C, "in-progress", 2, 10, a.ctx_c, NO, direction="outbound-dial", frm="", to="client:alice")
    rec = apply(None, callback(answered))
    assert rec is not None
    late = apply(rec, callback(a.FLOW.steps[1]))  # ringing, seq 1, arrives after in-progress
    assert late is not None
    [member] = [m for m in late.info.members or [] if m.call_sid == a.C]
    assert member.call_state == "Connected" and late.info.call_state is SessionCallState.CONNECTED
    assert late.info.from_address == CUSTOMER  # only the late callback carried it
    assert [e.message for e in late.info.log or []] == [
        f"call {a.C} ringing (seq 1)", f"call {a.C} in-progress (seq 2)"]


def test_terminal_status_is_final() -> None:
    steps = a.FLOW.steps
    rec = final(a.FLOW, [steps[3], steps[2], steps[0]])  # completed, then in-progress and initiated late
    assert rec is not None
    assert [m.call_sid for m in rec.info.members or []] == [a.P]  # the agent's leg stays gone
    assert rec.info.answered_by_id == "E-alice"  # ... but what the late callbacks said is kept


def test_twilio_answered_by_is_not_the_agent() -> None:
    """`AnsweredBy` is answering-machine detection, never who answered."""
    customer = call(a.P, "in-progress", 1, 5, context("S-amd", role="Caller"), NO, direction="inbound",
                    frm=CUSTOMER, to="+15559870000", AnsweredBy="human")
    rec = apply(None, callback(customer))
    assert rec is not None and rec.info.answered_by_id is None and rec.info.answered_by_name is None
    agent = call(a.C, "in-progress", 2, 6, context("S-amd", **ALICE), NO, direction="outbound-dial",
                 frm=CUSTOMER, to="client:alice", parent=a.P, AnsweredBy="machine_start")
    rec = apply(rec, callback(agent))
    assert rec is not None and (rec.info.answered_by_id, rec.info.answered_by_name) == ("E-alice", "Alice")


def test_conference_events_are_deduplicated_by_sid_sequence_and_event() -> None:
    join = d.FLOW.steps[0]
    rec = apply(None, callback(join))
    assert rec is not None and apply(rec, callback(join)) is None
    same_seq_other_event = Step(join.path, join.query, {**join.params, "StatusCallbackEvent": "participant-mute",
                                                         "Muted": "true"}, NO)
    muted = apply(rec, callback(same_seq_other_event))
    assert muted is not None and len(muted.info.log or []) == 2


def test_session_ended_by_the_platform_never_revives() -> None:
    flow = FLOWS["b"]
    ended = apply_event(opened(flow).info, parse_batch(json.dumps({"events": [{  # type: ignore[union-attr]
        "type": "session.end", "eventId": "end", "accountId": "A1", "sessionId": flow.session,
        "occurredAt": iso(5), "outcome": "platform"}]}).encode(), 10)[0])
    rec: SessionRecord | None = SessionRecord(info=ended)
    for step in flow.steps[:3]:  # the agent's leg rings and is answered: Twilio says Connected
        rec = apply(rec, callback(step))
    assert rec is not None and rec.info.ended is True
    assert rec.info.call_state is SessionCallState.DISCONNECTED and rec.info.outcome == "platform"
    assert rec.info.answered_by_id == "E-alice"  # a gap, filled
    assert len(rec.info.log or []) == 3


def test_platform_members_and_fields_are_kept() -> None:
    platform_member = SessionMemberInfo(identity="supervisor", endpoint_id="E-sup", call_state="Connected")  # type: ignore[arg-type]
    agent_extra = SessionMemberInfo(call_sid=a.C, avatar_url="https://x.test/alice.png")
    base = SessionRecord(info=opened(FLOWS["b"]).info)  # type: ignore[union-attr]
    base.info = msgspec.structs.replace(base.info, members=[platform_member, agent_extra], customer_name="Acme")
    rec = apply(base, callback(a.FLOW.steps[2]))
    assert rec is not None and rec.info.customer_name == "Acme" and rec.info.queue_state == "Queued"
    by_sid = {m.call_sid: m for m in rec.info.members or []}
    assert by_sid[a.C].avatar_url == "https://x.test/alice.png" and by_sid[a.C].call_state == "Connected"
    assert platform_member in (rec.info.members or [])


# ---- properties over every flow ----------------------------------------------------

def endpoints_of(flow: Flow) -> frozenset[str]:
    named = {s.query.get("endpointId") for s in flow.steps}
    named |= {e.get("session", {}).get("endpointId") for e in flow.opening}
    return frozenset(e for e in named if e)


@st.composite
def deliveries(draw: st.DrawFn, flow: Flow) -> list[Step]:
    """Every step at least once, some several times, in any order."""
    extra = draw(st.lists(st.sampled_from(flow.steps), max_size=len(flow.steps)))
    return draw(st.permutations([*flow.steps, *extra]))


IN_ORDER = {name: final(flow, flow.steps) for name, flow in FLOWS.items()}


@pytest.mark.parametrize("name", sorted(FLOWS))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_order_and_duplicates_give_the_in_order_result(name: str, data: st.DataObject) -> None:
    flow = FLOWS[name]
    steps = data.draw(deliveries(flow))
    allowed = endpoints_of(flow)
    ended = False
    record = None
    for record in run(flow, steps):
        assert record is not None
        if ended:
            assert record.info.ended, "an ended session came back"
        ended = bool(record.info.ended)
        if is_active(record.info):
            leaked = session_endpoints(record.info) - allowed
            assert not leaked, f"shown to endpoints not in the call: {leaked}"
    expected = IN_ORDER[name]
    assert record is not None and expected is not None
    assert wire(record) == wire(expected)
    assert record.meta == expected.meta
    assert record.info.ended is True


def test_events_without_meaning_for_state_are_only_logged() -> None:
    rec = apply(None, callback(d.FLOW.steps[0]))
    assert rec is not None
    for seq, event in enumerate(("announcement-end", "participant-wave", "conference-record-end"), start=20):
        step = Step(d.FLOW.steps[0].path, d.FLOW.steps[0].query,
                    {**d.FLOW.steps[0].params, "StatusCallbackEvent": event, "SequenceNumber": str(seq)}, NO)
        after = apply(rec, callback(step))
        assert after is not None
        assert msgspec.structs.replace(after.info, log=rec.info.log) == rec.info
        assert len(after.info.log or []) == len(rec.info.log or []) + 1
        rec = after
