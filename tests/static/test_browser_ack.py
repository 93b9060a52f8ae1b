"""Acks (docs/protocol.md, `ack`) from sessions-client.js in a real headless Chromium.

First against a WebSocket peer of the test's own (the `websockets` library on a
thread): it plays the server's side of the protocol and records every frame the
page sends, so the acks themselves are counted, not guessed from timing. Then
against a real service process: the connection appears in `GET /live/connections`
with `acked` equal to the client's cursor, and the console's Connections panel
shows each connection's lag to a Manager and is absent for a plain User.

No assertion is on time. A pending ack is due within 100 ms (the client's
coalescing window), so `settle` first lets 250 ms pass on the page's own timers
(a later, longer timer fires after the ack's) and then does a ping/pong round
trip: every ack the page was going to send has arrived before the pong."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from app.config import Settings
from tests.support.factories import event, token
from tests.support.processes import ROOT, ServiceProcess

pytest_plugins = ["tests.support.browser"]  # chromium, browser, page: one browser for every module
STATIC = ROOT / "app" / "static"
HANG_MS = 30_000  # only bounds a hang
Frames = list[list[dict[str, Any]]]  # per connection, in order: what the page sent


class Peer:
    """The server's end of the page's WebSockets, owned by the test: it sends what the
    test says and records every frame the page sends, per connection."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.changed = threading.Condition()
        self.frames: Frames = []
        self.sockets: list[ServerConnection] = []
        async def listen() -> Server:
            return await serve(self._handler, "127.0.0.1", 0, process_request=self._http, close_timeout=1)
        self.server: Server = self._run(listen())
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/"

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(15)

    @staticmethod
    def _http(ws: ServerConnection, request: Request) -> Response | None:
        """A plain GET (not a WebSocket upgrade) is the page or a module of app/static, so the
        page's origin is the peer's own (Chromium refuses a public page's sockets to 127.0.0.1).
        `Connection: close`: a kept-alive connection would hold the peer's shutdown up."""
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return None
        path = request.path.split("?", 1)[0]
        if path.startswith("/static/") and (STATIC / path.removeprefix("/static/")).is_file():
            body, kind = (STATIC / path.removeprefix("/static/")).read_bytes(), "text/javascript"
        else:
            body, kind = b"<!doctype html><title>ack tests</title>", "text/html"
        return Response(200, "OK", Headers([("Content-Type", kind), ("Content-Length", str(len(body))),
                                                   ("Connection", "close")]), body)

    async def _handler(self, ws: ServerConnection) -> None:
        frames: list[dict[str, Any]] = []
        with self.changed:
            self.sockets.append(ws)
            self.frames.append(frames)
            self.changed.notify_all()
        async for text in ws:
            with self.changed:
                frames.append(json.loads(text))
                self.changed.notify_all()

    def wait(self, check: Callable[[Frames], bool], what: str) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: check(self.frames), HANG_MS / 1000), f"timed out waiting for {what}"

    def send(self, *messages: dict[str, Any]) -> None:
        """Send to the page's latest connection, one frame each, as fast as they go."""
        async def go() -> None:
            for message in messages:
                await self.sockets[-1].send(json.dumps(message))
        self._run(go())

    def close_socket(self, code: int, reason: str) -> None:
        self._run(self.sockets[-1].close(code, reason))

    def acks(self, conn: int = -1) -> list[dict[str, Any]]:
        with self.changed:
            return [f for f in self.frames[conn] if f["type"] == "ack"]

    def settle(self, page: Page) -> None:
        """Every ack the page will send for what it has applied so far has arrived (see the module's doc)."""
        page.evaluate("() => new Promise((resolve) => setTimeout(resolve, 250))")
        self.roundtrip()

    def roundtrip(self) -> None:
        """A ping answered: whatever the page sent before the pong has arrived."""
        with self.changed:
            pongs = sum(f["type"] == "pong" for f in self.frames[-1])
        self.send({"type": "ping"})
        self.wait(lambda frames: sum(f["type"] == "pong" for f in frames[-1]) > pongs, "the pong")

    def stop(self) -> None:
        self.server.close()
        self._run(self.server.wait_closed())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()  # its self-pipe (a socketpair) would otherwise leak into a later test's warnings


@pytest.fixture
def peer() -> Iterator[Peer]:
    fake = Peer()
    yield fake
    fake.stop()


@pytest.fixture
def blank(page: Page, peer: Peer) -> Page:
    page.goto(peer.url)
    return page


START = """async ({ url, options }) => {
  const { SessionsClient } = await import('/static/sessions-client.js');
  const client = new SessionsClient({ url, token: 'not.checked.here', transports: ['websocket'],
                                      backoffBaseMs: 50, backoffMaxMs: 100, ...options });
  window.client = client;
  client.connect().catch(() => {});
}"""

SESSION = {"id": "S1", "accountId": "A1", "callState": "Ringing", "n": 0}


def start(page: Page, peer: Peer, **options: Any) -> None:
    page.evaluate(START, {"url": peer.url, "options": options})
    peer.wait(lambda frames: bool(frames) and bool(frames[-1]), "the page's auth message")


def patch(cursor: int, n: int) -> dict[str, Any]:
    return {"type": "patch", "cursor": cursor, "ops": [{"op": "replace", "path": "/S1/n", "value": n}]}


def acked(peer: Peer, cursor: int, epoch: str = "E1") -> Callable[[Frames], bool]:
    return lambda frames: any(f == {"type": "ack", "cursor": cursor, "epoch": epoch} for f in frames[-1])


def test_acks_follow_each_applied_snapshot_and_patch_and_nothing_else(blank: Page, peer: Peer) -> None:
    start(blank, peer)
    assert peer.frames[0][0] == {"type": "auth", "token": "not.checked.here"}  # the first frame, before any ack
    peer.send({"type": "snapshot", "epoch": "E1", "cursor": 5, "sessions": {"S1": SESSION}})
    peer.wait(acked(peer, 5), "the snapshot's ack")
    peer.send(patch(7, 1))
    peer.wait(acked(peer, 7), "the patch's ack")
    peer.settle(blank)
    peer.send({"type": "ping", "cursor": 9})  # a position, but nothing applied: no ack
    peer.settle(blank)
    assert peer.acks() == [{"type": "ack", "cursor": 5, "epoch": "E1"}, {"type": "ack", "cursor": 7, "epoch": "E1"}]
    assert blank.evaluate("client.positionText") == "E1:9"
    peer.send(patch(12, 2))
    peer.wait(acked(peer, 12), "the ack after the ping")

    # A restart: the client resumes; `resumed` is not acked, the replayed patches are.
    peer.close_socket(1012, "restart")
    peer.wait(lambda frames: len(frames) == 2 and bool(frames[1]), "the second connection's auth")
    assert peer.frames[1][0] == {"type": "auth", "token": "not.checked.here", "since": "E1:12"}
    peer.send({"type": "resumed", "epoch": "E1", "cursor": 12, "replayed": 0})
    peer.settle(blank)
    assert peer.acks() == []
    peer.send({"type": "resumed", "epoch": "E1", "cursor": 12, "replayed": 2}, patch(14, 3), patch(15, 4))
    peer.wait(acked(peer, 15), "the ack of the last replayed patch")

    # A reset to another epoch mid-connection: the ack carries the new epoch.
    peer.send({"type": "snapshot", "epoch": "E2", "cursor": 3, "reset": True, "sessions": {"S1": SESSION}})
    peer.wait(acked(peer, 3, "E2"), "the reset snapshot's ack")
    peer.settle(blank)
    every = [f for conn in peer.frames for f in conn]
    assert {f["type"] for f in every} == {"auth", "ack", "pong"}
    assert all(set(f) == {"type", "cursor", "epoch"} for f in every if f["type"] == "ack")  # the server refuses others
    sent = {("E1", c) for c in (5, 7, 12, 14, 15)} | {("E2", 3)}
    assert all((f["epoch"], f["cursor"]) in sent for f in every if f["type"] == "ack")  # only positions applied
    assert blank.evaluate("client.stats.resets") == 1


def test_ack_false_sends_none(blank: Page, peer: Peer) -> None:
    start(blank, peer, ack=False)
    peer.send({"type": "snapshot", "epoch": "E1", "cursor": 5, "sessions": {"S1": SESSION}},
              *(patch(5 + i, i) for i in range(1, 6)))
    peer.settle(blank)
    assert blank.evaluate("client.positionText") == "E1:10"
    assert [f["type"] for f in peer.frames[0]] == ["auth", "pong"]  # all it sent: no ack


def test_a_burst_of_patches_is_acked_a_few_times_and_last_with_the_last_cursor(blank: Page, peer: Peer) -> None:
    start(blank, peer)
    peer.send({"type": "snapshot", "epoch": "E1", "cursor": 0, "sessions": {"S1": SESSION}})
    peer.wait(acked(peer, 0), "the snapshot's ack")
    peer.send(*(patch(i, i) for i in range(1, 51)))
    peer.wait(acked(peer, 50), "the ack of the last patch")
    peer.settle(blank)  # and nothing after it
    burst = [f["cursor"] for f in peer.acks()[1:]]
    assert burst[-1] == 50, burst
    assert 1 <= len(burst) <= 10, burst  # coalesced: 50 patches, a handful of acks
    assert burst == sorted(set(burst)), burst  # each newer than the last, none twice
    assert blank.evaluate("client.positionText") == "E1:50"
    assert blank.evaluate("client.sessions.get('S1').n") == 50


def test_acks_are_at_most_one_per_100_ms_of_the_pages_clock(blank: Page, peer: Peer) -> None:
    """The page's clock is Playwright's, paused: it moves only when the test says."""
    blank.clock.install()
    blank.clock.pause_at(1_900_000_000_000)
    start(blank, peer)
    at = "([cursor]) => window.client.positionText === `E1:${cursor}`"
    peer.send({"type": "snapshot", "epoch": "E1", "cursor": 0, "sessions": {"S1": SESSION}})
    blank.wait_for_function(at, arg=[0], polling=10, timeout=HANG_MS)
    blank.clock.run_for(0)  # the first ack of a connection is not held back
    peer.wait(acked(peer, 0), "the snapshot's ack")
    for last in (20, 21):  # a burst, then one patch: each acked once, 100 ms after the ack before
        peer.send(*(patch(i, i) for i in range(last - 19 if last == 20 else last, last + 1)))
        blank.wait_for_function(at, arg=[last], polling=10, timeout=HANG_MS)
        before = peer.acks()
        blank.clock.run_for(99)
        peer.roundtrip()
        assert peer.acks() == before  # not yet: within 100 ms of the last ack
        blank.clock.run_for(1)
        peer.wait(acked(peer, last), f"the ack of cursor {last}")
        peer.roundtrip()
        assert peer.acks() == [*before, {"type": "ack", "cursor": last, "epoch": "E1"}]  # one, the latest


# -- against a real service process: the server's view of the acks ---------------------------

def live_connections(base: str, tok: str) -> httpx.Response:
    return httpx.get(base + "/live/connections", headers={"Authorization": f"Bearer {tok}"}, timeout=10)


def until(check: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + HANG_MS / 1000
    while not (got := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return got


@pytest.fixture
def server(clean_redis: str) -> Iterator[ServiceProcess]:
    proc = ServiceProcess(clean_redis)
    yield proc
    proc.stop()


def post(base: str, settings: Settings, *events: dict[str, Any]) -> None:
    r = httpx.post(base + "/events", json={"events": list(events)},
                   headers={"Authorization": f"Bearer {settings.events_api_key}"}, timeout=10)
    assert r.status_code == 200, r.text


def ringing(session: str, endpoint: str = "E1") -> dict[str, Any]:
    return event("session.upsert", "A1", session, session={
        "endpointId": endpoint, "callState": "Ringing", "direction": "Incoming", "fromAddress": "+15551234567"})


def manager(settings: Settings, sub: str = "m1") -> str:
    return token(settings, sub=sub, account="A1", endpoint=None, roles=("User", "Manager"), name="Mia")


CLIENTS = """async ({ base, clients }) => {
  const { SessionsClient } = await import('/static/sessions-client.js');
  window.clients = {};
  await Promise.all(Object.entries(clients).map(([name, options]) => {
    const client = new SessionsClient({ url: base, transports: ['websocket'], ...options });
    window.clients[name] = client;
    return client.connect();
  }));
}"""


def test_the_server_sees_the_clients_acks_and_none_from_a_client_with_ack_off(
        page: Page, server: ServiceProcess, settings: Settings) -> None:
    page.goto(server.url + "/")  # the service's origin, signed out: the clients below are ours
    page.evaluate(CLIENTS, {"base": server.url, "clients": {
        "acking": {"token": manager(settings, "m1")}, "silent": {"token": manager(settings, "m2"), "ack": False}}})
    post(server.url, settings, ringing("S1"))
    r = httpx.get(server.url + "/sessions/active", headers={"Authorization": f"Bearer {manager(settings)}"}, timeout=10)
    assert [s["id"] for s in r.json()["sessions"]] == ["S1"]
    position = r.headers["etag"].strip('"')  # what the state is current at, once the change is in
    for name in ("acking", "silent"):
        page.wait_for_function("([name, at]) => window.clients[name].positionText === at", arg=[name, position],
                               timeout=HANG_MS)
    cursor = int(position.rsplit(":", 1)[1])

    def rows() -> dict[str, dict[str, Any]] | None:
        r = live_connections(server.url, manager(settings, "m3"))
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["accountId"] == "A1"
        got = {c["userId"]: c for c in body["connections"]}
        return got if got.get("m1", {}).get("acked") == cursor else None

    got = until(rows, "the acking client's ack to reach the server")
    acking, silent = got["m1"], got["m2"]
    assert acking["transport"] == "websocket" and acking["cursor"] == cursor and acking["endpointId"] is None
    assert acking["lagCursors"] == 0 and isinstance(acking["lagMs"], int) and acking["lagMs"] >= 0
    assert silent["cursor"] == cursor  # it was sent the same change, and never said it applied it
    assert silent["acked"] is None and silent["lagCursors"] is None and silent["lagMs"] is None
    user = token(settings, sub="u1", account="A1", endpoint="E1")
    refused = live_connections(server.url, user)
    assert refused.status_code == 403 and "responseStatus" in refused.json()


# -- the console's Connections panel -----------------------------------------------------------

def sign_in(page: Page, base: str, tok: str) -> None:
    page.goto(base + "/")
    page.get_by_label("Paste a bearer token").fill(tok)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")


def test_the_console_shows_each_connections_lag_to_a_manager_only(page: Page, server: ServiceProcess,
                                                                  settings: Settings) -> None:
    agent = page.context.new_page()
    asked: list[str] = []
    agent.on("request", lambda request: asked.append(request.url))
    try:
        sign_in(agent, server.url, token(settings, sub="alice", account="A1", endpoint="E1", name="Alice"))
        sign_in(page, server.url, manager(settings))
        post(server.url, settings, ringing("S1"))  # both consoles apply it and ack it
        expect(page.locator("tr.session[data-id='S1']")).to_be_visible()
        expect(agent.locator("tr.session[data-id='S1']")).to_be_visible()
        panel = page.locator("#connections")
        expect(panel).to_be_visible()
        expect(panel.get_by_role("heading", name="Connections")).to_be_visible()
        alice = panel.locator("tr.connection[data-user='alice']")
        expect(alice).to_have_count(1, timeout=HANG_MS)  # refreshed while open: it appears without a reload
        expect(alice.locator(".c-endpoint")).to_have_text("E1")
        expect(alice.locator(".c-transport")).to_have_text("WebSocket")
        cursor = agent.evaluate("window.sessionsClient.position.cursor")
        expect(alice.locator(".c-acked")).to_have_text(str(cursor), timeout=HANG_MS)
        expect(alice.locator(".c-lag")).to_have_text(re.compile(r"^0 cursors · \d+ ms$"))
        expect(panel.locator("tr.connection[data-user='m1']")).to_have_count(1)  # the manager's own console

        expect(agent.locator("#connections")).to_be_hidden()  # a plain User has no such panel
        expect(agent.locator("tr.connection")).to_have_count(0)
        assert asked and not [url for url in asked if "/live/connections" in url]  # nor does it ask
    finally:
        agent.close()

