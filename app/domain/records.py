"""What the store keeps per session, and the pure helpers every transition shares."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import msgspec

from app.domain.dtos import SessionCallState, SessionInfo, SessionMemberInfo


class SessionRecord(msgspec.Struct, kw_only=True):
    """A session as stored: the public SessionInfo, private bookkeeping that
    transitions need (e.g. per-leg sequence numbers), and its revision."""

    info: SessionInfo
    meta: dict[str, Any] = msgspec.field(default_factory=dict)
    rev: int = 0


def utc_timestamp(value: str) -> str:
    """ISO 8601 in, canonical `YYYY-MM-DDTHH:MM:SS.mmmZ` out (sortable as text).
    Raises ValueError when the text is not a date-time with a time zone, or names
    one whose UTC time is out of datetime's range (`0001-01-01T00:00:00+00:01`)."""
    dt = datetime.fromisoformat(value.strip().replace("z", "Z").replace("Z", "+00:00"))
    if dt.tzinfo is None:
        raise ValueError("needs a time zone (e.g. Z or +00:00)")
    try:
        utc = dt.astimezone(timezone.utc)
    except OverflowError:
        raise ValueError("out of range once converted to UTC") from None
    return utc.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def touch(info: SessionInfo, at: str) -> SessionInfo:
    """Keep dateCreated the earliest and dateLastModified the latest event time,
    so the result does not depend on the order events arrive in."""
    created = info.date_created if info.date_created and info.date_created <= at else at
    modified = info.date_last_modified if info.date_last_modified and info.date_last_modified >= at else at
    return msgspec.structs.replace(info, date_created=created, date_last_modified=modified)


def end_session(info: SessionInfo, at: str, outcome: str | None) -> SessionInfo:
    return msgspec.structs.replace(
        info,
        ended=True,
        call_state=SessionCallState.DISCONNECTED,
        date_completed=info.date_completed or at,
        outcome=outcome if outcome is not None else info.outcome,
    )


def find_member(members: list[SessionMemberInfo], member: SessionMemberInfo) -> int | None:
    """Index of the member matched by callSid, else identity (the events API rule)."""
    if member.call_sid:
        for i, m in enumerate(members):
            if m.call_sid == member.call_sid:
                return i
    if member.identity:
        for i, m in enumerate(members):
            if m.identity == member.identity:
                return i
    return None


def fill_missing(old: SessionInfo, new: SessionInfo) -> SessionInfo:
    """An ended session only gains what it lacked: every field already set on
    `old` keeps its value; members keep theirs and only fill their own gaps.
    Log lines are history, so late ones are still appended."""
    changes: dict[str, Any] = {}
    for name in SessionInfo.__struct_fields__:
        before, after = getattr(old, name), getattr(new, name)
        if name == "members" and before is not None and after is not None:
            changes[name] = [_fill_member(m, after) for m in before]
        elif name == "log" and after is not None:
            changes[name] = after
        elif before is None and after is not None:
            changes[name] = after
    return msgspec.structs.replace(old, **changes)


def _fill_member(old: SessionMemberInfo, candidates: list[SessionMemberInfo]) -> SessionMemberInfo:
    i = find_member(candidates, old)
    if i is None:
        return old
    new = candidates[i]
    gaps = {
        f: getattr(new, f)
        for f in SessionMemberInfo.__struct_fields__
        if getattr(old, f) is None and getattr(new, f) is not None
    }
    return msgspec.structs.replace(old, **gaps) if gaps else old
