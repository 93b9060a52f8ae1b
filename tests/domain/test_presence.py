"""Presence rules (pure): lease arithmetic, the publication, who sees whom."""

from __future__ import annotations

import msgspec
import pytest

from app.domain import presence
from app.domain.presence import BadPresence, Present
from app.domain.visibility import Viewer

MANAGER = Viewer("A1", None, True)
AGENT = Viewer("A1", "E1", False)
NOBODY = Viewer("A1", None, False)  # a user without an endpoint


def test_a_lease_renewed_now_runs_out_lease_seconds_later_in_whole_milliseconds() -> None:
    assert presence.expiry_ms(1000.0001, 10) == 1_010_001  # rounded up: never shorter than the lease
    assert presence.now_ms(1000.0009) == 1_000_000  # rounded down: never sweeps early
    assert presence.expiry_ms(1000.0, 10) > presence.now_ms(1009.999)
    assert presence.expiry_ms(1000.0, 10) <= presence.now_ms(1010.0)


def test_the_leave_bound_is_the_lease_then_one_sweep_interval() -> None:
    assert presence.leave_bound(10, 2) == 12


def test_a_publication_round_trips_from_the_scripts_layout() -> None:
    entry = presence.entry_of("E1", "alice", "Alice", 1714557600.5)
    assert msgspec.json.decode(entry) == {"endpointId": "E1", "userId": "alice", "name": "Alice",
                                          "since": "2024-05-01T10:00:00.500Z"}
    event = presence.parse_publication(b"presence\n7\nleave\n" + entry)
    assert (event.version, event.kind, event.entry.endpoint_id, event.raw) == (7, "leave", "E1", entry)
    assert presence.is_publication(b"presence\n7\njoin\n" + entry)
    assert not presence.is_publication(b"9f86d081884c7d65\n3\n{}")  # a change: epoch first


@pytest.mark.parametrize("data", [b"presence\n", b"presence\nx\njoin\n{}", b"presence\n1\nwave\n{}",
                                  b"presence\n1\njoin\n{\"endpointId\":1}", b"presence\n1\njoin\nnot json"])
def test_a_malformed_publication_is_refused(data: bytes) -> None:
    with pytest.raises(BadPresence):
        presence.parse_publication(data)


def test_managers_see_every_endpoint_agents_their_own_and_nobody_else_nothing() -> None:
    entries = [Present("E2", "bob"), Present("E1", "alice")]
    assert [e.endpoint_id for e in presence.visible(MANAGER, entries)] == ["E1", "E2"]
    assert [e.endpoint_id for e in presence.visible(AGENT, entries)] == ["E1"]
    assert presence.visible(NOBODY, entries) == []


def test_the_live_list_form_drops_the_connection_count() -> None:
    counted = presence.decode_entry(presence.entry_of("E1", "alice", None, 0), connections=2)
    assert counted.connections == 2
    assert msgspec.json.decode(presence.encode_entry(counted)) == {
        "endpointId": "E1", "userId": "alice", "since": "1970-01-01T00:00:00.000Z"}
