"""Twilio callbacks as typed values (pure): form + query string in, a frozen
`CallStatus` or `ConferenceEvent` out, or `CallbackInvalid` naming every bad field.

Twilio may add parameters without notice, so unknown ones are ignored (they are
still part of the signature and of the dead-letter copy). What we read is
bounded in count and length, and checked for shape: SIDs, ids, enums, numbers.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Annotated, Final, Literal, TypeVar
from urllib.parse import unquote

import msgspec

from app.domain.ids import ID_RULE, is_id
from app.domain.dtos import ResponseError
from app.formats.typed_input import Problem, problems
from app.twilio.signature import Params

MAX_BODY_BYTES: Final = 64 * 1024  # a real callback is ~2 KB
MAX_PARAMS: Final = 200
MAX_NAME: Final = 64
MAX_VALUE: Final = 2048

CALL_STATUSES: Final = (
    "queued", "initiated", "ringing", "in-progress", "completed", "busy", "no-answer", "canceled", "failed",
)
TERMINAL: Final = frozenset({"completed", "busy", "no-answer", "canceled", "failed"})
ROLES: Final = ("Caller", "Agent", "Transfer")

# Checked with fullmatch: `$` would also accept a trailing newline.
_SID = {prefix: re.compile(rf"{prefix}[0-9a-fA-F]{{32}}") for prefix in ("CA", "CF", "AC")}
_TOKEN = re.compile(r"[a-z][a-z0-9_\-]{0,63}")  # event names, directions, statuses, reasons
_MAX_DISPLAY = 256

Seq = Annotated[int, msgspec.Meta(ge=0, le=2**31)]


class CallbackInvalid(Exception):
    def __init__(self, errors: list[ResponseError]) -> None:
        super().__init__("; ".join(f"{e.field_name}: {e.message}" for e in errors))
        self.errors = errors


class Context(msgspec.Struct, frozen=True, kw_only=True):
    """What the platform put in the callback URL's query string (signed by Twilio)."""

    account_id: str | None = None
    session_id: str | None = None
    endpoint_id: str | None = None  # these three describe the leg the URL was given to
    role: str | None = None
    display_name: str | None = None


class CallStatus(msgspec.Struct, frozen=True, kw_only=True, rename="pascal"):
    """A call status callback: one leg's progress."""

    call_sid: str
    account_sid: str
    call_status: str
    sequence_number: Seq
    timestamp: str  # canonical UTC ISO 8601 after parsing (Twilio sends RFC 2822)
    direction: str | None = None
    from_: str | None = msgspec.field(default=None, name="From")
    to: str | None = None
    parent_call_sid: str | None = None
    caller_name: str | None = None
    call_duration: Annotated[int, msgspec.Meta(ge=0)] | None = None
    sip_response_code: Annotated[int, msgspec.Meta(ge=0, le=999)] | None = None
    context: Context = Context()
    kind: Literal["call"] = "call"


class ConferenceEvent(msgspec.Struct, frozen=True, kw_only=True, rename="pascal"):
    """A conference status callback: `StatusCallbackEvent` in a conference."""

    conference_sid: str
    account_sid: str
    status_callback_event: str
    sequence_number: Seq
    timestamp: str
    friendly_name: str | None = None
    call_sid: str | None = None
    muted: bool | None = None
    hold: bool | None = None
    participant_label: str | None = None
    participant_call_status: str | None = None
    reason_participant_left: str | None = None
    call_sid_ending_conference: str | None = None
    context: Context = Context()
    kind: Literal["conference"] = "conference"


Callback = CallStatus | ConferenceEvent
_C = TypeVar("_C", CallStatus, ConferenceEvent)


def form_pairs(body: bytes) -> list[tuple[str, str]] | None:
    """`application/x-www-form-urlencoded` pairs, blanks kept (they are signed);
    None when the body is not UTF-8 form data at all."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if text and text.count("&") + 1 > MAX_PARAMS:
        return None
    return query_pairs(text)


def query_pairs(query: str) -> list[tuple[str, str]]:
    """Exactly `parse_qsl(query, keep_blank_values=True)`, without its work on
    the many parts that need no unquoting (hot path: every callback)."""
    if ("%" in query or "+" in query) and _ENCODED_SEPARATOR.search(query) is None:
        return _split_unquoted(unquote(query.replace("+", " ")))
    out: list[tuple[str, str]] = []
    for part in query.split("&") if query else ():
        if not part:
            continue
        name, _, value = part.partition("=")
        if "+" in name or "%" in name:
            name = unquote(name.replace("+", " "))
        if "+" in value or "%" in value:
            value = unquote(value.replace("+", " "))
        out.append((name, value))
    return out


# An escaped `&` or `=`: only then must each name and value be unquoted on its own.
_ENCODED_SEPARATOR: Final = re.compile(r"%(?:26|3[dD])")


def _split_unquoted(text: str) -> list[tuple[str, str]]:
    """`query_pairs` of a text that had no escaped `&` or `=`, unquoted whole (one
    `unquote` instead of one per name and value: a Twilio form has ~20). The same
    pairs: unquoting makes no new `&` or `=`, an escape never spans one (neither is
    a hex digit), and UTF-8 decodes the same on either side of an ASCII byte."""
    out: list[tuple[str, str]] = []
    for part in text.split("&") if text else ():
        if part:
            name, _, value = part.partition("=")
            out.append((name, value))
    return out


def parse_status(query: Params, form: Params) -> CallStatus:
    """A call status callback, or CallbackInvalid naming every problem."""
    return _parse(CallStatus, query, form, _check_status)


def parse_conference(query: Params, form: Params) -> ConferenceEvent:
    """A conference status callback, or CallbackInvalid naming every problem."""
    return _parse(ConferenceEvent, query, form, _check_conference)


def _parse(kind: type[_C], query: Params, form: Params,
           check: Callable[[_C, dict[str, str], list[ResponseError]], None]) -> _C:
    errors: list[ResponseError] = []
    values = _first_values(form, errors)
    cb = _convert(values, kind, errors)
    context = _context(query, errors)
    if cb is not None:
        _sid(cb.account_sid, "AccountSid", "AC", errors)
        check(cb, values, errors)
        cb = msgspec.structs.replace(cb, timestamp=_timestamp(cb.timestamp, errors), context=context)
    _raise(errors)
    assert cb is not None
    return cb


def _check_status(cb: CallStatus, values: dict[str, str], errors: list[ResponseError]) -> None:
    _sid(cb.call_sid, "CallSid", "CA", errors)
    if cb.parent_call_sid is not None:
        _sid(cb.parent_call_sid, "ParentCallSid", "CA", errors)
    if cb.call_status not in CALL_STATUSES:
        errors.append(_err("CallStatus", f"Unknown CallStatus {cb.call_status[:32]!r}; expected one of "
                           + ", ".join(CALL_STATUSES)))
    _token(cb.direction, "Direction", errors)


def _check_conference(cb: ConferenceEvent, values: dict[str, str], errors: list[ResponseError]) -> None:
    _sid(cb.conference_sid, "ConferenceSid", "CF", errors)
    for name in ("CallSid", "CallSidEndingConference"):
        if (value := values.get(name)) is not None:
            _sid(value, name, "CA", errors)
    event = cb.status_callback_event
    _token(event, "StatusCallbackEvent", errors)
    if event.startswith("participant-") and cb.call_sid is None:
        errors.append(_err("CallSid", f"'{event}' needs the participant's CallSid"))
    _token(cb.participant_call_status, "ParticipantCallStatus", errors)


_MONTHS: Final = {name: i for i, name in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}
# What Twilio sends: `Tue, 14 Nov 2023 22:13:20 +0000`. Anything else takes the general parser.
_TWILIO_DATE = re.compile(
    r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), (\d{1,2}) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
    r"([1-9]\d{3}) (\d\d):(\d\d):(\d\d) \+0000")


def rfc2822_to_iso(value: str) -> str:
    """`Fri, 17 Mar 2023 11:28:31 +0000` -> `2023-03-17T11:28:31.000Z`; ValueError if not a date.
    Twilio's own shape (UTC, English names) is read directly; anything else,
    or a date it cannot be (31 Feb), goes to the general parser, which decides."""
    match = _TWILIO_DATE.fullmatch(value)
    if match is not None:
        day, name, year, hour, minute, second = match.groups()
        month = _MONTHS[name]
        try:
            datetime(int(year), month, int(day), int(hour), int(minute), int(second))
        except ValueError:
            pass
        else:
            return f"{year}-{month:02d}-{int(day):02d}T{hour}:{minute}:{second}.000Z"
    return rfc2822_to_iso_general(value)


def rfc2822_to_iso_general(value: str) -> str:
    """`rfc2822_to_iso` by `email.utils.parsedate_to_datetime`, for every shape RFC 2822 allows."""
    try:
        dt = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        raise ValueError(f"not an RFC 2822 date: {value[:64]!r}") from None
    if dt.tzinfo is None:
        raise ValueError(f"no time zone in {value[:64]!r}")
    try:
        utc = dt.astimezone(UTC)
    except OverflowError:  # a representable local time whose UTC is not (year 1 or 9999)
        raise ValueError(f"out of range in UTC: {value[:64]!r}") from None
    return utc.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse(kind: str, query: str, form: Params) -> Callback:
    """`kind` is the endpoint: "status" or "conference"."""
    parser = parse_status if kind == "status" else parse_conference
    return parser(query_pairs(query), form)


def idempotency_key(kind: str, query: str, form: Params) -> str:
    """Same signed request, same key: a retried delivery is applied once."""
    # The bytes hashed are `kind?query` then `\0name=value` per sorted pair (one update).
    text = f"{kind}?{query}" + "".join(["\x00" + name + "=" + value for name, value in sorted(form)])
    return "tw:" + hashlib.sha256(text.encode()).hexdigest()[:40]


# ---- helpers -------------------------------------------------------------------

def _err(field: str, message: str) -> ResponseError:
    return ResponseError(error_code="ValidationError", field_name=field, message=message)


def _raise(errors: list[ResponseError]) -> None:
    if errors:
        raise CallbackInvalid(errors)


def _first_values(pairs: Params, errors: list[ResponseError]) -> dict[str, str]:
    if len(pairs) > MAX_PARAMS:
        errors.append(_err("(body)", f"At most {MAX_PARAMS} parameters"))
    values: dict[str, str] = {}
    for name, value in pairs:
        if len(name) > MAX_NAME:
            errors.append(_err(name[:MAX_NAME], f"Parameter names are at most {MAX_NAME} characters"))
        elif len(value) > MAX_VALUE:
            errors.append(_err(name, f"At most {MAX_VALUE} characters"))
        else:
            values.setdefault(name, value)
    return values


@functools.cache
def _known_params(kind: type[msgspec.Struct]) -> frozenset[str]:
    """The form parameters a callback type reads; resolved once per type (hot path)."""
    return frozenset({f.encode_name for f in msgspec.structs.fields(kind)} - {"Context", "Kind"})


def _convert(values: dict[str, str], kind: type[_C], errors: list[ResponseError]) -> _C | None:
    known = _known_params(kind)
    read = {k: v for k, v in values.items() if k in known}
    try:
        return msgspec.convert(read, kind, strict=False)
    except msgspec.ValidationError as exc:  # name every bad parameter, not just msgspec's first
        found = problems(read, kind, strict=False) or [Problem("(body)", str(exc))]
        errors.extend(_err(p.field, p.message) for p in found)
        return None


def _context(query: Params, errors: list[ResponseError]) -> Context:
    values = _first_values(query, errors)
    ctx = Context(**{
        attr: values.get(wire) or None
        for attr, wire in (("account_id", "accountId"), ("session_id", "sessionId"),
                           ("endpoint_id", "endpointId"), ("role", "role"), ("display_name", "displayName"))
    })
    for attr, wire in (("account_id", "accountId"), ("session_id", "sessionId"), ("endpoint_id", "endpointId")):
        value = getattr(ctx, attr)
        if value is not None and not is_id(value):  # context ids become parts of Redis keys
            errors.append(_err(wire, ID_RULE))
    if ctx.role is not None and ctx.role not in ROLES:
        errors.append(_err("role", f"Unknown role {ctx.role[:32]!r}; expected one of {', '.join(ROLES)}"))
    if ctx.display_name is not None and len(ctx.display_name) > _MAX_DISPLAY:
        errors.append(_err("displayName", f"At most {_MAX_DISPLAY} characters"))
    return ctx


def _sid(value: str, field: str, prefix: str, errors: list[ResponseError]) -> None:
    if not _SID[prefix].fullmatch(value):
        errors.append(_err(field, f"Not a Twilio SID ({prefix} + 32 hex digits)"))


def _token(value: str | None, field: str, errors: list[ResponseError]) -> None:
    if value is not None and not _TOKEN.fullmatch(value):
        errors.append(_err(field, "Lower-case letters, digits, '-' and '_' only"))


def _timestamp(value: str, errors: list[ResponseError]) -> str:
    try:
        return rfc2822_to_iso(value)
    except ValueError as exc:
        errors.append(_err("Timestamp", str(exc)))
        return value
