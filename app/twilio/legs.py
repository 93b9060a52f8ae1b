"""Call legs as the facts describe them (pure).

A leg is one CallSid: what its status callbacks said (ordered by
SequenceNumber; a terminal status is final; an earlier status only fills in
fields a later one lacks), what conference events said about it (ordered by
Timestamp and sequence), its `<Dial>` parent and children, and its role.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from app.domain.dtos import SessionMemberRoles as Role
from app.twilio.callbacks import TERMINAL
from app.twilio.facts import ENDING, CallFact, ConferenceFact, Facts

ANSWERERS: Final = frozenset({Role.AGENT, Role.TRANSFER})
RINGING_STATUSES: Final = frozenset({"queued", "initiated", "ringing"})
# Conference events that say where a participant is; any but a leave means "in".
_PARTICIPANT_EVENTS: Final = frozenset({
    "participant-join", "participant-leave", "participant-hold", "participant-unhold", "participant-mute",
    "participant-unmute", "participant-modify", "participant-speech-start", "participant-speech-stop",
})


@dataclass(slots=True)
class Leg:
    """One leg as `build` leaves it. What only its status fields decide (`parent`,
    `direction`, `far_end`, `is_client`) is worked out once they are final, and
    `is_customer` once its role is known: derive reads each many times per callback."""

    sid: str
    calls: list[CallFact] = field(default_factory=list)
    fields: dict[str, str] = field(default_factory=dict)  # latest value of each, by SequenceNumber
    status: str | None = None
    status_at: str | None = None
    first_at: str | None = None
    connected_at: str | None = None  # answered, joined a conference, or bridged to a child that was
    children: list[str] = field(default_factory=list)
    conference: str | None = None  # the conference it was last seen in
    in_conference: bool | None = None  # None: never in one
    conference_left_at: str | None = None
    conference_end: tuple[str, str] | None = None  # (ParticipantCallStatus, at) if it left terminal
    hold: bool | None = None
    muted: bool | None = None
    label: str | None = None
    end: tuple[str, str] | None = None  # (terminal status, at), its own or its parent's
    role: Role = Role.NONE
    parent: str | None = None  # its `ParentCallSid`, from `fields` (set by `build`, as the next three)
    direction: str | None = None  # its `Direction`, from `fields`
    # The address of the party on this leg: the caller for an inbound leg, the
    # callee for an outbound one (set by `build`, from `fields`).
    far_end: str | None = None
    is_client: bool = False  # a Voice SDK softphone (one of our users), not a phone or SIP party
    is_customer: bool = False  # a phone or SIP party that is not an Agent/Transfer, or labelled one

    @property
    def present(self) -> bool:
        return self.end is None and self.in_conference is not False

    @property
    def left_at(self) -> str | None:
        times = [t for t in (self.end[1] if self.end else None,
                             self.conference_left_at if self.in_conference is False else None) if t]
        return min(times) if times else None

    def seen(self, at: str) -> None:
        self.first_at = _min(self.first_at, at)

    def connected(self, at: str) -> None:
        self.connected_at = _min(self.connected_at, at)


def build(facts: Facts) -> dict[str, Leg]:
    """Every leg the facts name, keyed and ordered by CallSid."""
    legs: dict[str, Leg] = {}
    for sid, calls in facts.calls.items():
        legs[sid] = _from_calls(sid, calls)
    for fact in facts.conference:
        _apply_conference(legs, fact)
    for leg in list(legs.values()):
        if leg.parent:
            legs.setdefault(leg.parent, Leg(leg.parent)).children.append(leg.sid)
    legs = dict(sorted(legs.items()))
    for leg in legs.values():
        leg.children.sort()
        _bridge(legs, leg, set())
        leg.end = _end(legs, leg, set())
        leg.role = _role(leg)
        leg.is_customer = _is_customer(leg)
    return legs


def _from_calls(sid: str, calls: list[CallFact]) -> Leg:
    leg = Leg(sid, calls=calls)
    for fact in calls:  # ascending SequenceNumber: later values overwrite earlier ones
        leg.fields.update(fact.fields)
        leg.seen(fact.at)
        if fact.status == "in-progress":
            leg.connected(fact.at)
    terminal = [f for f in calls if f.status in ENDING]
    final = terminal[0] if terminal else calls[-1]  # terminal is final: the first one fired
    leg.status, leg.status_at = final.status, final.at
    # Only status callbacks set `fields`: they are final here.
    leg.parent, leg.direction = leg.fields.get("ParentCallSid"), leg.fields.get("Direction")
    leg.far_end = _far_end(leg.direction, leg.fields)
    leg.is_client = (leg.far_end or "").startswith("client:")
    return leg


def _far_end(direction: str | None, fields: dict[str, str]) -> str | None:
    direction = direction or ""
    if direction.startswith("inbound"):
        return fields.get("From")
    if direction.startswith("outbound"):
        return fields.get("To")
    return None


def _is_customer(leg: Leg) -> bool:
    if leg.role in ANSWERERS or leg.is_client:
        return False
    if leg.far_end is not None:
        return True
    return _label_role(leg.label) is Role.CALLER


def _apply_conference(legs: dict[str, Leg], fact: ConferenceFact) -> None:
    if fact.event == "conference-end":
        for leg in legs.values():
            if leg.conference == fact.conference_sid and leg.in_conference:
                leg.in_conference, leg.conference_left_at = False, fact.at
        return
    if fact.call_sid is None or fact.event not in _PARTICIPANT_EVENTS:
        return  # announcements, recordings, events Twilio adds later: logged only
    leg = legs.setdefault(fact.call_sid, Leg(fact.call_sid))
    leg.seen(fact.at)
    leg.label = fact.label or leg.label
    leg.conference = fact.conference_sid
    if fact.event == "participant-leave":
        leg.in_conference, leg.conference_left_at = False, fact.at
        if fact.call_status in TERMINAL and leg.conference_end is None:
            leg.conference_end = (fact.call_status, fact.at)
        return
    leg.in_conference = True
    leg.connected(fact.at)
    if fact.hold is not None:
        leg.hold = fact.hold
    if fact.muted is not None:
        leg.muted = fact.muted


def _bridge(legs: dict[str, Leg], leg: Leg, seen: set[str]) -> str | None:
    """A `<Dial>` parent is connected from when any child answers."""
    if leg.sid in seen:
        return leg.connected_at
    seen.add(leg.sid)
    for child in leg.children:
        leg.connected_at = _min(leg.connected_at, _bridge(legs, legs[child], seen))
    return leg.connected_at


def _end(legs: dict[str, Leg], leg: Leg, seen: set[str]) -> tuple[str, str] | None:
    """Its own terminal status (a status callback, else a terminal
    participant-leave), else its parent's: a `<Dial>` child cannot outlive it."""
    if leg.status in ENDING:
        assert leg.status is not None and leg.status_at is not None
        return (leg.status, leg.status_at)
    if leg.conference_end is not None:
        return leg.conference_end
    parent = legs.get(leg.parent) if leg.parent else None
    if parent is None or leg.sid in seen:
        return None
    seen.add(leg.sid)
    return _end(legs, parent, seen)


def _role(leg: Leg) -> Role:
    """The platform's `role` for this leg, else its conference label, else
    what its shape says: whoever placed a `<Dial>` or called in is the Caller,
    a softphone that was called is an Agent."""
    given = leg.fields.get("role")
    if given:
        return Role(given)
    labelled = _label_role(leg.label)
    if labelled is not Role.NONE:
        return labelled
    if leg.children or (leg.parent is None and (leg.direction or "").startswith("inbound")):
        return Role.CALLER
    if leg.is_client:
        return Role.AGENT
    return Role.NONE


def _label_role(label: str | None) -> Role:
    text = (label or "").lower()
    for word, role in (("customer", Role.CALLER), ("caller", Role.CALLER),
                       ("transfer", Role.TRANSFER), ("agent", Role.AGENT)):
        if word in text:
            return role
    return Role.NONE


def _min(a: str | None, b: str | None) -> str | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)
