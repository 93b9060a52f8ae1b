"""The platform's events API: parsing, whole-batch validation and the pure
transition each event makes to a session. No I/O here."""

from __future__ import annotations

from typing import Any, Final

import msgspec

from app.formats import json_input
from app.domain.ids import ID_RULE, is_id
from app.domain.dtos import (
    MEMBER_WIRE_NAMES,
    SESSION_WIRE_NAMES,
    ResponseError,
    SessionInfo,
    SessionLogInfo,
    SessionMemberInfo,
)
from app.domain.records import end_session, fill_missing, find_member, touch, utc_timestamp

EVENT_TYPES: Final = ("session.upsert", "session.member", "session.log", "session.end")
MAX_TEXT: Final = 4096
# Maintained by the service from event times and the event envelope.
SERVER_FIELDS: Final = {"id", "accountId", "dateCreated", "dateLastModified", "ended"}

_SESSION_TYPES = {f.encode_name: f.type for f in msgspec.structs.fields(SessionInfo)}
_MEMBER_TYPES = {f.encode_name: f.type for f in msgspec.structs.fields(SessionMemberInfo)}


class Event(msgspec.Struct, kw_only=True, frozen=True):
    type: str
    event_id: str
    account_id: str
    session_id: str
    occurred_at: str  # canonical UTC, see records.utc_timestamp
    fields: dict[str, Any] = {}  # upsert: attribute -> value (None clears)
    member: SessionMemberInfo | None = None
    member_fields: frozenset[str] = frozenset()
    message: str | None = None
    date: str | None = None
    outcome: str | None = None


class BatchInvalid(Exception):
    def __init__(self, errors: list[ResponseError]) -> None:
        super().__init__(f"{len(errors)} invalid field(s)")
        self.errors = errors


def parse_batch(body: bytes, max_events: int) -> list[Event]:
    """Decode and validate a whole batch; raise BatchInvalid listing every problem."""
    try:
        doc = json_input.decode(body, json_input.ANY)
    except msgspec.DecodeError as exc:
        raise BatchInvalid([_err("events", f"Malformed JSON: {exc}", "SerializationException")]) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("events"), list):
        raise BatchInvalid([_err("events", "Body must be an object with an 'events' array")])
    raw_events = doc["events"]
    if not raw_events:
        raise BatchInvalid([_err("events", "At least one event is required")])
    if len(raw_events) > max_events:
        raise BatchInvalid([_err("events", f"At most {max_events} events per batch")])
    errors: list[ResponseError] = []
    events: list[Event] = []
    for i, raw in enumerate(raw_events):
        event = _parse_event(raw, f"events[{i}]", errors)
        if event is not None:
            events.append(event)
    _check_batch_accounts(events, errors)
    if errors:
        raise BatchInvalid(errors)
    return events


def _err(field: str, message: str, code: str = "ValidationError") -> ResponseError:
    return ResponseError(error_code=code, field_name=field, message=message)


def _parse_event(raw: Any, at: str, errors: list[ResponseError]) -> Event | None:
    if not isinstance(raw, dict):
        errors.append(_err(at, "Each event must be an object"))
        return None
    before = len(errors)
    etype = raw.get("type")
    if etype not in EVENT_TYPES:
        errors.append(_err(f"{at}.type", f"Unknown event type {etype!r}; expected one of {', '.join(EVENT_TYPES)}"))
    ids = {k: _id(raw, k, at, errors) for k in ("eventId", "accountId", "sessionId")}
    occurred = _timestamp(raw.get("occurredAt"), f"{at}.occurredAt", errors, required=True)
    extra: dict[str, Any] = {}
    if etype == "session.upsert":
        extra["fields"] = _session_fields(raw.get("session"), f"{at}.session", raw, errors)
    elif etype == "session.member":
        extra["member"], extra["member_fields"] = _member(raw.get("member"), f"{at}.member", errors)
    elif etype == "session.log":
        extra["message"] = _text(raw.get("message"), f"{at}.message", errors, required=True)
        extra["date"] = _timestamp(raw.get("date"), f"{at}.date", errors, required=False)
    elif etype == "session.end":
        extra["outcome"] = _text(raw.get("outcome"), f"{at}.outcome", errors, required=False)
    if len(errors) > before:
        return None
    return Event(
        type=str(etype), event_id=ids["eventId"], account_id=ids["accountId"],
        session_id=ids["sessionId"], occurred_at=occurred, **extra,
    )


def _id(raw: dict[str, Any], key: str, at: str, errors: list[ResponseError]) -> str:
    value = raw.get(key)
    if not is_id(value):
        errors.append(_err(f"{at}.{key}", f"'{key}' is required: {ID_RULE}"))
        return ""
    return str(value)


def _timestamp(value: Any, at: str, errors: list[ResponseError], *, required: bool) -> str:
    if value is None and not required:
        return None  # type: ignore[return-value]
    if not isinstance(value, str):
        errors.append(_err(at, "An ISO 8601 date-time with a time zone is required"))
        return ""
    try:
        return utc_timestamp(value)
    except ValueError as exc:
        errors.append(_err(at, f"Not a usable ISO 8601 date-time with a time zone ({exc}): {value[:64]!r}"))
        return ""


def _text(value: Any, at: str, errors: list[ResponseError], *, required: bool) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value) or len(value) > MAX_TEXT:
        errors.append(_err(at, f"A string of 1-{MAX_TEXT} characters is required"))
        return None
    return value


def _convert_fields(
    obj: Any, at: str, types: dict[str, Any], names: dict[str, str], errors: list[ResponseError],
    skip: frozenset[str] | set[str] = frozenset(),
) -> dict[str, Any]:
    """Wire-named partial object -> {attribute: typed value}; absent keys stay absent."""
    if not isinstance(obj, dict):
        errors.append(_err(at, "An object is required"))
        return {}
    out: dict[str, Any] = {}
    for key, value in obj.items():
        field_at = f"{at}.{key}"
        if key not in types:
            errors.append(_err(field_at, f"Unknown field {key!r}"))
        elif key in skip:
            continue
        else:
            try:
                out[names[key]] = msgspec.convert(value, types[key])
            except msgspec.ValidationError as exc:
                errors.append(_err(field_at, str(exc)))
            else:
                if isinstance(value, str) and len(value) > MAX_TEXT:
                    errors.append(_err(field_at, f"At most {MAX_TEXT} characters"))
    return out


def _session_fields(obj: Any, at: str, raw: dict[str, Any], errors: list[ResponseError]) -> dict[str, Any]:
    if isinstance(obj, dict):
        for key in SERVER_FIELDS & obj.keys():
            envelope = {"id": raw.get("sessionId"), "accountId": raw.get("accountId")}
            if key in envelope and obj[key] == envelope[key]:
                continue
            hint = "use session.end" if key == "ended" else "it is maintained by the service"
            errors.append(_err(f"{at}.{key}", f"'{key}' cannot be set here: {hint}"))
    return _convert_fields(obj, at, _SESSION_TYPES, SESSION_WIRE_NAMES, errors, skip=SERVER_FIELDS)


def _member(obj: Any, at: str, errors: list[ResponseError]) -> tuple[SessionMemberInfo | None, frozenset[str]]:
    before = len(errors)
    fields = _convert_fields(obj, at, _MEMBER_TYPES, MEMBER_WIRE_NAMES, errors)
    if len(errors) > before:
        return None, frozenset()
    member = SessionMemberInfo(**fields)
    if not member.call_sid and not member.identity:
        errors.append(_err(at, "A member needs 'callSid' or 'identity' to be matched"))
        return None, frozenset()
    return member, frozenset(fields)


def _check_batch_accounts(events: list[Event], errors: list[ResponseError]) -> None:
    owners: dict[str, str] = {}
    for i, e in enumerate(events):
        owner = owners.setdefault(e.session_id, e.account_id)
        if owner != e.account_id:
            errors.append(_err(f"events[{i}].accountId", f"Session {e.session_id!r} belongs to account {owner!r}"))


# ---- transitions -------------------------------------------------------------

def apply_event(current: SessionInfo | None, event: Event) -> SessionInfo:
    """The session after `event`. Pure; an ended session only fills its gaps."""
    base = current or SessionInfo(id=event.session_id, account_id=event.account_id)
    candidate = _TRANSITIONS[event.type](base, event)
    if current is not None and current.ended:
        candidate = fill_missing(current, candidate)
    return touch(candidate, event.occurred_at)


def _upsert(info: SessionInfo, e: Event) -> SessionInfo:
    return msgspec.structs.replace(info, **e.fields)


def _member_event(info: SessionInfo, e: Event) -> SessionInfo:
    assert e.member is not None
    members = list(info.members or ())
    i = find_member(members, e.member)
    if i is None:
        members.append(e.member)
    else:
        given = {f: getattr(e.member, f) for f in e.member_fields}
        members[i] = msgspec.structs.replace(members[i], **given)
    return msgspec.structs.replace(info, members=members)


def _log(info: SessionInfo, e: Event) -> SessionInfo:
    entry = SessionLogInfo(date=e.date or e.occurred_at, message=e.message)
    return msgspec.structs.replace(info, log=[*(info.log or ()), entry])


def _end(info: SessionInfo, e: Event) -> SessionInfo:
    return end_session(info, e.occurred_at, e.outcome)


_TRANSITIONS = {
    "session.upsert": _upsert,
    "session.member": _member_event,
    "session.log": _log,
    "session.end": _end,
}
