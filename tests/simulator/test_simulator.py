"""The simulator: its flows are what Twilio sends, signed as Twilio signs, and
they drive a real service through every call to its end; the CLI and demo work."""

from __future__ import annotations

import asyncio
import datetime
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import httpx
import msgspec
import pytest
import redis
from twilio.request_validator import RequestValidator

from app.storage import keys
from app.config import Settings
from app.auth.demo_users import demo_identity
from app.simulator.cast import DEMO_CAST, build_cast
from app.simulator.flows import FLOWS, Call, Callback, PlatformEvent, build_call
from app.simulator.runner import Plan, Simulator
from app.simulator.sender import Sender
from app.twilio.callbacks import parse
from tests.support.factories import token
from tests.support.processes import ROOT, ServiceProcess, free_port, wait_until

PUBLIC_URL = "http://testserver"  # config/test.toml: what the service checks signatures against


def calls(letter: str, seeds: range = range(12)) -> Iterator[Call]:
    account = DEMO_CAST.demo
    for seed in seeds:
        yield build_call(letter, account, f"t-{letter}-{seed}", account.agents[:2], DEMO_CAST.customers[seed],
                         random.Random(seed))


@pytest.mark.parametrize("letter", list(FLOWS))
def test_every_flow_is_what_the_service_parses_in_firing_order(letter: str) -> None:
    for call in calls(letter):
        assert [s.at for s in call.steps] == sorted(s.at for s in call.steps)
        assert isinstance(call.steps[0].action, PlatformEvent) and call.steps[0].at == 0
        sequences: dict[str, list[int]] = {}
        for step in call.steps:
            if isinstance(step.action, Callback):
                kind = step.action.path.rsplit("/", 1)[1]
                form = [*step.action.params.items(), ("Timestamp", "Wed, 01 May 2024 10:00:00 +0000")]
                parsed = parse(kind, urlencode(step.action.query), form)
                key = step.action.params.get("ConferenceSid") or parsed.call_sid  # type: ignore[union-attr]
                sequences.setdefault(key, []).append(int(step.action.params["SequenceNumber"]))
        for key, seqs in sequences.items():  # each leg (and conference) numbers its callbacks in order
            start = 1 if key.startswith("CF") else 0
            assert seqs == list(range(start, start + len(seqs))), (call.flow, key, seqs)


def test_callbacks_are_signed_as_twilio_signs_them() -> None:
    call = next(calls("e"))
    sender = Sender("http://unused", public_url=PUBLIC_URL + "/", twilio_token="tok-123", events_key="k")
    validator = RequestValidator("tok-123")  # Twilio's own library, not our signature code
    for step in call.steps:
        if isinstance(step.action, Callback):
            tail, body, headers = sender.signed(step.action, now=datetime.datetime.now(datetime.UTC))
            params = dict(httpx.QueryParams(body.decode()))
            assert validator.validate(PUBLIC_URL + tail, params, headers["X-Twilio-Signature"])
            assert "Timestamp" in params and params["Timestamp"].endswith("+0000")


def test_the_cast_is_seeded_and_its_first_account_is_the_demo_one() -> None:
    assert build_cast(seed=7) == build_cast(seed=7)
    assert DEMO_CAST.demo.account_id == "acme" and DEMO_CAST.demo.agents[0].name == "Alice"
    demo = DEMO_CAST.demo
    for person, manager in ((demo.agents[0], False), (demo.manager, True)):
        who = demo_identity(manager)
        assert (who["account_id"], who["sub"], who["endpoint_id"], who["name"]) == (
            demo.account_id, person.user_id, person.endpoint_id, person.name)
    sids = {a.twilio_sid for a in build_cast(accounts=8).accounts}
    assert len(sids) == 8 and all(s.startswith("AC") and len(s) == 34 for s in sids)


@pytest.fixture
def service(clean_redis: str) -> Iterator[ServiceProcess]:
    proc = ServiceProcess(clean_redis)
    yield proc
    proc.stop()


def stored(redis_url: str, account: str, session: str) -> dict[str, Any]:
    client = redis.Redis.from_url(redis_url)
    try:
        raw = client.hget(keys.session(account, session), "info")
    finally:
        client.close()
    assert raw is not None, f"session {session} was never stored"
    return msgspec.json.decode(raw)  # type: ignore[no-any-return]


def sender_for(url: str, settings: Settings) -> Sender:
    return Sender(url, public_url=PUBLIC_URL, twilio_token=settings.twilio_auth_token,
                  events_key=settings.events_api_key)


async def play_all(url: str, settings: Settings, plays: list[Call]) -> None:
    sender = sender_for(url, settings)
    for call in plays:
        for step in call.steps:
            await sender.send(call, step.action)


def test_every_flow_takes_a_session_from_start_to_its_end(service: ServiceProcess, clean_redis: str,
                                                          settings: Settings) -> None:
    plays = [call for letter in FLOWS for call in calls(letter, range(6))]
    asyncio.run(play_all(service.url, settings, plays))
    for call in plays:
        session = stored(clean_redis, call.account.account_id, call.session_id)
        assert session["ended"] is True and session["callState"] == "Disconnected", (call.flow, session)
        answered = any("in-progress" in (line.get("message") or "") for line in session.get("log", []))
        if call.flow in ("inbound-answered", "conference-hold", "warm-transfer") or (call.flow == "queued" and answered):
            assert session["wasMissed"] is False and session["answeredByName"] in {a.name for a in call.agents}
        if call.flow == "missed" or (call.flow == "queued" and not answered):
            assert session["wasMissed"] is True
        if call.flow == "outbound-busy":
            assert session["direction"] == "Outgoing" and session["outcome"] in ("busy", "failed")
    manager = token(settings, sub="m", account="acme", endpoint=None, roles=("User", "Manager"))
    active = httpx.get(service.url + "/sessions/active", headers={"Authorization": f"Bearer {manager}"})
    assert active.json() == {"sessions": []}


def test_a_run_shows_calls_live_then_ends_them_with_a_progress_line(service: ServiceProcess,
                                                                    settings: Settings) -> None:
    class Lines(list[str]):
        def write(self, text: str) -> None:
            self.append(text)

        def flush(self) -> None:
            pass

        def isatty(self) -> bool:
            return False

    out = Lines()
    manager = token(settings, sub="m", account="acme", endpoint=None, roles=("User", "Manager"))
    seen: list[int] = []

    async def watch() -> None:
        async with httpx.AsyncClient(base_url=service.url) as client:
            while True:
                r = await client.get("/sessions/active", headers={"Authorization": f"Bearer {manager}"})
                seen.append(len(r.json()["sessions"]))
                await asyncio.sleep(0.2)  # a sampler: how often it looks, not a wait for anything

    async def run() -> Any:
        watcher = asyncio.create_task(watch())
        try:
            plan = Plan(rate=8, speed=25, calls=16, seed=5)
            return await Simulator(sender_for(service.url, settings), DEMO_CAST, plan, out, progress_every=0.5).run()
        finally:
            watcher.cancel()

    progress = asyncio.run(run())
    assert progress.failed == 0 and progress.started == progress.finished == 16
    assert progress.callbacks > 50 and progress.events > 16
    assert max(seen) > 0  # calls were live...
    after = httpx.get(service.url + "/sessions/active", headers={"Authorization": f"Bearer {manager}"})
    assert after.json() == {"sessions": []}  # ...and then all ended
    assert "calls 16 started, 0 live, 16 ended" in out[-1] and "0 failed" in out[-1]


def test_cli_simulate_exits_cleanly_after_a_bounded_run(service: ServiceProcess) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "app", "simulate", "--url", service.url, "--public-url", PUBLIC_URL,
         "--calls", "6", "--rate", "10", "--speed", "40", "--seed", "3"],
        cwd=ROOT, env={**os.environ, "APP_ENV": "test"}, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "calls 6 started, 0 live, 6 ended" in done.stderr and "| 0 failed" in done.stderr


def test_cli_simulate_needs_a_twilio_token() -> None:
    done = subprocess.run([sys.executable, "-m", "app", "simulate", "--calls", "1"], cwd=ROOT,
                          env={**os.environ, "APP_ENV": "development", "TWILIO_AUTH_TOKEN": ""},
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2 and "--twilio-token" in done.stderr


def test_demo_settings_are_built_without_writing_the_environment() -> None:
    from app.simulator.demo import DEMO_TWILIO_TOKEN, demo_settings

    before = dict(os.environ)
    s = demo_settings("127.0.0.1", 9321, {"REDIS_URL": "redis://elsewhere:6379/0", "APP_ENV": "production",
                                          "TWILIO_AUTH_TOKEN": ""})
    assert dict(os.environ) == before
    assert (s.env, s.redis_url, s.port, s.twilio_auth_token) == ("development", "", 9321, DEMO_TWILIO_TOKEN)
    assert s.public_url == "http://127.0.0.1:9321"


def test_demo_prints_a_console_url_and_a_token_that_sees_live_calls_within_seconds() -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "APP_ENV", "TWILIO_AUTH_TOKEN")}
    proc = subprocess.Popen([sys.executable, "-m", "app", "demo", "--port", str(port)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        started = time.monotonic()
        lines: list[str] = []
        assert proc.stdout is not None
        while not any("token (" in line for line in lines[:-1]) and time.monotonic() - started < 30:
            lines.append(proc.stdout.readline())
        text = "".join(lines)
        url = f"http://127.0.0.1:{port}/#token="
        assert url in text, text
        demo_token = lines[-1].strip()
        assert httpx.get(f"http://127.0.0.1:{port}/").status_code == 200
        active: list[Any] = []

        def some_calls() -> bool:
            r = httpx.get(f"http://127.0.0.1:{port}/sessions/active", headers={"Authorization": f"Bearer {demo_token}"})
            active[:] = r.json()["sessions"]
            return bool(active)

        wait_until(some_calls, 60, "a live call in the demo")  # a generous deadline, not a timing claim
        assert all(s["accountId"] == "acme" for s in active)
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "| 0 failed" in err.splitlines()[-1], err


def test_the_simulator_needs_only_the_services_own_dependencies() -> None:
    # `pip install -e .` then `python -m app demo` must work: no test-only packages such as httpx.
    code = "import sys, app.composition, app.simulator.demo, app.__main__; print(sorted({'httpx', 'twilio'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout + done.stderr
