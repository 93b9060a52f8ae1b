"""What a session has heard from Twilio, kept in the record's private `meta` (pure).

Facts are a set: every distinct callback once, in a canonical order, so the
same callbacks give the same facts whatever order (and however often) they
arrived in. Everything shown on the session is derived from the facts
(`derive.py`); this module only records them and drops duplicates:
status callbacks by (CallSid, SequenceNumber), conference events by
(ConferenceSid, SequenceNumber, StatusCallbackEvent).
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from app.twilio.callbacks import TERMINAL, Callback, CallStatus, ConferenceEvent

META_KEY: Final = "twilio"
# Bounds on what one session keeps. Twilio sends at most ~5 status callbacks
# per leg; beyond these a callback is answered but changes nothing.
MAX_LEGS: Final = 64
MAX_CALLBACKS_PER_LEG: Final = 16
MAX_CONFERENCE_EVENTS: Final = 1000

# What the sweep (app/sweep/) learns from Twilio's REST API is recorded as an
# ordinary status fact, numbered above anything Twilio's callbacks use (they
# count from 0 per leg), one number per status in the order a call moves
# through them. So the same answer twice is one fact (a duplicate changes
# nothing), a later answer sorts after an earlier one, and a real callback that
# arrives late sorts before them all: its terminal status, the first one fired,
# stays the leg's end.
LOST: Final = "lost"  # the REST API no longer knows the call (404): it ended unseen
ENDING: Final = TERMINAL | {LOST}  # statuses that end a leg
SWEEP_SEQ_BASE: Final = 2**31 - 16
_SWEEP_RANK: Final = {"queued": 0, "initiated": 1, "ringing": 2, "in-progress": 3, LOST: 5}


def swept_seq(status: str) -> int:
    """The SequenceNumber of a fact the sweep learned (terminal statuses share one: a leg has one end)."""
    return SWEEP_SEQ_BASE + _SWEEP_RANK.get(status, 4)


def is_swept(seq: int) -> bool:
    return seq >= SWEEP_SEQ_BASE


class CallFact(msgspec.Struct, frozen=True, array_like=True):
    """One status callback of one leg. `fields` holds the leg's addresses, its
    AccountSid (whose credentials the sweep asks Twilio about it with) and the
    platform's context for it (`endpointId`, `role`, `displayName`)."""

    seq: int
    status: str
    at: str  # canonical UTC ISO 8601, sortable as text
    fields: dict[str, str]


class ConferenceFact(msgspec.Struct, frozen=True, array_like=True):
    conference_sid: str
    seq: int
    event: str
    at: str
    call_sid: str | None = None
    hold: bool | None = None
    muted: bool | None = None
    label: str | None = None
    call_status: str | None = None  # ParticipantCallStatus, on participant-leave

    @property
    def order(self) -> tuple[str, int, str, str]:
        """Conference events are ordered by Timestamp, then sequence."""
        return (self.at, self.seq, self.conference_sid, self.event)


class Facts(msgspec.Struct, frozen=True, kw_only=True):
    calls: dict[str, list[CallFact]] = {}  # by CallSid, sorted by CallSid, facts by seq
    conference: list[ConferenceFact] = []  # sorted by `order`


_STATUS_FIELDS: Final = (
    ("From", "from_"), ("To", "to"), ("Direction", "direction"), ("ParentCallSid", "parent_call_sid"),
    ("CallerName", "caller_name"), ("AccountSid", "account_sid"),
)
_CONTEXT_FIELDS: Final = (("endpointId", "endpoint_id"), ("role", "role"), ("displayName", "display_name"))


def load(meta: dict[str, Any]) -> Facts:
    raw = meta.get(META_KEY)
    return Facts() if raw is None else msgspec.convert(raw, Facts)


def dump(facts: Facts) -> dict[str, Any]:
    return msgspec.to_builtins(facts)  # type: ignore[no-any-return]


def record(facts: Facts, cb: Callback) -> Facts | None:
    """The facts with `cb` added, or None when it adds nothing (already known,
    or over a bound)."""
    if isinstance(cb, CallStatus):
        return _record_status(facts, cb)
    return _record_conference(facts, cb)


def call_fact(cb: CallStatus) -> CallFact:
    fields = {name: value for name, attr in _STATUS_FIELDS if (value := getattr(cb, attr))}
    fields.update({name: value for name, attr in _CONTEXT_FIELDS if (value := getattr(cb.context, attr))})
    return CallFact(seq=cb.sequence_number, status=cb.call_status, at=cb.timestamp, fields=fields)


def conference_fact(cb: ConferenceEvent) -> ConferenceFact:
    return ConferenceFact(
        conference_sid=cb.conference_sid, seq=cb.sequence_number, event=cb.status_callback_event,
        at=cb.timestamp, call_sid=cb.call_sid, hold=cb.hold, muted=cb.muted,
        label=cb.participant_label, call_status=cb.participant_call_status,
    )


def _record_status(facts: Facts, cb: CallStatus) -> Facts | None:
    known = facts.calls.get(cb.call_sid, [])
    if any(f.seq == cb.sequence_number for f in known):
        return None
    if len(known) >= MAX_CALLBACKS_PER_LEG or (not known and len(facts.calls) >= MAX_LEGS):
        return None
    leg = sorted([*known, call_fact(cb)], key=lambda f: f.seq)
    calls = dict(sorted({**facts.calls, cb.call_sid: leg}.items()))
    return msgspec.structs.replace(facts, calls=calls)


def _record_conference(facts: Facts, cb: ConferenceEvent) -> Facts | None:
    fact = conference_fact(cb)
    key = (fact.conference_sid, fact.seq, fact.event)
    if any((f.conference_sid, f.seq, f.event) == key for f in facts.conference):
        return None
    if len(facts.conference) >= MAX_CONFERENCE_EVENTS:
        return None
    return msgspec.structs.replace(facts, conference=sorted([*facts.conference, fact], key=lambda f: f.order))
