"""The fan-out scenario's comparison with the raw ceiling: the steps both sides ran, the per-step
table, and the issue 14 target (ours at least 0.9x of raw's frames/s and frames per CPU second
at every step, and at the maximum)."""

from __future__ import annotations

from bench.scenarios.fanout import common_steps, raw_target, step_table

OURS, RAW, SIO = "service", "raw", "socket.io"


def _step(rate: float, frames: float, cpu: float) -> dict[str, float]:
    return {"rate": rate, "offered_frames_per_s": rate * 100, "frames_per_s": frames, "cpu_ms_per_1000": cpu,
            "p99": 2.0}


def _run(ours_steps: list[dict[str, float]], raw_steps: list[dict[str, float]]) -> tuple[
        dict[str, dict[str, float]], dict[str, list[dict[str, float]]]]:
    at_fixed = {OURS: _step(50, 5000, 10.0), RAW: _step(50, 5000, 9.5), SIO: _step(50, 5000, 30.0)}
    return at_fixed, {OURS: ours_steps, RAW: raw_steps, SIO: [_step(200, 20000, 25.0), _step(400, 30000, 25.0)]}


def test_steps_are_the_fixed_load_then_every_ramp_rate_both_ran() -> None:
    at_fixed, steps = _run([_step(200, 20000, 8.0), _step(400, 30000, 7.0)],
                           [_step(200, 20000, 7.5), _step(400, 40000, 6.5), _step(800, 60000, 6.0)])
    assert [label for label, _, _ in common_steps(50, at_fixed, steps, OURS, RAW)] == [
        "50 ev/s (fixed)", "200 ev/s", "400 ev/s"]


def test_the_table_has_a_row_per_common_step_and_a_dash_where_socketio_had_stopped() -> None:
    at_fixed, steps = _run([_step(200, 20000, 8.0), _step(400, 30000, 7.0), _step(800, 40000, 7.0)],
                           [_step(200, 20000, 8.0), _step(400, 40000, 3.5), _step(800, 80000, 3.5)])
    table = step_table(50, at_fixed, steps, OURS, RAW, SIO)
    assert [row[0] for row in table.rows] == ["50 ev/s (fixed)", "200 ev/s", "400 ev/s", "800 ev/s"]
    assert table.rows[2][5] == "0.75x" and table.rows[2][9] == "2.00x"  # frames/s, CPU: ours ÷ raw
    assert table.rows[3][4] == "—" and table.rows[3][8] == "—"  # socket.io stopped at 400
    assert len({len(row) for row in table.rows} | {len(table.headers)}) == 1


def test_met_when_every_step_and_the_maximum_are_within_a_tenth_of_raw() -> None:
    at_fixed, steps = _run([_step(200, 20000, 8.0), _step(400, 38000, 7.0)],
                           [_step(200, 20000, 7.5), _step(400, 40000, 6.5)])
    target = raw_target(50, at_fixed, steps, OURS, RAW, raw_fell_behind=True)
    assert target.met is True
    assert "max frames/s 0.95x of raw (38,000 vs 40,000)" in target.detail
    assert "ceiling was not found" not in target.detail


def test_missed_on_cpu_per_frame_at_one_step() -> None:
    at_fixed, steps = _run([_step(200, 20000, 9.0)], [_step(200, 20000, 7.5)])  # 1.2x raw's CPU
    target = raw_target(50, at_fixed, steps, OURS, RAW, raw_fell_behind=True)
    assert target.met is False
    assert "200 ev/s 1.20x" in target.detail


def test_missed_on_the_maximum_even_if_each_common_step_is_close() -> None:
    # Ours fell behind at 400 (and stopped); raw went on to 80,000 frames/s.
    at_fixed, steps = _run([_step(200, 20000, 7.5), _step(400, 36500, 7.0)],
                           [_step(200, 20000, 7.5), _step(400, 40000, 6.5), _step(800, 80000, 6.5)])
    target = raw_target(50, at_fixed, steps, OURS, RAW, raw_fell_behind=False)
    assert target.met is False
    assert "max frames/s 0.46x of raw" in target.detail
    assert target.detail.endswith("raw never fell behind, so its ceiling was not found")
