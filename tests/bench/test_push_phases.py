"""The push scenario's phases: a rate given twice is a phase of its own, with its own event ids
(the service deduplicates event ids, so a repeated id would deliver nothing)."""

from __future__ import annotations

from bench.scenarios.push import phase_labels, phase_tag


def test_a_repeated_rate_gets_its_own_label_and_its_own_event_ids() -> None:
    rates = (100, 1000, 100)
    assert phase_labels(rates) == ["100 ev/s", "1000 ev/s", "100 ev/s (#2)"]
    tags = {phase_tag(5000, i, rate, kind) for i, rate in enumerate(rates) for kind in ("callstate", "socketio")}
    assert len(tags) == 2 * len(rates)


def test_tags_differ_by_socket_count() -> None:
    assert phase_tag(100, 0, 100, "callstate") != phase_tag(1000, 0, 100, "callstate")
