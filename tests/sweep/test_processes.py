"""Two real service processes sweep the same Redis at once, against the stand-in for
Twilio's REST API: the stuck call is fetched once (one sweeper per account), the
session ends with what Twilio said, and both processes report the same counts."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator

import httpx
import msgspec
import pytest

from app.config import Settings
from app.redis_io import connect
from app.storage.session_store import SessionStore
from app.twilio.ingest import Ingest, letter_for
from tests.support.factories import token
from tests.support.processes import ServiceProcess
from tests.support.twilio_api import TwilioApi, call_resource
from tests.sweep.calls import ACCOUNT_SID, AGENT, CUSTOMER, T0, answered

TOKEN = "stand-in-auth-token-2"


@pytest.fixture
def twilio_api() -> Iterator[TwilioApi]:
    api = TwilioApi({ACCOUNT_SID: TOKEN})
    yield api
    api.stop()


@pytest.fixture
async def stuck(clean_redis: str, twilio_api: TwilioApi, settings: Settings) -> None:
    """A call answered in 2024 and never heard of since, all of its callbacks stored before any
    sweeper runs (a pass between two of them would find a session with fewer open legs);
    Twilio's stand-in knows how both legs ended."""
    end = T0.replace(minute=7)
    for sid in (CUSTOMER, AGENT):
        twilio_api.know(call_resource(ACCOUNT_SID, sid, "completed", created=T0, start=T0, end=end, duration=420))
    s = msgspec.structs.replace(settings, redis_url=clean_redis)
    store = SessionStore(connect(s), s)
    try:
        ingest = Ingest(store, s)
        for query, form, cb in answered():
            assert await ingest.handle(letter_for("status", query, form, cb), cb) == "applied"
    finally:
        await store.redis.aclose()


@pytest.fixture
def sweepers(stuck: None, clean_redis: str, twilio_api: TwilioApi) -> Iterator[list[ServiceProcess]]:
    env = {"SWEEP_INTERVAL_SECONDS": "0.2", "SWEEP_LEASE_SECONDS": "5", "TWILIO_API_URL": twilio_api.url,
           "TWILIO_AUTH_TOKENS": json.dumps({ACCOUNT_SID: TOKEN})}
    procs: list[ServiceProcess] = []
    try:
        for _ in range(2):
            procs.append(ServiceProcess(clean_redis, env))
        yield procs
    finally:
        for proc in procs:
            proc.stop()


def counter(proc: ServiceProcess, name: str) -> float:
    text = httpx.get(proc.url + "/metrics").text
    match = re.search(rf"^callstate_{name}_total (\S+)$", text, re.M)
    assert match, name
    return float(match.group(1))


def eventually(check, what: str, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    """Wait for `check()` to hold (polling; the deadline only bounds a failing run)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s")
        time.sleep(0.05)


async def test_two_processes_fetch_a_stuck_call_once_and_agree(
        sweepers: list[ServiceProcess], twilio_api: TwilioApi, clean_redis: str, settings: Settings) -> None:
    eventually(lambda: all(counter(p, "sweep_passes") >= 1 for p in sweepers), "both processes sweeping")
    user = {"Authorization": f"Bearer {token(settings)}"}
    eventually(lambda: httpx.get(sweepers[0].url + "/sessions/active", headers=user).json()["sessions"] == [],
               "the session ended by the sweep")
    s = msgspec.structs.replace(settings, redis_url=clean_redis)
    store = SessionStore(connect(s), s)
    try:
        record = await store.get("A1", "S1")
    finally:
        await store.redis.aclose()
    assert record is not None and record.info.outcome == "completed"
    assert dict(twilio_api.fetches) == {CUSTOMER: 1, AGENT: 1}
    assert sum(counter(p, "sweep_swept") for p in sweepers) == 1
    eventually(lambda: httpx.get(sweepers[0].url + "/sessions/sweep", headers=user).json()["lastPassAt"] is not None,
               "the pass recorded")
    shown = [httpx.get(p.url + "/sessions/sweep", headers=user).json() for p in sweepers]
    assert shown[0]["asked"] == shown[1]["asked"] == 1
    assert shown[0]["resolved"] == shown[1]["resolved"] == {"completed": 2}
