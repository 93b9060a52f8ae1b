"""The live wire protocol: positions, messages, close codes, inbound parsing."""

import json

import pytest

from app.live import protocol
from app.live.protocol import (
    Ack,
    Auth,
    Close,
    CloseCode,
    Ping,
    Pong,
    ProtocolError,
    parse_inbound,
)
from app.domain.positions import BadPosition, Position, etag_matches, parse_since


def test_position_round_trips_through_text_etag_and_weak_etag() -> None:
    p = Position("9f86d081884c7d65", 42)
    assert str(p) == "9f86d081884c7d65:42"
    assert p.etag() == '"9f86d081884c7d65:42"' and p.etag("xml") == '"9f86d081884c7d65:42;xml"'
    for text in (str(p), p.etag(), "W/" + p.etag(), p.etag("xml"), " 9f86d081884c7d65:42 "):
        assert Position.parse(text) == p


@pytest.mark.parametrize("text", ["", "abc", "e:", "e:-1", "e:1.5", "e:x", "e:" + "9" * 20])
def test_bad_positions_are_refused(text: str) -> None:
    with pytest.raises(BadPosition):
        Position.parse(text)


def test_bare_cursor_parses_with_no_epoch_so_it_never_matches_one() -> None:
    assert Position.parse("17") == Position("", 17)
    assert parse_since(None) is None and parse_since("  ") is None


def test_etag_matching_is_weak_and_accepts_lists_and_star() -> None:
    tag = Position("e", 3).etag()
    assert etag_matches(tag, tag) and etag_matches("W/" + tag, tag)
    assert etag_matches('"x:1", ' + tag, tag) and etag_matches("*", tag)
    assert not etag_matches('"e:2"', tag) and not etag_matches(None, tag)


def test_close_codes_fall_in_two_documented_ranges() -> None:
    reconnect = {c for c in CloseCode if c.reconnect}
    assert reconnect == {CloseCode.SHUTDOWN, CloseCode.TOKEN_EXPIRED, CloseCode.SLOW,
                         CloseCode.SERVER_ERROR, CloseCode.NO_PONG}
    assert all(3000 <= c < 3500 for c in reconnect)
    assert all(3500 <= c < 4000 for c in set(CloseCode) - reconnect)


def test_close_reasons_fit_a_close_frame() -> None:
    close = Close.of(CloseCode.BAD_REQUEST, "é" * 200)
    assert len(close.reason.encode()) <= 123 and close.reason.startswith("bad request: ")


def test_snapshot_splices_stored_json_and_omits_reset_unless_set() -> None:
    m = protocol.snapshot("e", 7, {"S/1": b'{"id":"S/1","callState":"Ringing"}'})
    assert json.loads(m.text) == {"type": "snapshot", "epoch": "e", "cursor": 7,
                                  "sessions": {"S/1": {"id": "S/1", "callState": "Ringing"}}}
    assert json.loads(protocol.snapshot("e", 7, {}, reset=True).text)["reset"] is True
    assert m.event_id == "e:7" and m.kind == "snapshot"


def test_every_message_is_a_typed_json_object() -> None:
    assert json.loads(protocol.patch("e", 8, [{"op": "remove", "path": "/S1"}]).text) == {
        "type": "patch", "cursor": 8, "ops": [{"op": "remove", "path": "/S1"}]}
    assert json.loads(protocol.resumed("e", 5, 2).text) == {"type": "resumed", "epoch": "e", "cursor": 5, "replayed": 2}
    assert json.loads(protocol.ping(Position("e", 9)).text) == {"type": "ping", "cursor": 9}
    assert json.loads(protocol.ping(None).text) == {"type": "ping"}
    assert json.loads(protocol.pong().text) == {"type": "pong"}
    assert json.loads(protocol.authenticated(1700000000.9).text) == {"type": "authenticated", "expiresAt": 1700000000}
    assert json.loads(protocol.reconnect(1234).text) == {"type": "reconnect", "reason": "shutdown", "delayMs": 1234}
    assert json.loads(protocol.close_notice(Close.of(CloseCode.SLOW)).text) == {
        "type": "close", "code": 3008, "reason": "slow, reconnect and resume"}


def test_sse_framing_is_built_once_with_id_and_retry() -> None:
    m = protocol.patch("e", 8, [])
    assert m.sse() == b'id: e:8\ndata: {"type":"patch","cursor":8,"ops":[]}\n\n'
    assert m.sse() is m.sse()
    assert protocol.reconnect(250).sse().startswith(b"retry: 250\ndata: ")


def test_inbound_messages_decode_to_types() -> None:
    assert parse_inbound('{"type":"auth","token":"t","since":"e:3"}', 1000) == Auth("t", "e:3")
    assert isinstance(parse_inbound('{"type":"ping"}', 1000), Ping)
    assert isinstance(parse_inbound('{"type":"pong"}', 1000), Pong)
    assert parse_inbound('{"type":"ack","cursor":7,"epoch":"e"}', 1000) == Ack(7, "e")
    assert parse_inbound('{"type":"ack","cursor":0}', 1000) == Ack(0)


@pytest.mark.parametrize("text", ["nope", "{}", '{"type":"subscribe"}', '{"type":"auth"}',
                                  '{"type":"ping","extra":1}', '{"type":"auth","token":5}',
                                  '{"type":"ack"}', '{"type":"ack","cursor":-1}', '{"type":"ack","cursor":"3"}',
                                  '{"type":"ack","cursor":3,"at":1}'])
def test_malformed_inbound_is_a_bad_request(text: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_inbound(text, 1000)
    assert info.value.close.code == CloseCode.BAD_REQUEST


@pytest.mark.parametrize("data", [b'{"type":"ping"}', '{"x":' + "[" * 5000 + "]" * 5000 + ',"type":"ping"}'])
def test_binary_frames_and_deep_nesting_are_bad_requests(data: str | bytes) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_inbound(data, 100_000)
    assert info.value.close.code == CloseCode.BAD_REQUEST


def test_inbound_size_limit_counts_utf8_bytes() -> None:
    text = '{"type":"auth","token":"' + "é" * 40 + '"}'
    with pytest.raises(ProtocolError) as info:
        parse_inbound(text, 80)
    assert info.value.close.code == CloseCode.TOO_BIG
