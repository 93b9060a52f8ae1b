"""SessionInfo fields from the Twilio facts (pure), as the reference's section 8
lays them out. A function of the facts alone, so it cannot depend on the order
the callbacks arrived in.

A field derived as None means "Twilio says nothing about it (yet)": the session
keeps whatever it had (e.g. from the platform's events API). Fields are derived
so that once settled they stay settled as more facts arrive, which is what
keeps the result independent of arrival order (property-tested for every flow).
"""

from __future__ import annotations

from typing import Any, Final

from app.domain.dtos import FlowChannels, SessionMemberInfo
from app.domain.dtos import SessionCallState as CallState
from app.domain.dtos import SessionDirections as Direction
from app.domain.dtos import SessionHoldReasons as HoldReason
from app.domain.dtos import SessionMemberCallState as MemberState
from app.domain.dtos import SessionMemberRoles as Role
from app.twilio.facts import Facts
from app.twilio.legs import ANSWERERS, RINGING_STATUSES, Leg, build

_ROLE_ORDER: Final = {Role.CALLER: 0, Role.AGENT: 1, Role.TRANSFER: 2, Role.NONE: 3}
_UNANSWERED: Final = ("no-answer", "busy", "failed")


def derive(facts: Facts) -> tuple[dict[str, Any], frozenset[str]]:
    """SessionInfo attribute -> value for every field Twilio determines, and
    every CallSid the facts name (the members Twilio owns)."""
    legs = build(facts)
    every = list(legs.values())
    customers = [l for l in every if l.is_customer]  # each list made once, read by several fields
    answerers = [l for l in every if l.role in ANSWERERS]
    members = [_member(leg) for leg in sorted((l for l in every if l.present), key=_member_order)]
    ended_customers = sorted((l for l in customers if l.end), key=lambda l: (l.end[1] if l.end else "", l.sid))
    ended = bool(ended_customers)
    direction = _direction(every, customers, answerers)
    answerer = _answerer(answerers)
    answered = any(l.connected_at for l in answerers)
    call_state = CallState.DISCONNECTED if ended else _call_state(members, answered)
    caller = _caller(every)
    fields: dict[str, Any] = {
        "channel": FlowChannels.VOICE,
        "call_state": call_state,
        "hold_reason": _hold_reason(call_state, members),
        "members": members,
        "direction": direction,
        "call_sid": caller.sid if caller else None,
        "from_address": _from_address(legs, caller),
        "to_address": _to_address(customers, caller, direction),
        "from_phone_number": _phone(legs, caller),
        "from_name": next((l.fields["CallerName"] for l in customers if "CallerName" in l.fields), None),
        "answered_by_id": answerer.fields.get("endpointId") if answerer else None,
        "answered_by_name": _name(answerer) if answerer else None,
        "conference_sid": facts.conference[0].conference_sid if facts.conference else None,
        "most_recent_participant_call_sid": next(
            (f.call_sid for f in reversed(facts.conference) if f.event == "participant-join"), None),
    }
    if ended:
        first = ended_customers[0]
        assert first.end is not None
        missed = direction is not Direction.OUTGOING and not answered
        fields.update(
            ended=True,
            date_completed=first.end[1],
            was_missed=missed,
            outcome=_missed_outcome(answerers, first.end[0]) if missed else first.end[0],
        )
    return fields, frozenset(legs)


def _member(leg: Leg) -> SessionMemberInfo:
    return SessionMemberInfo(
        identity=leg.far_end,
        endpoint_id=leg.fields.get("endpointId"),
        display_name=leg.fields.get("displayName"),
        is_original_member=leg.role is not Role.TRANSFER,
        call_state=_member_state(leg),
        role=leg.role,
        call_sid=leg.sid,
        muted=leg.muted,
    )


def _member_order(leg: Leg) -> tuple[int, str, str]:
    return (_ROLE_ORDER[leg.role], leg.first_at or "", leg.sid)


def _member_state(leg: Leg) -> MemberState:
    if leg.hold and leg.in_conference:
        return MemberState.HOLD
    if leg.connected_at is not None:
        return MemberState.CONNECTED
    if leg.status is None or leg.status in RINGING_STATUSES:
        return MemberState.RINGING
    return MemberState.NONE


def _call_state(members: list[SessionMemberInfo], answered: bool) -> CallState:
    """Hold if anyone is held; Connected while two parties talk (or an agent is
    on the call); Ringing while it is being set up; Passive when it was answered
    but whoever answered has gone and the caller has not hung up yet."""
    states = [m.call_state for m in members]
    if MemberState.HOLD in states:
        return CallState.HOLD
    agent_on = any(m.role in ANSWERERS and m.call_state is MemberState.CONNECTED for m in members)
    if agent_on or states.count(MemberState.CONNECTED) >= 2:
        return CallState.CONNECTED
    if MemberState.RINGING in states or not answered:
        return CallState.RINGING
    return CallState.PASSIVE


def _hold_reason(call_state: CallState, members: list[SessionMemberInfo]) -> HoldReason:
    if call_state is CallState.HOLD and any(m.role is Role.TRANSFER for m in members):
        return HoldReason.TRANSFERRING
    return HoldReason.NONE


def _direction(every: list[Leg], customers: list[Leg], answerers: list[Leg]) -> Direction | None:
    """A softphone calling out through the TwiML App is Outgoing; otherwise the
    customer leg's own direction; failing that, ringing an agent means Incoming."""
    roots = [l for l in every if l.parent is None and l.direction == "inbound"]
    if any((l.fields.get("From") or "").startswith("client:") for l in roots):
        return Direction.OUTGOING
    directed = sorted((l for l in customers if l.direction),
                      key=lambda l: (l.parent is not None, l.first_at or "", l.sid))
    if directed:
        return Direction.INCOMING if directed[0].direction == "inbound" else Direction.OUTGOING
    if any((l.direction or "").startswith("outbound") for l in answerers):
        return Direction.INCOMING
    return None


def _answerer(answerers: list[Leg]) -> Leg | None:
    """The first Agent leg to connect; when it leaves while another agent or
    transfer leg is on the call, that one takes over (a warm transfer)."""
    agents = sorted((l for l in answerers if l.connected_at),
                    key=lambda l: (l.connected_at or "", l.sid))
    if not agents:
        return None
    current = next((l for l in agents if l.role is Role.AGENT), agents[0])
    taken = {current.sid}
    while (left := current.left_at) is not None:
        successor = next((l for l in agents if l.sid not in taken and (l.connected_at or "") <= left
                          and (l.left_at is None or l.left_at > left)), None)
        if successor is None:
            break
        current = successor
        taken.add(current.sid)
    return current


def _name(leg: Leg) -> str | None:
    if leg.fields.get("displayName"):
        return leg.fields["displayName"]
    far = leg.far_end or ""
    return far.removeprefix("client:") if far.startswith("client:") else None


def _caller(every: list[Leg]) -> Leg | None:
    callers = sorted((l for l in every if l.role is Role.CALLER),
                     key=lambda l: (l.parent is not None, l.first_at or "", l.sid))
    return callers[0] if callers else None


def _from_address(legs: dict[str, Leg], caller: Leg | None) -> str | None:
    if caller is None:
        return None
    if "From" in caller.fields:
        return caller.fields["From"]
    # A `<Dial>` passes the caller's number on as its child's From.
    return next((legs[c].fields["From"] for c in caller.children if "From" in legs[c].fields), None)


def _to_address(customers: list[Leg], caller: Leg | None, direction: Direction | None) -> str | None:
    if caller is not None and "To" in caller.fields:
        return caller.fields["To"]
    if direction is Direction.OUTGOING:
        return next((l.fields["To"] for l in customers
                     if (l.direction or "").startswith("outbound") and "To" in l.fields), None)
    return None


def _phone(legs: dict[str, Leg], caller: Leg | None) -> str | None:
    if caller is None:
        return None
    candidates = [caller.fields.get("From"), *(legs[c].fields.get("From") for c in caller.children)]
    return next((c for c in candidates if c and c.startswith("+") and c[1:].isdigit()), None)


def _missed_outcome(answerers: list[Leg], customer_status: str) -> str:
    """Why nobody answered: the caller gave up while an agent rang, or the
    agents did not answer (no-answer, busy, failed), or, with no agent ever
    offered, what the customer leg itself ended with."""
    agent_ends = {l.end[0] for l in answerers if l.end}
    if "canceled" in agent_ends:
        return "caller-abandoned"
    for status in _UNANSWERED:
        if status in agent_ends:
            return status
    return "caller-abandoned" if customer_status in ("completed", "canceled") else customer_status
