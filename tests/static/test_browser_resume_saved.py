"""sessions-client.js started from a saved state after a real page reload, in
headless Chromium against a real server process, on every transport: the page
saves `client.saveState()` in sessionStorage on `pagehide`, the reloaded page
gives it back as `initialState`, and the first connection resumes (`resumed`
and the missed patches, no snapshot) while the change log still reaches back;
once the log was trimmed it gets a reset snapshot instead. A state saved for
another user's view is not resumed.

The server runs with LIVE_FEED_LINGER_SECONDS=0: a feed that lingers after its last
subscriber serves a resume from what it relayed, with no read of the log (app.live.feed),
so a trimmed log would not show; here the page's reload ends the account's feed, and every
resume reads the log, the path these tests are about (tests/live/test_resume_memory.py has
the lingering one)."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis
from playwright.sync_api import Page, WebSocket

from app.storage import keys
from app.config import Settings
from tests.support.factories import token
from tests.support.processes import ServiceProcess
from tests.support.streams import ACCOUNT, SERVER_IDS, events, history

pytest_plugins = ["tests.support.browser"]  # chromium, browser, page: one browser for every module
KEY = "callstate-test-saved"

START = """async ({ token, transport, key }) => {
  const { SessionsClient } = await import('/static/sessions-client.js');
  const saved = JSON.parse(sessionStorage.getItem(key) ?? 'null');
  const client = new SessionsClient({ token, transports: [transport], initialState: saved,
                                      backoffBaseMs: 200, backoffMaxMs: 1000 });
  addEventListener('pagehide', () => sessionStorage.setItem(key, JSON.stringify(client.saveState())));
  const mirror = new Map();
  const events = [];
  const statuses = [];
  client.on('added', ({ id, session }) => { mirror.set(id, session); events.push('added'); });
  client.on('changed', ({ id, session }) => { mirror.set(id, session); events.push('changed'); });
  client.on('removed', ({ id }) => { mirror.delete(id); events.push('removed'); });
  client.on('reset', () => events.push('reset'));
  client.on('status', (s) => statuses.push({ state: s.state, how: s.how ?? null, replayed: s.replayed ?? null }));
  window.t = { client, mirror, events, statuses };
  const live = client.connect();
  const drawnAtOnce = mirror.size; // the saved sessions, as `added`, before any connection
  await live;
  return { saved: saved?.position ?? null, savedCount: saved ? Object.keys(saved.sessions).length : 0, drawnAtOnce };
}"""

READ = """() => JSON.stringify({ sessions: Object.fromEntries(window.t.client.sessions),
  mirror: Object.fromEntries(window.t.mirror), position: window.t.client.positionText, state: window.t.client.state,
  stats: window.t.client.stats, statuses: window.t.statuses, events: window.t.events })"""


@pytest.fixture
def server(clean_redis: str) -> Iterator[ServiceProcess]:
    proc = ServiceProcess(clean_redis, {"LIVE_FEED_LINGER_SECONDS": "0"})
    yield proc
    proc.stop("kill")


@pytest.fixture
def frames(page: Page) -> list[dict[str, Any]]:
    """Every WebSocket message the page receives, from the wire (Playwright's view)."""
    seen: list[dict[str, Any]] = []

    def watch(ws: WebSocket) -> None:
        ws.on("framereceived", lambda payload: seen.append(json.loads(payload)))
        ws.on("framesent", lambda payload: seen.append({"sent": json.loads(payload)}))

    page.on("websocket", watch)
    return seen


def post(base: str, batch: list[dict[str, Any]], settings: Settings) -> None:
    r = httpx.post(base + "/events", json={"events": batch}, timeout=10,
                   headers={"Authorization": f"Bearer {settings.events_api_key}"})
    assert r.status_code == 200, r.text


def rest(base: str, tok: str) -> tuple[str, dict[str, Any]]:
    """GET /sessions/active: (the position it is current at, {id: session})."""
    r = httpx.get(base + "/sessions/active", headers={"Authorization": f"Bearer {tok}"}, timeout=10)
    return r.headers["etag"].strip('"'), {s["id"]: s for s in r.json()["sessions"]}


def read(page: Page) -> dict[str, Any]:
    return json.loads(page.evaluate(READ))  # type: ignore[no-any-return]


def caught_up(page: Page, base: str, tok: str) -> dict[str, Any]:
    """Wait until the page's client is live at the service's current position; what it holds."""
    position, expected = rest(base, tok)
    deadline = time.monotonic() + 30
    while True:
        got = read(page)
        if got["state"] == "live" and got["position"] == position and got["sessions"] == expected:
            assert got["mirror"] == got["sessions"]  # the events alone rebuild the map
            return got
        assert time.monotonic() < deadline, f"timed out catching up to {position}: {got}"
        time.sleep(0.1)


def no_connection(base: str, manager: str) -> None:
    """Wait until the server holds no connection of the account (so its feed has stopped)."""
    deadline = time.monotonic() + 30
    while True:
        r = httpx.get(base + "/live/connections", headers={"Authorization": f"Bearer {manager}"}, timeout=10)
        assert r.status_code == 200, r.text
        if not r.json()["connections"]:
            return
        assert time.monotonic() < deadline, f"a connection stays open: {r.text}"
        time.sleep(0.05)


def lives(got: dict[str, Any]) -> list[str]:
    return [s["how"] for s in got["statuses"] if s["state"] == "live"]


def chunks(seed: int, n: int) -> list[list[dict[str, Any]]]:
    stream = events(history(random.Random(seed), 12 * n, SERVER_IDS), prefix=f"saved-{seed}")
    return [stream[i * 12:(i + 1) * 12] for i in range(n)]


@pytest.mark.parametrize("transport", ["websocket", "sse", "poll"])
def test_a_reloaded_page_resumes_from_its_saved_state_or_resets_once_the_log_is_trimmed(
        page: Page, frames: list[dict[str, Any]], server: ServiceProcess, clean_redis: str, settings: Settings,
        transport: str) -> None:
    manager = token(settings, sub="m", account=ACCOUNT, endpoint=None, roles=("User", "Manager"))
    first, away, trimmed = chunks(7, 3)
    start = {"token": manager, "transport": transport, "key": KEY}
    post(server.url, first, settings)
    page.goto(server.url + "/")  # the service's own page, signed out: it leaves the connection to us
    assert page.evaluate(START, start)["saved"] is None
    before = caught_up(page, server.url, manager)
    assert lives(before) == ["snapshot"]

    # Reload: the page saves on `pagehide`; changes land while it is away.
    page.reload()
    post(server.url, away, settings)
    frames.clear()
    started = page.evaluate(START, start)
    assert started["saved"] == before["position"]
    assert started["drawnAtOnce"] == started["savedCount"] == len(before["sessions"]) > 0
    got = caught_up(page, server.url, manager)
    assert lives(got) == ["resumed"] and got["stats"]["resets"] == 0, got["statuses"]
    assert got["stats"]["replayed"] > 0 and got["stats"]["resumes"] == 1
    assert "reset" not in got["events"]
    if transport == "websocket":  # on the wire: the saved position went out, no snapshot came back
        assert frames[0] == {"sent": {"type": "auth", "token": manager, "since": before["position"]}}
        received = [f.get("type") for f in frames if "sent" not in f]
        assert "resumed" in received and "snapshot" not in received, received

    # Reload again, and the change log no longer reaches back (trimmed, as CHANGE_LOG_MAX_LEN trims it).
    page.reload()
    no_connection(server.url, manager)
    post(server.url, trimmed, settings)
    store = redis.Redis.from_url(clean_redis)
    assert store.xtrim(keys.changes(ACCOUNT), maxlen=0) > 0
    store.close()
    frames.clear()
    started = page.evaluate(START, start)
    assert started["saved"] == got["position"]
    reset = caught_up(page, server.url, manager)
    assert lives(reset) == ["reset"] and reset["stats"]["resets"] == 1 and reset["stats"]["resumes"] == 0
    assert "reset" in reset["events"]
    if transport == "websocket":
        snapshots = [f for f in frames if f.get("type") == "snapshot"]
        assert len(snapshots) == 1 and snapshots[0]["reset"] is True


def test_a_state_saved_for_another_user_is_not_resumed(page: Page, frames: list[dict[str, Any]],
                                                       server: ServiceProcess, settings: Settings) -> None:
    agent = token(settings, sub="u1", account=ACCOUNT, endpoint="E1")
    manager = token(settings, sub="m", account=ACCOUNT, endpoint=None, roles=("User", "Manager"))
    for batch in chunks(14, 2):
        post(server.url, batch, settings)
    page.goto(server.url + "/")
    page.evaluate(START, {"token": manager, "transport": "websocket", "key": KEY})
    saved = caught_up(page, server.url, manager)
    assert saved["sessions"] != rest(server.url, agent)[1]  # the two views differ
    page.reload()  # saved for the manager; the next sign-in on this tab is an agent
    frames.clear()
    started = page.evaluate(START, {"token": agent, "transport": "websocket", "key": KEY})
    assert started["saved"] == saved["position"]
    got = caught_up(page, server.url, agent)
    assert lives(got) == ["reset"] and got["stats"]["resumes"] == 0
    assert frames[0] == {"sent": {"type": "auth", "token": agent}}  # no `since`: the saved view is not theirs
    page.reload()  # and a token refreshed for the same view still resumes
    again = token(settings, sub="u1", account=ACCOUNT, endpoint="E1", ttl=7200)
    assert again != agent
    page.evaluate(START, {"token": again, "transport": "websocket", "key": KEY})
    assert lives(caught_up(page, server.url, again)) == ["resumed"]
