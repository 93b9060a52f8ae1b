"""Which active sessions are stuck (pure): given the time now and the thresholds.

A session is stuck when it has heard nothing (its `dateLastModified`, the time of
the latest callback or event it took in) for longer than its state allows: a leg
that is queued, initiated or ringing should move on within `ringing_after`; an
answered one cannot last past `in_progress_max` (Twilio ends a call at its time
limit, 4 hours unless raised). The session's allowance is that of its most
hurried open leg; a session with no Twilio legs goes by its `callState`.

What to ask Twilio about is every leg of it that has not ended, with the
AccountSid its callbacks came from (whose credentials the question needs).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from app.domain.dtos import SessionCallState, SessionInfo
from app.domain.records import SessionRecord
from app.twilio import facts
from app.twilio.legs import Leg, build

Phase = Literal["ringing", "in-progress"]


@dataclass(frozen=True, slots=True)
class Thresholds:
    ringing_after: timedelta  # queued, initiated, ringing: should have been answered or ended by then
    in_progress_max: timedelta  # answered: cannot still be going after this long without a word

    def allowance(self, phase: Phase) -> timedelta:
        return self.ringing_after if phase == "ringing" else self.in_progress_max

    @property
    def shortest(self) -> timedelta:
        return min(self.ringing_after, self.in_progress_max)


@dataclass(frozen=True, slots=True)
class Ask:
    """One call to ask Twilio about."""

    call_sid: str
    account_sid: str | None  # None: no callback said whose call it is
    status: str | None  # what the session knows of it (its latest status), None if no status callback came


@dataclass(frozen=True, slots=True)
class Stuck:
    session_id: str
    heard_at: str  # the session's dateLastModified
    phase: Phase
    asks: tuple[Ask, ...]  # empty: nothing to ask Twilio about (no Twilio leg is open)


def heard_at(info: SessionInfo) -> datetime | None:
    """When the session last heard anything (its latest event time), or None if it never says."""
    stamp = info.date_last_modified or info.date_created
    if not stamp:
        return None
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None


def candidates(infos: Iterable[SessionInfo], now: datetime, thresholds: Thresholds) -> list[str]:
    """The active sessions quiet for longer than the shortest allowance: only these can
    be stuck, so only their private facts need reading."""
    out = []
    for info in infos:
        heard = heard_at(info)
        if info.id and not info.ended and heard is not None and now - heard > thresholds.shortest:
            out.append(info.id)
    return out


def stuck(session_id: str, record: SessionRecord, now: datetime, thresholds: Thresholds) -> Stuck | None:
    """The session, if it has been quiet for longer than its state allows."""
    info = record.info
    heard = heard_at(info)
    if info.ended or heard is None:
        return None
    legs = build(facts.load(record.meta))
    open_legs = [leg for leg in legs.values() if leg.end is None]
    phases = [_phase(leg) for leg in open_legs] or [_session_phase(info)]
    phase = min(phases, key=thresholds.allowance)
    if now - heard <= thresholds.allowance(phase):
        return None
    account_sid = next((leg.fields["AccountSid"] for leg in legs.values() if "AccountSid" in leg.fields), None)
    asks = tuple(Ask(leg.sid, leg.fields.get("AccountSid", account_sid), leg.status) for leg in open_legs)
    return Stuck(session_id, info.date_last_modified or info.date_created or "", phase, asks)


def _phase(leg: Leg) -> Phase:
    """Answered (its own in-progress, in a conference, or bridged to a child that answered), else ringing."""
    return "in-progress" if leg.connected_at is not None or leg.status == "in-progress" else "ringing"


def _session_phase(info: SessionInfo) -> Phase:
    ringing = info.call_state in (None, SessionCallState.RINGING)
    return "ringing" if ringing else "in-progress"
