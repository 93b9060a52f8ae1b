"""docs/asyncapi.yaml parses with the real AsyncAPI parser (@asyncapi/parser, run by
node) and describes exactly the messages and close codes of app/live/protocol.py."""

from __future__ import annotations

import json
import typing
from pathlib import Path
from typing import Any

import msgspec
import pytest

from app.live import protocol
from tests.support.node_tools import run_node

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "asyncapi.yaml"
PARSE = ROOT / "tests" / "support" / "asyncapi_parse.js"


def parse(path: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(run_node(PARSE, str(path), cwd=ROOT))
    return result


@pytest.fixture(scope="module")
def parsed() -> dict[str, Any]:
    return parse(DOC)


def shape(cls: type[msgspec.Struct]) -> tuple[str, set[str], set[str]]:
    """(type tag, every member, required members) as the wire has them."""
    fields = msgspec.structs.fields(cls)
    required = {f.encode_name for f in fields if f.required}
    tag = cls.__struct_config__.tag
    assert isinstance(tag, str)
    return tag, {"type", *(f.encode_name for f in fields)}, {"type", *required}


def documented(parsed: dict[str, Any], operation: str) -> set[tuple[str, frozenset[str], frozenset[str]]]:
    [op] = [o for o in parsed["operations"] if o["id"] == operation]
    return {(m["properties"]["type"]["const"], frozenset(m["properties"]), frozenset(m.get("required", [])))
            for m in op["messages"]}


def as_set(classes: list[type[msgspec.Struct]]) -> set[tuple[str, frozenset[str], frozenset[str]]]:
    return {(tag, frozenset(every), frozenset(required)) for tag, every, required in map(shape, classes)}


def test_the_document_parses_without_errors(parsed: dict[str, Any]) -> None:
    assert parsed["errors"] == []
    assert {o["id"]: o["action"] for o in parsed["operations"]} == {
        "sendLiveChanges": "send", "receiveClientMessages": "receive", "sendLiveEvents": "send"}


def test_every_message_both_ways_matches_the_protocol(parsed: dict[str, Any]) -> None:
    server = list(protocol._Out.__subclasses__())
    close = protocol._CloseNotice
    assert documented(parsed, "sendLiveChanges") == as_set([c for c in server if c is not close])
    sse = [protocol._Snapshot, protocol._Patch, protocol._Resumed, protocol._Ping, protocol._Reconnect, close,
           protocol._Presence]
    assert documented(parsed, "sendLiveEvents") == as_set(sse)
    assert documented(parsed, "receiveClientMessages") == as_set(list(typing.get_args(protocol.Inbound)))


def test_close_codes_match_the_protocol(parsed: dict[str, Any]) -> None:
    listed = {c["code"]: c for c in parsed["closeCodes"]}
    assert set(listed) == {int(code) for code in protocol.CloseCode}
    for code in protocol.CloseCode:
        assert listed[int(code)]["reconnect"] is code.reconnect
        assert protocol.REASONS[code].startswith(listed[int(code)]["reason"])


def test_the_parser_rejects_a_broken_document(tmp_path: Path) -> None:
    """The parse can fail: an operation with an unknown action is not AsyncAPI 3."""
    broken = tmp_path / "broken.yaml"
    broken.write_text(DOC.read_text().replace("action: receive", "action: listen", 1))
    assert any("action" in e for e in parse(broken)["errors"])
