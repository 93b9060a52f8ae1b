"""The benchmark suite's quick mode runs end to end and every scenario reports numbers.

It checks that the suite works, not that the service is fast: sizes are tiny and phases last
well under a second. The test extra installs what it needs. It runs `--redis cluster`: every
scenario on one Redis node, then ingest, push and fan-out again on a real 3-master Redis
Cluster the bench starts itself (about 50 s more than the single-node pass alone)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ["ingest", "push", "fanout", "snapshot", "memory", "resume"]
CLUSTER_SCENARIOS = ["ingest", "push", "fanout"]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:  # type: ignore[type-arg]
    out = tmp_path_factory.mktemp("bench")
    proc = subprocess.run([sys.executable, "-m", "bench", "--quick", "--redis", "cluster", "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, f"bench --quick failed:\n{proc.stderr[-8000:]}"
    [doc] = out.glob("*.json")
    return json.loads(doc.read_text()), out


def test_every_scenario_ran_and_reported_numbers(quick_run: tuple[dict, Path]) -> None:  # type: ignore[type-arg]
    doc, _ = quick_run
    assert doc["errors"] == {}
    assert [s["key"] for s in doc["scenarios"] if s["redis"] == "single"] == SCENARIOS
    assert [s["key"] for s in doc["scenarios"] if s["redis"] == "cluster"] == CLUSTER_SCENARIOS
    for scenario in doc["scenarios"]:
        assert scenario["metrics"], scenario["key"]
        for m in scenario["metrics"]:
            for side in ("ours", "baseline"):
                assert isinstance(m[side], (int, float)), (scenario["key"], m["name"], side, m[side])
        assert scenario["latency_ms"], scenario["key"]


def test_targets_are_reported_not_asserted(quick_run: tuple[dict, Path]) -> None:  # type: ignore[type-arg]
    doc, _ = quick_run
    targets = [t for s in doc["scenarios"] for t in s["targets"]]
    assert len([t for s in doc["scenarios"] if s["redis"] == "single" for t in s["targets"]]) == 6
    assert len([t for s in doc["scenarios"] if s["redis"] == "cluster" for t in s["targets"]]) == 4
    assert all(t["met"] in (True, False, None) and t["detail"] for t in targets)


def test_results_carry_machine_facts_a_table_and_a_chart(quick_run: tuple[dict, Path]) -> None:  # type: ignore[type-arg]
    doc, out = quick_run
    machine = doc["machine"]
    assert machine["cores"] >= 1 and machine["python"]
    assert machine["packages"]["starlette"] and machine["packages"]["python-socketio"]
    md = (out / f"{doc['stamp']}.md").read_text()
    assert "| metric | ours | baseline | ratio |" in md
    assert (out / doc["chart"]).stat().st_size > 1000


def test_cluster_and_single_node_side_by_side(quick_run: tuple[dict, Path]) -> None:  # type: ignore[type-arg]
    doc, out = quick_run
    md = (out / f"{doc['stamp']}.md").read_text()
    assert "| metric | one node: ours | baseline | ratio | cluster: ours | baseline | ratio |" in md
    ingest = {s["redis"]: s for s in doc["scenarios"] if s["key"] == "ingest"}
    for kind in ("single", "cluster"):
        metrics = {m["name"]: m for m in ingest[kind]["metrics"]}
        # The service does several commands per callback, the ceiling one SET, on either Redis.
        assert metrics["Redis commands per callback"]["ours"] > 1
        assert 0.9 <= metrics["Redis commands per callback"]["baseline"] <= 1.2
        assert set(ingest[kind]["raw"]["scaling"]) == {"1", "2"}
        assert any(n.startswith("scaling 1 → 2 processes") for n in metrics)


def test_servers_side_by_side(tmp_path: Path) -> None:
    """`--server uvicorn,granian`: the server scenarios again with the service under granian, in one
    table per scenario; a scenario outside them runs under the first server only."""
    proc = subprocess.run([sys.executable, "-m", "bench", "--quick", "--only", "snapshot,memory,resume",
                           "--server", "uvicorn,granian", "--out", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, f"bench --server failed:\n{proc.stderr[-8000:]}"
    [path] = tmp_path.glob("*.json")
    doc = json.loads(path.read_text())
    assert doc["errors"] == {} and doc["servers"]["order"] == ["uvicorn", "granian"]
    ran = [(s["key"], s["server"]) for s in doc["scenarios"]]
    assert ran == [("snapshot", "uvicorn"), ("memory", "uvicorn"), ("resume", "uvicorn"),
                   ("snapshot", "granian"), ("memory", "granian")]
    md = (tmp_path / f"{doc['stamp']}.md").read_text()
    assert "## 5. Memory per idle socket — uvicorn and granian" in md
    assert "| metric | uvicorn: ours | baseline | ratio | granian: ours | baseline | ratio | granian ÷ uvicorn (ours) |" in md
