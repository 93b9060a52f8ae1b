"""What one Twilio callback does to a session (pure, no I/O).

The callback is added to the session's Twilio facts (a duplicate adds
nothing and changes nothing), the Twilio-owned fields are derived afresh
from all the facts, and one log line is filed in time order. Because the
facts are a set and the log is sorted, the session ends up the same whatever
order the callbacks arrive in and however often each is delivered.

The session ends when its customer leg reaches a terminal status, and an
ended session never comes back: once the facts say it ended they always will,
and a session ended by someone else (the events API) only has its gaps filled.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Final

import msgspec

from app.domain.dtos import SessionInfo, SessionLogInfo, SessionMemberInfo
from app.domain.records import SessionRecord, fill_missing, touch
from app.twilio import facts
from app.twilio.callbacks import Callback, CallStatus
from app.twilio.derive import derive

MAX_LOG: Final = 1000
_SEQ = re.compile(r"\(seq (\d+)\)$")


def apply(current: SessionRecord | None, cb: Callback) -> SessionRecord | None:
    """The record after `cb`, or None when `cb` changes nothing."""
    meta = current.meta if current else {}
    grown = facts.record(facts.load(meta), cb)
    if grown is None:
        return None
    base = current.info if current else SessionInfo()
    derived, calls = derive(grown)
    info = _log(_overlay(base, derived, calls), log_entry(cb))
    if base.ended and not derived.get("ended"):
        info = fill_missing(base, info)
    info = touch(info, cb.timestamp)
    return SessionRecord(info=info, meta={**meta, facts.META_KEY: facts.dump(grown)},
                         rev=current.rev if current else 0)


def transition(cb: Callback) -> Callable[[SessionRecord | None], SessionRecord | None]:
    """`apply` in the shape `SessionStore.commit` takes."""
    return lambda current: apply(current, cb)


def log_entry(cb: Callback) -> SessionLogInfo:
    if isinstance(cb, CallStatus):
        text = f"call {cb.call_sid} {cb.call_status}"
        if cb.call_duration is not None:
            text += f" {cb.call_duration}s"
        if cb.sip_response_code is not None:
            text += f" sip {cb.sip_response_code}"
        if facts.is_swept(cb.sequence_number):
            text += ", per Twilio's API" if cb.call_status != facts.LOST else ": Twilio's API no longer knows it"
    else:
        text = f"conference {cb.conference_sid} {cb.status_callback_event}"
        if cb.call_sid:
            text += f" {cb.call_sid}"
        if cb.participant_call_status:
            text += f" {cb.participant_call_status}"
    return SessionLogInfo(date=cb.timestamp, message=f"{text} (seq {cb.sequence_number})")


def _overlay(base: SessionInfo, derived: dict[str, Any], calls: frozenset[str]) -> SessionInfo:
    """Derived values replace the session's; None leaves what is there. Members
    Twilio knows are replaced (keeping fields only the platform set); members
    the platform added for calls Twilio never named are kept."""
    changes = {name: value for name, value in derived.items() if value is not None and name != "members"}
    old = {m.call_sid: m for m in base.members or () if m.call_sid in calls}
    others = [m for m in base.members or () if m.call_sid not in calls]
    changes["members"] = [_merge_member(old.get(m.call_sid), m) for m in derived["members"]] + others
    return msgspec.structs.replace(base, **changes)


def _merge_member(old: SessionMemberInfo | None, new: SessionMemberInfo) -> SessionMemberInfo:
    if old is None:
        return new
    given = {f: v for f in SessionMemberInfo.__struct_fields__ if (v := getattr(new, f)) is not None}
    return msgspec.structs.replace(old, **given)


def _log(info: SessionInfo, entry: SessionLogInfo) -> SessionInfo:
    """File `entry` in (date, sequence, text) order, so the log is the same
    whatever order the callbacks came in."""
    log = list(info.log or ())
    if len(log) >= MAX_LOG:
        return info
    key = _log_key(entry)
    at = len(log)
    while at > 0 and _log_key(log[at - 1]) > key:
        at -= 1
    log.insert(at, entry)
    return msgspec.structs.replace(info, log=log)


def _log_key(entry: SessionLogInfo) -> tuple[str, int, str]:
    match = _SEQ.search(entry.message or "")
    return (entry.date or "", int(match.group(1)) if match else -1, entry.message or "")
