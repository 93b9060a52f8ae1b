"""Verified state in a real headless Chromium against a real server process, on every
transport: a page script corrupts the live client's state (it changes one of the map's
session objects in place); the next state digest the server sends finds it, the
`mismatch` event fires, and the client heals with a `reset` to exactly what
`GET /sessions/active` says.

Two kinds of digest interval: a server that pings every second and puts a digest on no
patch in practice (LIVE_DIGEST_EVERY=1000) finds it with the next ping (long-poll: the next
idle poll), with no change made at all; a server that never pings in the test's time and
puts a digest on every 4th patch finds it by the 4th patch after the corruption at the
latest (long-poll: `pollDigestEvery: 4`)."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page

from app.config import Settings
from tests.support.factories import event, token
from tests.support.processes import ServiceProcess
from tests.static.test_browser_client import post, rest, until

pytest_plugins = ["tests.support.browser"]
ACCOUNT = "A1"
EVERY = 4
BY_PING = {"LIVE_PING_INTERVAL": "1", "LIVE_DIGEST_EVERY": "1000"}
BY_PATCHES = {"LIVE_PING_INTERVAL": "600", "LIVE_DIGEST_EVERY": str(EVERY)}

START = """async ({ base, token, transport, options }) => {
  const { SessionsClient } = await import('/static/sessions-client.js');
  const client = new SessionsClient({ url: base, token, transports: [transport], backoffBaseMs: 100,
                                      backoffMaxMs: 500, pollWaitSeconds: 1, ...options });
  const mismatches = [];
  const statuses = [];
  client.on('mismatch', (m) => mismatches.push(m));
  client.on('status', (s) => statuses.push({ state: s.state, how: s.how ?? null }));
  window.probe = { client, mismatches, statuses };
  await client.connect();
}"""

READ = """() => { const p = window.probe; return JSON.stringify({
  sessions: Object.fromEntries(p.client.sessions), stats: p.client.stats, mismatches: p.mismatches,
  statuses: p.statuses, state: p.client.state, position: p.client.positionText }); }"""

# What a careless page script might do: write into a session object of the map, in place.
CORRUPT = """() => { const s = window.probe.client.sessions.get('S1'); s.displayName = 'tampered'; }"""


def read(page: Page) -> dict[str, Any]:
    return json.loads(page.evaluate(READ))  # type: ignore[no-any-return]


def probe_caught_up(page: Page, position: str, sessions: dict[str, Any]) -> bool:
    got = read(page)
    return got["state"] == "live" and got["position"] == position and got["sessions"] == sessions


def upsert(n: int, sid: str, name: str) -> dict[str, Any]:
    return event("session.upsert", ACCOUNT, sid, event_id=f"dg-{sid}-{name}-{n}",
                 at=f"2024-05-01T10:{n // 60 % 60:02d}:{n % 60:02d}Z",
                 session={"endpointId": "E1", "displayName": name})


@pytest.fixture
def server(request: pytest.FixtureRequest, clean_redis: str) -> Iterator[ServiceProcess]:
    proc = ServiceProcess(clean_redis, request.param)
    yield proc
    proc.stop("kill")


def start(page: Page, server: ServiceProcess, settings: Settings, transport: str,
          **options: Any) -> str:
    manager = token(settings, sub="m", account=ACCOUNT, endpoint=None, roles=("User", "Manager"))
    post(server.url, [upsert(0, "S1", "one"), upsert(1, "S2", "two")], settings)
    page.goto(server.url + "/")
    page.evaluate(START, {"base": server.url, "token": manager, "transport": transport, "options": options})
    position, expected = rest(server.url, manager)
    until(functools.partial(probe_caught_up, page, position, expected), 20, "the client to be live")
    return manager


def healed(page: Page, server: ServiceProcess, manager: str) -> dict[str, Any]:
    """Waits until `mismatch` fired and the state is REST's again; what the client says then."""
    until(lambda: read(page)["mismatches"], 30, "the corruption to be found")
    position, expected = rest(server.url, manager)
    until(functools.partial(probe_caught_up, page, position, expected), 30, "the state to heal")
    got = read(page)
    assert got["sessions"]["S1"]["displayName"] == "one"
    assert got["stats"]["mismatches"] == 1 and got["stats"]["resets"] == 1, got
    [mismatch] = got["mismatches"]
    assert mismatch["healing"] is True and mismatch["expected"] != mismatch["actual"]
    assert {"state": "live", "how": "reset"} in got["statuses"]
    return got


TRANSPORTS = ["websocket", "sse", "poll"]


@pytest.mark.parametrize("server", [BY_PING], indirect=True)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_corrupted_state_is_found_by_the_next_ping_and_healed(page: Page, server: ServiceProcess,
                                                                 settings: Settings, transport: str) -> None:
    manager = start(page, server, settings, transport)
    before = read(page)
    page.evaluate(CORRUPT)
    got = healed(page, server, manager)  # no change was made: a ping (an idle poll) found it
    assert got["mismatches"][0]["position"] == before["position"]
    assert got["stats"]["verified"] >= 1  # the snapshot's digest, and each ping's before the corruption


@pytest.mark.parametrize("server", [BY_PATCHES], indirect=True)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_corrupted_state_is_found_within_one_digest_interval_of_patches(
        page: Page, server: ServiceProcess, settings: Settings, transport: str) -> None:
    manager = start(page, server, settings, transport, idleTimeoutMs=600_000, pollDigestEvery=EVERY)
    # Some patches first, so the corruption lands anywhere in the interval, not at its start.
    for n in range(2, 4):
        post(server.url, [upsert(n, "S2", f"warm-{n}")], settings)
    position, expected = rest(server.url, manager)
    until(functools.partial(probe_caught_up, page, position, expected), 20, "the warm-up patches")
    page.evaluate(CORRUPT)
    cursors = []
    for n in range(10, 10 + EVERY):  # changes to the other session: nothing rewrites S1
        post(server.url, [upsert(n, "S2", f"v{n}")], settings)
        cursors.append(int(rest(server.url, manager)[0].rsplit(":", 1)[1]))
    got = healed(page, server, manager)
    found_at = int(got["mismatches"][0]["position"].rsplit(":", 1)[1])
    assert cursors[0] <= found_at <= cursors[-1]  # by the EVERY-th patch after the corruption at the latest


def test_a_long_poll_answers_a_digest_when_asked(server_any: ServiceProcess, settings: Settings) -> None:
    """`digest=1` on a resumed long-poll: the digest at the response's position; without it,
    none (no view read); a bad value is a 400 in the API's error shape."""
    manager = token(settings, sub="m", account=ACCOUNT, endpoint=None, roles=("User", "Manager"))
    post(server_any.url, [upsert(0, "S1", "one")], settings)
    position, expected = rest(server_any.url, manager)
    headers = {"Authorization": f"Bearer {manager}"}
    from app.domain import digest

    asked = httpx.get(f"{server_any.url}/sessions/changes", params={"since": position, "digest": "1"},
                      headers=headers, timeout=10).json()
    assert asked["digest"] == digest.text(digest.of_state(expected)) and asked["messages"] == []
    plain = httpx.get(f"{server_any.url}/sessions/changes", params={"since": position}, headers=headers, timeout=10)
    assert "digest" not in plain.json()
    snapshot = httpx.get(f"{server_any.url}/sessions/changes", headers=headers, timeout=10).json()
    assert snapshot["digest"] == snapshot["messages"][0]["digest"] == asked["digest"]
    bad = httpx.get(f"{server_any.url}/sessions/changes", params={"since": position, "digest": "yes"},
                    headers=headers, timeout=10)
    assert bad.status_code == 400 and "digest" in bad.json()["responseStatus"]["message"]


@pytest.fixture
def server_any(clean_redis: str) -> Iterator[ServiceProcess]:
    proc = ServiceProcess(clean_redis, BY_PATCHES)
    yield proc
    proc.stop("kill")
