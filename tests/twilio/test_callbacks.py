"""Form parameters + query string -> typed callbacks, and what is refused (pure)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.twilio.callbacks import (
    MAX_VALUE,
    CallbackInvalid,
    CallStatus,
    ConferenceEvent,
    form_pairs,
    idempotency_key,
    parse_conference,
    parse_status,
    query_pairs,
    rfc2822_to_iso,
    rfc2822_to_iso_general,
)
from tests.flows.model import TWILIO_ACCOUNT, at, sid

CA, CF = sid("CA", "p", 1), sid("CF", "p", 1)


def status_form(**changes: Any) -> list[tuple[str, str]]:
    form = {"AccountSid": TWILIO_ACCOUNT, "CallSid": CA, "CallStatus": "ringing", "SequenceNumber": "1",
            "Timestamp": at(3), "Direction": "outbound-dial", "From": "+15551230000", "To": "client:alice",
            "SomethingNew": "Twilio adds parameters without notice", **changes}
    return [(k, v) for k, v in form.items() if v is not None]


def conference_form(**changes: Any) -> list[tuple[str, str]]:
    form = {"AccountSid": TWILIO_ACCOUNT, "ConferenceSid": CF, "StatusCallbackEvent": "participant-hold",
            "SequenceNumber": "4", "Timestamp": at(20), "CallSid": CA, "Hold": "true", "Muted": "false",
            "ParticipantLabel": "customer", **changes}
    return [(k, v) for k, v in form.items() if v is not None]


def errors(exc: pytest.ExceptionInfo[CallbackInvalid]) -> dict[str, str]:
    return {e.field_name or "": e.message or "" for e in exc.value.errors}


def test_status_callback_is_typed() -> None:
    cb = parse_status([("accountId", "A1"), ("sessionId", "S1"), ("role", "Agent"), ("unknown", "x")],
                      status_form(CallDuration="95", SipResponseCode="200", ParentCallSid=sid("CA", "p", 0)))
    assert isinstance(cb, CallStatus)
    assert (cb.call_sid, cb.call_status, cb.sequence_number) == (CA, "ringing", 1)
    assert cb.timestamp == "2024-05-01T10:00:03.000Z"
    assert (cb.from_, cb.to, cb.call_duration, cb.sip_response_code) == ("+15551230000", "client:alice", 95, 200)
    assert (cb.context.account_id, cb.context.session_id, cb.context.role) == ("A1", "S1", "Agent")


def test_conference_event_is_typed() -> None:
    cb = parse_conference([("sessionId", "S1")], conference_form())
    assert isinstance(cb, ConferenceEvent)
    assert (cb.status_callback_event, cb.hold, cb.muted, cb.participant_label) == ("participant-hold", True,
                                                                                   False, "customer")


@pytest.mark.parametrize(("changes", "field"), [
    ({"CallSid": None}, "CallSid"),
    ({"CallStatus": "answered"}, "CallStatus"),
    ({"CallStatus": None}, "CallStatus"),
    ({"SequenceNumber": None}, "SequenceNumber"),
    ({"SequenceNumber": "-1"}, "SequenceNumber"),
    ({"Timestamp": "yesterday"}, "Timestamp"),
    ({"CallSid": "CA123"}, "CallSid"),
    ({"CallSid": CA + "\n"}, "CallSid"),
    ({"CallStatus": "ringing\n"}, "CallStatus"),
    ({"Timestamp": "Fri, 31 Dec 9999 23:59:59 -1400"}, "Timestamp"),
    ({"AccountSid": "AC" + "g" * 32}, "AccountSid"),
    ({"ParentCallSid": "not-a-sid"}, "ParentCallSid"),
    ({"Direction": "Inbound; DROP"}, "Direction"),
    ({"CallDuration": "ninety"}, "CallDuration"),
    ({"To": "x" * (MAX_VALUE + 1)}, "To"),
])
def test_malformed_status_callback(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(CallbackInvalid) as exc:
        parse_status([], status_form(**changes))
    assert field in errors(exc)


@pytest.mark.parametrize(("query", "field"), [
    ([("sessionId", "S 1")], "sessionId"),
    ([("sessionId", "S1\n")], "sessionId"),
    ([("accountId", "A1\n")], "accountId"),
    ([("endpointId", "E1\n")], "endpointId"),
    ([("accountId", "x" * 129)], "accountId"),
    ([("role", "Supervisor")], "role"),
    ([("displayName", "x" * 257)], "displayName"),
])
def test_malformed_context(query: list[tuple[str, str]], field: str) -> None:
    with pytest.raises(CallbackInvalid) as exc:
        parse_status(query, status_form())
    assert field in errors(exc)


def test_every_problem_is_named() -> None:
    with pytest.raises(CallbackInvalid) as exc:
        parse_status([("role", "Boss")], status_form(CallStatus="answered", Timestamp="soon"))
    assert {"CallStatus", "Timestamp", "role"} <= set(errors(exc))


@pytest.mark.parametrize(("changes", "field"), [
    ({"ConferenceSid": None}, "ConferenceSid"),
    ({"CallSid": None}, "CallSid"),  # a participant event must name its participant
    ({"StatusCallbackEvent": "Participant Join"}, "StatusCallbackEvent"),
    ({"Hold": "maybe"}, "Hold"),
    ({"CallSidEndingConference": "CA1"}, "CallSidEndingConference"),
])
def test_malformed_conference_event(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(CallbackInvalid) as exc:
        parse_conference([], conference_form(**changes))
    assert field in errors(exc)


def test_conference_level_events_need_no_call() -> None:
    cb = parse_conference([], conference_form(StatusCallbackEvent="conference-end", CallSid=None, Hold=None))
    assert cb.call_sid is None
    # Events Twilio may add later are accepted (and only logged).
    assert parse_conference([], conference_form(StatusCallbackEvent="participant-wave")).status_callback_event


def test_unquoting_whole_gives_the_pairs_of_unquoting_each() -> None:
    # A Twilio form unquoted in one piece, and the cases that must not be: an escaped separator,
    # an escaped `%`, a UTF-8 sequence cut by a separator.
    for text in ["CallSid=CA1&From=%2B15551234567&To=client%3Aalice&Timestamp=Tue%2C+14+Nov+2023+22%3A13%3A20+%2B0000",
                 "a=%26&b%3D=1", "a=%2541&b=%252", "a=%e2%82&%ac=%c3=%a9", "caf%C3%A9=cr%C3%A8me&+=+"]:
        assert query_pairs(text) == parse_qsl(text, keep_blank_values=True)


def test_too_many_parameters() -> None:
    assert form_pairs("&".join(f"p{i}=1" for i in range(201)).encode()) is None
    assert form_pairs(b"\xff\xfe=1") is None
    assert form_pairs(b"a=1&b=&a=2") == [("a", "1"), ("b", ""), ("a", "2")]


@given(st.lists(st.sampled_from(["a", "b", "=", "&", "+", "%", "%2", "%41", "%e2%82%ac", "%ff", " ", "é", ";",
                                  "%26", "%3D", "%3d", "%25", "%2B", "%c3", "%A9", "%e2%82", "%C3%a9", "2", "6"]),
                max_size=24))
def test_form_and_query_parsing_is_parse_qsl(parts: list[str]) -> None:
    text = "".join(parts)
    assert query_pairs(text) == parse_qsl(text, keep_blank_values=True)
    assert form_pairs(text.encode()) == parse_qsl(text, keep_blank_values=True, max_num_fields=200)


def test_timestamps() -> None:
    assert rfc2822_to_iso("Fri, 17 Mar 2023 11:28:31 +0000") == "2023-03-17T11:28:31.000Z"
    assert rfc2822_to_iso("Thu, 1 Jun 2017 20:48:32 -0200") == "2017-06-01T22:48:32.000Z"
    for bad in ("", "2023-03-17T11:28:31Z", "Fri, 17 Mar 2023 11:28:31"):
        with pytest.raises(ValueError):
            rfc2822_to_iso(bad)


def _either(value: str) -> str:
    try:
        return rfc2822_to_iso_general(value)
    except ValueError:
        return "ValueError"


def _fast(value: str) -> str:
    try:
        return rfc2822_to_iso(value)
    except ValueError:
        return "ValueError"


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@given(st.datetimes(min_value=datetime(1000, 1, 1), max_value=datetime(9999, 12, 31)), st.booleans())
def test_twilio_timestamps_take_the_fast_path_and_agree(when: datetime, pad: bool) -> None:
    day = f"{when.day:02d}" if pad else str(when.day)
    text = (f"{_DAYS[when.weekday()]}, {day} {_MONTH_NAMES[when.month - 1]} {when.year} "
            f"{when.hour:02d}:{when.minute:02d}:{when.second:02d} +0000")
    assert rfc2822_to_iso(text) == rfc2822_to_iso_general(text) == when.strftime("%Y-%m-%dT%H:%M:%S.000Z")


@given(st.sampled_from(_DAYS + ("Xyz", "mon", "")), st.integers(0, 40), st.sampled_from(_MONTH_NAMES + ("jan", "Foo")),
       st.integers(0, 10_000), st.integers(0, 99), st.integers(0, 99), st.integers(0, 99),
       st.sampled_from(["+0000", "-0000", "+0130", "GMT", "UT", "", "+00"]), st.booleans())
def test_fast_path_agrees_with_the_general_parser(weekday: str, day: int, month: str, year: int, hour: int,
                                                  minute: int, second: int, zone: str, pad: bool) -> None:
    y = f"{year:04d}" if pad else str(year)
    text = f"{weekday}, {day} {month} {y} {hour:02d}:{minute:02d}:{second:02d} {zone}".strip()
    assert _fast(text) == _either(text)


@given(st.text(alphabet="MonTue, 0123456789JanFb:+-", max_size=40))
def test_fast_path_agrees_on_any_text(text: str) -> None:
    assert _fast(text) == _either(text)


def test_idempotency_key_is_the_signed_request() -> None:
    form = status_form()
    key = idempotency_key("status", "sessionId=S1", form)
    assert key == idempotency_key("status", "sessionId=S1", list(reversed(form)))
    assert key != idempotency_key("status", "sessionId=S2", form)
    assert key != idempotency_key("conference", "sessionId=S1", form)
    assert key != idempotency_key("status", "sessionId=S1", status_form(SequenceNumber="2"))


def test_every_malformed_parameter_is_named_not_just_the_first() -> None:
    with pytest.raises(CallbackInvalid) as exc:
        parse_status([], status_form(CallSid=None, SequenceNumber="-1", CallDuration="ninety"))
    assert {"CallSid", "SequenceNumber", "CallDuration"} <= set(errors(exc))
