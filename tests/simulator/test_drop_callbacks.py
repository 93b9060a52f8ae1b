"""`--drop-callbacks`: the simulator leaves out a share of Twilio's callbacks, as if lost,
and the calls they would have ended stay stuck until the sweep finds them (marked stale
here: no Twilio REST API in tests, as in the demo)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from app.config import Settings
from app.simulator.cast import DEMO_CAST
from app.simulator.flows import Callback
from app.simulator.runner import Plan, Simulator
from app.simulator.sender import Sender
from tests.support.factories import token
from tests.support.processes import ROOT, ServiceProcess

PUBLIC_URL = "http://testserver"


def simulator(plan: Plan) -> Simulator:
    return Simulator(Sender("http://unused", public_url=PUBLIC_URL, twilio_token="t", events_key="k"), DEMO_CAST,
                     plan, out=None)


def test_the_share_dropped_is_of_callbacks_only_and_a_seeded_run_drops_the_same() -> None:
    def picks(plan: Plan) -> list[frozenset[int]]:
        sim = simulator(plan)
        out = []
        for _ in range(40):
            call = sim.next_call()
            out.append(sim.dropping(call))
            assert all(isinstance(call.steps[i].action, Callback) for i in sim.dropping(call))
        return out

    plan = Plan(seed=11, drop_callbacks=0.2)
    assert picks(plan) == picks(plan)
    assert sum(map(len, picks(plan))) > 0
    assert not any(picks(Plan(seed=11)))
    sim = simulator(Plan(seed=11, drop_callbacks=1.0))
    call = sim.next_call()
    assert sim.dropping(call) == {i for i, s in enumerate(call.steps) if isinstance(s.action, Callback)}
    with pytest.raises(ValueError, match="from 0 to 1"):
        simulator(Plan(drop_callbacks=1.5))


def test_cli_refuses_a_share_outside_0_to_1() -> None:
    done = subprocess.run([sys.executable, "-m", "app", "simulate", "--drop-callbacks", "1.5", "--calls", "1"],
                          cwd=ROOT, env={**os.environ, "APP_ENV": "test"}, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 2 and "a share from 0 to 1" in done.stderr


@pytest.fixture
def sweeping(clean_redis: str) -> Iterator[ServiceProcess]:
    """The service sweeping fast, with no Twilio REST API (as `python -m app demo`)."""
    env = {"SWEEP_INTERVAL_SECONDS": "0.2", "SWEEP_LEASE_SECONDS": "5", "SWEEP_RINGING_AFTER_SECONDS": "0.5",
           "SWEEP_IN_PROGRESS_MAX_SECONDS": "0.5", "SWEEP_RECHECK_SECONDS": "1"}
    proc = ServiceProcess(clean_redis, env)
    yield proc
    proc.stop()


def active(proc: ServiceProcess, settings: Settings) -> list[dict[str, Any]]:
    manager = token(settings, sub="m", account="acme", endpoint=None, roles=("User", "Manager"))
    sessions: list[dict[str, Any]] = httpx.get(proc.url + "/sessions/active",
                                               headers={"Authorization": f"Bearer {manager}"}).json()["sessions"]
    return sessions


def stale(session: dict[str, Any]) -> bool:
    log = session.get("log") or []
    return bool(log) and str(log[-1].get("message", "")).startswith("stale: ")


def test_calls_whose_callbacks_were_dropped_are_found_by_the_sweep(sweeping: ServiceProcess,
                                                                   settings: Settings) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "app", "simulate", "--url", sweeping.url, "--public-url", PUBLIC_URL, "--accounts", "1",
         "--calls", "10", "--rate", "10", "--speed", "40", "--seed", "3", "--drop-callbacks", "0.5"],
        cwd=ROOT, env={**os.environ, "APP_ENV": "test"}, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "callbacks dropped" in done.stderr and "| 0 failed" in done.stderr
    stuck = active(sweeping, settings)
    assert stuck  # calls that never heard their end
    deadline = time.monotonic() + 30  # bounds a failing run only
    while not all(stale(s) for s in active(sweeping, settings)):
        assert time.monotonic() < deadline, [s["log"][-1] for s in active(sweeping, settings)]
        time.sleep(0.1)
    counts = httpx.get(sweeping.url + "/sessions/sweep",
                       headers={"Authorization": f"Bearer {token(settings, account='acme')}"}).json()
    assert counts["stale"] >= len(active(sweeping, settings)) > 0
