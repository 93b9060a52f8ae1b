"""The platform's events API (pure): a batch as typed values, validated whole,
and the transition each event makes to a session. No I/O here.

One tagged-union decoder turns an event into its Struct (`type` picks it).
msgspec stops at an event's first error, and the API promises every problem of
the batch, each named `events[i].field`: so the envelope is decoded first, then
each event on its own; an event the decoder refuses is explained field by field
(`typed_input.problems`), and the rules a type cannot state (the id alphabet,
ISO 8601 with a zone, the fields the service maintains, a member's match key,
one account per session) are checked on the typed values."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any, Final

import msgspec

from app.domain.dtos import ResponseError, SessionInfo, SessionLogInfo, SessionMemberInfo
from app.domain.ids import ID_RULE, is_id
from app.domain.records import end_session, fill_missing, find_member, touch, utc_timestamp
from app.formats import json_input
from app.formats.typed_input import given, partial, problems

MAX_TEXT: Final = 4096
# Maintained by the service from event times and the event envelope (wire names).
SERVER_FIELDS: Final = frozenset({"id", "accountId", "dateCreated", "dateLastModified", "ended"})

Text = Annotated[str, msgspec.Meta(max_length=MAX_TEXT)]
Message = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_TEXT)]

if TYPE_CHECKING:  # generated below from the models, one field each, every one optional
    SessionPatch = msgspec.Struct
    MemberPatch = msgspec.Struct
else:
    SessionPatch = partial(SessionInfo, "SessionPatch")
    MemberPatch = partial(SessionMemberInfo, "MemberPatch")

_WIRE: Final = {kind: {f.name: f.encode_name for f in msgspec.structs.fields(kind)}
                for kind in (SessionPatch, MemberPatch)}


class BatchInvalid(Exception):
    def __init__(self, errors: list[ResponseError]) -> None:
        super().__init__(f"{len(errors)} invalid field(s)")
        self.errors = errors


class _Event(msgspec.Struct, tag_field="type", rename="camel", forbid_unknown_fields=True,
             frozen=True, kw_only=True):
    event_id: str
    account_id: str
    session_id: str
    occurred_at: str  # canonical UTC once checked (records.utc_timestamp)

    def _checked_envelope(self, at: str, errors: list[ResponseError]) -> dict[str, Any]:
        return _envelope_rules({"eventId": self.event_id, "accountId": self.account_id,
                                "sessionId": self.session_id, "occurredAt": self.occurred_at}, at, errors)


class SessionUpsert(_Event, tag="session.upsert", frozen=True):
    session: SessionPatch

    @property
    def fields(self) -> dict[str, Any]:
        """The SessionInfo attributes it sets (None clears); not the envelope's ids."""
        return {k: v for k, v in given(self.session).items() if k not in ("id", "account_id")}

    def checked(self, at: str, errors: list[ResponseError]) -> dict[str, Any]:
        """Its rules beyond the types (every problem to `errors`); the normalised values."""
        normalised = self._checked_envelope(at, errors)
        wire = _wire_given(self.session)
        errors.extend(_maintained(_server_fields(wire, self.session_id, self.account_id), f"{at}.session"))
        errors.extend(_too_long(wire, f"{at}.session"))
        return normalised

    def applied_to(self, info: SessionInfo) -> SessionInfo:
        return msgspec.structs.replace(info, **self.fields)


class SessionMember(_Event, tag="session.member", frozen=True):
    member: MemberPatch

    @property
    def info(self) -> SessionMemberInfo:
        return SessionMemberInfo(**given(self.member))

    def checked(self, at: str, errors: list[ResponseError]) -> dict[str, Any]:
        normalised = self._checked_envelope(at, errors)
        errors.extend(_too_long(_wire_given(self.member), f"{at}.member"))
        if not self.info.call_sid and not self.info.identity:
            errors.append(_err(f"{at}.member", "A member needs 'callSid' or 'identity' to be matched"))
        return normalised

    def applied_to(self, info: SessionInfo) -> SessionInfo:
        members = list(info.members or ())
        i = find_member(members, self.info)
        if i is None:
            members.append(self.info)
        else:  # merged: only the fields given
            members[i] = msgspec.structs.replace(members[i], **given(self.member))
        return msgspec.structs.replace(info, members=members)


class SessionLog(_Event, tag="session.log", frozen=True):
    message: Message
    date: str | None = None  # default: occurredAt

    def checked(self, at: str, errors: list[ResponseError]) -> dict[str, Any]:
        normalised = self._checked_envelope(at, errors)
        if self.date is not None:
            normalised["date"] = _timestamp(self.date, f"{at}.date", errors)
        return normalised

    def applied_to(self, info: SessionInfo) -> SessionInfo:
        entry = SessionLogInfo(date=self.date or self.occurred_at, message=self.message)
        return msgspec.structs.replace(info, log=[*(info.log or ()), entry])


class SessionEnd(_Event, tag="session.end", frozen=True):
    outcome: Text | None = None

    def checked(self, at: str, errors: list[ResponseError]) -> dict[str, Any]:
        return self._checked_envelope(at, errors)

    def applied_to(self, info: SessionInfo) -> SessionInfo:
        return end_session(info, self.occurred_at, self.outcome)


Event = SessionUpsert | SessionMember | SessionLog | SessionEnd
_KINDS: Final[dict[str, type[Event]]] = {
    str(kind.__struct_config__.tag): kind for kind in (SessionUpsert, SessionMember, SessionLog, SessionEnd)}
EVENT_TYPES: Final = tuple(_KINDS)
_NESTED: Final[dict[str, type[msgspec.Struct]]] = {"session": SessionPatch, "member": MemberPatch}


class _Batch(msgspec.Struct):
    events: list[msgspec.Raw]  # each decoded on its own, so one bad event does not hide the next


_batch_decoder = msgspec.json.Decoder(_Batch)
_event_decoder = msgspec.json.Decoder(Event)


def parse_batch(body: bytes, max_events: int) -> list[Event]:
    """Decode and validate a whole batch; raise BatchInvalid listing every problem."""
    try:
        batch = json_input.decode(body, _batch_decoder)
    except msgspec.ValidationError:
        raise BatchInvalid([_err("events", "Body must be an object with an 'events' array")]) from None
    except msgspec.DecodeError as exc:
        raise BatchInvalid([_err("events", f"Malformed JSON: {exc}", "SerializationException")]) from None
    if not batch.events:
        raise BatchInvalid([_err("events", "At least one event is required")])
    if len(batch.events) > max_events:
        raise BatchInvalid([_err("events", f"At most {max_events} events per batch")])
    errors: list[ResponseError] = []
    events: list[Event] = []
    for i, raw in enumerate(batch.events):
        event = _parse_event(raw, f"events[{i}]", errors)
        if event is not None:
            events.append(event)
    _check_batch_accounts(events, errors)
    if errors:
        raise BatchInvalid(errors)
    return events


def _parse_event(raw: msgspec.Raw, at: str, errors: list[ResponseError]) -> Event | None:
    try:
        event = _event_decoder.decode(raw)
    except msgspec.ValidationError as exc:
        errors.extend(_explain(msgspec.json.decode(raw), at) or [_err(at, str(exc))])
        return None
    before = len(errors)
    normalised = event.checked(at, errors)
    return msgspec.structs.replace(event, **normalised) if len(errors) == before else None


def _explain(doc: Any, at: str) -> list[ResponseError]:
    """Every problem of an event the typed decoder refused, by field."""
    if not isinstance(doc, dict):
        return [_err(at, "Each event must be an object")]
    tag = doc.get("type")
    kind = _KINDS.get(tag) if isinstance(tag, str) else None
    if kind is None:
        return [_err(f"{at}.type", f"Unknown event type {tag!r}; expected one of {', '.join(EVENT_TYPES)}")]
    nested = {name: patch for name, patch in _NESTED.items() if name in kind.__struct_fields__ and name in doc}
    refused = problems(doc, kind, skip=frozenset(nested))
    found = [_err(_at(at, p.field), p.message) for p in refused]
    reported = {p.field for p in refused}
    _envelope_rules({k: v for k, v in doc.items() if k not in reported}, at, found)  # on what did convert
    for name, patch in nested.items():
        value, where = doc[name], f"{at}.{name}"
        server = _server_fields(value, doc.get("sessionId"), doc.get("accountId")) \
            if name == "session" and isinstance(value, dict) else []
        found += _maintained(server, where)
        found += [_err(_at(where, p.field), p.message) for p in problems(value, patch, skip=frozenset(server))]
    return found


def _envelope_rules(values: Mapping[str, Any], at: str, errors: list[ResponseError]) -> dict[str, Any]:
    """The envelope's rules beyond its types, on the given wire-named values: the one id
    rule, ISO 8601 with a time zone. The normalised values (attribute names)."""
    for wire in ("eventId", "accountId", "sessionId"):
        if wire in values and not is_id(values[wire]):
            errors.append(_err(f"{at}.{wire}", f"'{wire}' is required: {ID_RULE}"))
    occurred = values.get("occurredAt")
    return {"occurred_at": _timestamp(occurred, f"{at}.occurredAt", errors)} if isinstance(occurred, str) else {}


def _server_fields(session: Mapping[str, Any], session_id: Any, account_id: Any) -> list[str]:
    """The fields given in `session` that the service maintains (`id`/`accountId`
    are fine when they repeat the envelope)."""
    envelope = {"id": session_id, "accountId": account_id}
    return [key for key, value in session.items()
            if key in SERVER_FIELDS and not (key in envelope and value == envelope[key])]


def _maintained(keys: list[str], at: str) -> list[ResponseError]:
    return [_err(f"{at}.{key}", f"'{key}' cannot be set here: "
                 + ("use session.end" if key == "ended" else "it is maintained by the service")) for key in keys]


def _too_long(fields: Mapping[str, Any], at: str) -> list[ResponseError]:
    return [_err(f"{at}.{key}", f"At most {MAX_TEXT} characters")
            for key, value in fields.items() if isinstance(value, str) and len(value) > MAX_TEXT]


def _wire_given(patch: msgspec.Struct) -> dict[str, Any]:
    wire = _WIRE[type(patch)]
    return {wire[name]: value for name, value in given(patch).items()}


def _timestamp(value: str, at: str, errors: list[ResponseError]) -> str:
    try:
        return utc_timestamp(value)
    except ValueError as exc:
        errors.append(_err(at, f"Not a usable ISO 8601 date-time with a time zone ({exc}): {value[:64]!r}"))
        return value


def _check_batch_accounts(events: list[Event], errors: list[ResponseError]) -> None:
    owners: dict[str, str] = {}
    for i, e in enumerate(events):
        owner = owners.setdefault(e.session_id, e.account_id)
        if owner != e.account_id:
            errors.append(_err(f"events[{i}].accountId", f"Session {e.session_id!r} belongs to account {owner!r}"))


def _at(at: str, field: str) -> str:
    return f"{at}.{field}" if field else at


def _err(field: str, message: str, code: str = "ValidationError") -> ResponseError:
    return ResponseError(error_code=code, field_name=field, message=message)


# ---- transitions -------------------------------------------------------------

def apply_event(current: SessionInfo | None, event: Event) -> SessionInfo:
    """The session after `event`. Pure; an ended session only fills its gaps."""
    candidate = event.applied_to(current or SessionInfo(id=event.session_id, account_id=event.account_id))
    if current is not None and current.ended:
        candidate = fill_missing(current, candidate)
    return touch(candidate, event.occurred_at)
