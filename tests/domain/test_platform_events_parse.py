"""Whole-batch validation of the events API (pure)."""

import json

import pytest

from app.domain.platform_events import BatchInvalid, parse_batch
from app.domain.dtos import SessionCallState
from tests.support.factories import event


def parse(events: object) -> list:
    return parse_batch(json.dumps({"events": events}).encode(), 100)


def fields_of(exc: pytest.ExceptionInfo[BatchInvalid]) -> list[str]:
    return [e.field_name for e in exc.value.errors]


def test_valid_batch_is_typed() -> None:
    [e] = parse([event("session.upsert", "A1", "S1", at="2024-05-01T12:00:00+02:00", session={"callState": "Ringing"})])
    assert e.fields == {"call_state": SessionCallState.RINGING}
    assert e.occurred_at == "2024-05-01T10:00:00.000Z"


def test_malformed_json() -> None:
    with pytest.raises(BatchInvalid) as exc:
        parse_batch(b'{"events": [', 10)
    assert exc.value.errors[0].error_code == "SerializationException"


@pytest.mark.parametrize("body", [b"[]", b'{"events": {}}', b'{"events": []}', b'"x"'])
def test_wrong_shape(body: bytes) -> None:
    with pytest.raises(BatchInvalid):
        parse_batch(body, 10)


def test_every_problem_is_listed_by_index_and_field() -> None:
    with pytest.raises(BatchInvalid) as exc:
        parse([
            event("session.upsert", "A1", "S1"),  # missing session object
            event("session.nope", "A1", "S1"),
            event("session.upsert", "A1", "S1", session={"callState": "Sideways", "ended": 1, "bogus": 1}),
            event("session.log", "A1", "S1"),
            {**event("session.end", "A1", "S1"), "occurredAt": "yesterday"},
            event("session.member", "A1", "S1", member={"muted": "yes"}),
            event("session.member", "A1", "S1", member={"muted": True}),
            event("session.upsert", "A/1", "S 1", session={}),
        ])
    assert fields_of(exc) == [
        "events[0].session", "events[1].type", "events[2].session.ended", "events[2].session.callState",
        "events[2].session.bogus", "events[3].message", "events[4].occurredAt",
        "events[5].member.muted", "events[6].member", "events[7].accountId", "events[7].sessionId",
    ]


def test_one_session_one_account_within_a_batch() -> None:
    with pytest.raises(BatchInvalid) as exc:
        parse([event("session.log", "A1", "S1", message="x"), event("session.log", "A2", "S1", message="y")])
    assert fields_of(exc) == ["events[1].accountId"]


def test_batch_size_limit() -> None:
    with pytest.raises(BatchInvalid):
        parse_batch(json.dumps({"events": [event("session.end", "A", "S")] * 3}).encode(), 2)


def test_timestamp_needs_zone_and_text_limits() -> None:
    with pytest.raises(BatchInvalid) as exc:
        parse([event("session.end", "A", "S", at="2024-05-01T10:00:00"),
               event("session.log", "A", "S", message="x" * 5000)])
    assert fields_of(exc) == ["events[0].occurredAt", "events[1].message"]


def test_deep_nesting_is_a_serialization_error_not_a_crash() -> None:
    with pytest.raises(BatchInvalid) as exc:
        parse_batch(b'{"events":' + b"[" * 1000 + b"]" * 1000 + b"}", 10)
    assert exc.value.errors[0].error_code == "SerializationException"


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00+00:01", "9999-12-31T23:59:59-14:00"])
def test_times_out_of_range_in_utc_name_the_field(when: str) -> None:
    with pytest.raises(BatchInvalid) as exc:
        parse([event("session.end", "A", "S", at=when), {**event("session.log", "A", "S", message="m"), "date": when}])
    assert fields_of(exc) == ["events[0].occurredAt", "events[1].date"]


@pytest.mark.parametrize("field", ["eventId", "accountId", "sessionId"])
@pytest.mark.parametrize("tail", ["\n", "\r\n", " "])
def test_ids_are_matched_whole(field: str, tail: str) -> None:
    raw = event("session.end", "A1", "S1")
    with pytest.raises(BatchInvalid) as exc:
        parse([{**raw, field: raw[field] + tail}])
    assert fields_of(exc) == [f"events[0].{field}"]


def test_an_event_the_typed_decoder_refuses_is_explained_field_by_field() -> None:
    """Wrong types and unknown fields, each named (msgspec alone stops at the first)."""
    with pytest.raises(BatchInvalid) as exc:
        parse([{**event("session.log", "A", "S", message="m"), "eventId": 5, "occurredAt": 7, "sesion": {}},
               {**event("session.member", "A", "S", member={"muted": "no", "role": "Boss", "nick": "x"})},
               {**event("session.end", "A 1", "S"), "occurredAt": "yesterday", "bogus": 1}])
    assert fields_of(exc) == ["events[0].eventId", "events[0].occurredAt", "events[0].sesion",
                              "events[1].member.muted", "events[1].member.role", "events[1].member.nick",
                              # the rules types cannot state still run on what did convert
                              "events[2].bogus", "events[2].accountId", "events[2].occurredAt"]
