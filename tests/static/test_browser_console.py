"""The console page end to end, in a real headless Chromium, against real
server processes on real Redis, fed by signed Twilio callbacks and platform
events from the simulator's own flows."""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import httpx
import pytest
import redis
from playwright.sync_api import Page, expect

from app.storage import keys
from app.config import Settings
from app.simulator.cast import DEMO_CAST, build_cast
from app.simulator.flows import Call, Callback, Step, build_call
from app.simulator.runner import Plan, Simulator
from app.simulator.sender import Sender
from tests.support.factories import token
from tests.support.network import Middlebox, service_on_port
from tests.support.processes import ROOT, ServiceProcess, free_port

pytest_plugins = ["tests.support.browser"]  # chromium, browser, page: one browser for every module
ARTIFACTS = ROOT / "tests" / "artifacts"  # gitignored
PUBLIC_URL = "http://testserver"  # config/test.toml: what the service checks Twilio signatures against
ACME = DEMO_CAST.demo
ALICE = ACME.agents[0]


def agent_token(settings: Settings) -> str:
    return token(settings, sub=ALICE.user_id, account=ACME.account_id, endpoint=ALICE.endpoint_id, name=ALICE.name)


def manager_token(settings: Settings) -> str:
    return token(settings, sub=ACME.manager.user_id, account=ACME.account_id, endpoint=ACME.manager.endpoint_id,
                 roles=("User", "Manager"), name=ACME.manager.name)


def send(base: str, settings: Settings, call: Call, steps: Sequence[Step]) -> None:
    """Post steps as the platform and Twilio would (in a thread: Playwright owns this one's loop)."""
    async def go() -> None:
        sender = Sender(base, public_url=PUBLIC_URL, twilio_token=settings.twilio_auth_token,
                        events_key=settings.events_api_key)
        for step in steps:
            await sender.send(call, step.action)

    worker = threading.Thread(target=asyncio.run, args=(go(),))
    worker.start()
    worker.join(30)


def index_of(call: Call, test: Any) -> int:
    return next(i for i, step in enumerate(call.steps) if test(step.action))


def callback(status: str) -> Any:
    return lambda a: isinstance(a, Callback) and status in (a.params.get("CallStatus"), a.params.get("StatusCallbackEvent"))


def sign_in(page: Page, base: str, tok: str) -> None:
    page.goto(base + "/")
    page.get_by_label("Paste a bearer token").fill(tok)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")


@pytest.fixture
def server(clean_redis: str) -> Iterator[ServiceProcess]:
    proc = ServiceProcess(clean_redis)
    yield proc
    proc.stop()


def test_signs_in_and_follows_a_call_from_twilio_callbacks(page: Page, server: ServiceProcess,
                                                           settings: Settings) -> None:
    call = build_call("d", ACME, "e2e-hold", (ALICE,), DEMO_CAST.customers[3], random.Random(7))
    sign_in(page, server.url, agent_token(settings))
    expect(page.locator("#who")).to_have_text("Alice · acme")
    expect(page.locator("#connection")).to_contain_text("Live · via WebSocket")
    expect(page.locator("#empty")).to_be_visible()
    row = page.locator("tr.session[data-id='e2e-hold']")

    ringing = index_of(call, callback("ringing"))
    send(server.url, settings, call, call.steps[: ringing + 1])  # created by the callbacks of Alice's leg
    expect(row).to_be_visible()
    expect(row.locator(".c-state")).to_have_text("Ringing")
    expect(row.locator(".c-call")).to_contain_text(call.steps[0].action.body["session"]["displayName"])  # type: ignore[union-attr]
    expect(row.locator(".c-members")).to_contain_text("AliceAgentRinging")

    start = index_of(call, callback("conference-start"))
    send(server.url, settings, call, call.steps[ringing + 1: start + 1])
    expect(row.locator(".c-state")).to_have_text("Connected")
    expect(row.locator(".c-members")).to_contain_text("AliceAgentConnected")
    expect(row.locator(".c-time")).to_contain_text("connected")
    first = row.locator(".c-time .elapsed").inner_text()
    expect(row.locator(".c-time .elapsed")).not_to_have_text(first, timeout=3000)  # the timer runs

    hold = index_of(call, callback("participant-hold"))
    send(server.url, settings, call, call.steps[start + 1: hold + 2])  # the hold, and who pressed it
    expect(row.locator(".c-state")).to_have_text("Hold")
    expect(row.locator(".c-hold")).to_contain_text("On holdby Alice")

    mute = index_of(call, callback("participant-mute"))
    send(server.url, settings, call, call.steps[hold + 2: mute + 1])
    expect(row.locator(".c-state")).to_have_text("Connected")
    expect(row.locator(".c-hold")).to_have_text("—")
    expect(row.locator(".c-members")).to_contain_text("Muted")
    rest = httpx.get(server.url + "/sessions/active", headers={"Authorization": f"Bearer {agent_token(settings)}"})
    latest = rest.json()["sessions"][0]["log"][-1]["message"]  # the log is in time order, Twilio's to the second
    expect(row.locator(".c-latest .log")).to_have_attribute("title", latest)

    page.locator("#sessions button.disclose").focus()  # by keyboard: the call's details
    page.keyboard.press("Enter")
    expect(page.locator("#sessions button.disclose")).to_have_attribute("aria-expanded", "true")
    details = page.locator("tr.details")
    expect(details).to_contain_text("Sessione2e-hold")
    expect(details.get_by_role("list", name="Call log")).to_contain_text("participant-hold")

    send(server.url, settings, call, call.steps[mute + 1:])  # hang up: the row shows how it ended, then goes
    expect(row).to_have_class(re.compile(r"\bstate-ended\b.*\bleaving\b"))
    expect(row.locator(".c-state")).to_contain_text("Ended")
    expect(row).to_have_count(0, timeout=10_000)
    expect(page.locator("#empty")).to_be_visible()
    assert page.evaluate("window.sessionsClient.stats.resets") == 0


class Traffic:
    """The simulator in a thread of its own, until stopped."""

    def __init__(self, base: str, settings: Settings, plan: Plan) -> None:
        self.loop = asyncio.new_event_loop()
        sender = Sender(base, public_url=PUBLIC_URL, twilio_token=settings.twilio_auth_token,
                        events_key=settings.events_api_key)
        self.simulator = Simulator(sender, build_cast(accounts=1, agents=4), plan, out=None)
        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(self._run(),))
        self.thread.start()

    async def _run(self) -> None:
        self.task = asyncio.current_task()
        with contextlib.suppress(asyncio.CancelledError):
            await self.simulator.run()
        await asyncio.get_running_loop().shutdown_default_executor()  # the sender's worker threads

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.task.cancel)
        self.thread.join(30)
        self.loop.close()


def test_a_managers_console_full_of_simulated_calls(page: Page, server: ServiceProcess,
                                                    settings: Settings) -> None:
    traffic = Traffic(server.url, settings, Plan(rate=2.5, speed=3, seed=11))
    try:
        sign_in(page, server.url, manager_token(settings))
        expect(page.locator("#board-title")).to_have_text("Whole account · acme")
        rows = page.locator("tr.session:not(.leaving)")
        expect(rows.nth(5)).to_be_visible(timeout=20_000)
        expect(page.locator("tr.session .b-call-connected").first).to_be_visible(timeout=20_000)
        expect(page.locator("tr.session .c-hold .held-by").first).to_contain_text("by ", timeout=40_000)
        expect(page.locator("tr.session .c-members li").first).to_be_visible()
        assert traffic.simulator.progress.failed == 0, traffic.simulator.progress.last_error
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "console-desktop.png"), full_page=True)

        page.locator("#sessions button.disclose").first.focus()  # arrow keys move between calls
        first = page.evaluate("document.activeElement.dataset.id")
        page.keyboard.press("ArrowDown")
        assert page.evaluate("document.activeElement.dataset.id") != first

        page.set_viewport_size({"width": 390, "height": 844})
        expect(page.locator("#sessions thead")).to_have_css("position", "absolute")  # cards, not a table
        page.screenshot(path=str(ARTIFACTS / "console-phone.png"), full_page=False)
        page.set_viewport_size({"width": 1440, "height": 900})

        page.get_by_role("button", name="Mine").click()  # Morgan takes no calls: the personal view is empty
        expect(page.locator("#board-title")).to_have_text("My calls")
        expect(page.locator("#empty")).to_be_visible()
        page.get_by_role("button", name="Whole account").click()
        expect(rows.first).to_be_visible()
    finally:
        traffic.stop()
    assert traffic.simulator.progress.failed == 0, traffic.simulator.progress.last_error


def test_survives_the_server_dropping_the_socket(page: Page, clean_redis: str, settings: Settings) -> None:
    port = free_port()
    a, b = service_on_port(clean_redis, port), ServiceProcess(clean_redis)
    try:
        call = build_call("d", ACME, "e2e-drop", (ALICE,), DEMO_CAST.customers[5], random.Random(3))
        sign_in(page, a.url, manager_token(settings))
        start = index_of(call, callback("conference-start"))
        send(a.url, settings, call, call.steps[: start + 1])
        row = page.locator("tr.session[data-id='e2e-drop']")
        expect(row.locator(".c-state")).to_have_text("Connected")

        a.stop("kill")  # the server dies: its sockets are cut with no goodbye
        expect(page.locator("#connection")).to_have_attribute("data-state", "reconnecting")
        hold = index_of(call, callback("participant-hold"))
        send(b.url, settings, call, call.steps[start + 1: hold + 2])  # meanwhile, elsewhere, the call goes on hold
        a = service_on_port(clean_redis, port)

        expect(page.locator("#connection")).to_have_attribute("data-how", "resumed", timeout=20_000)
        expect(page.locator("#connection")).to_contain_text("missed change")
        expect(row.locator(".c-state")).to_have_text("Hold")  # replayed, not reloaded
        expect(page.locator("#history")).to_contain_text("Reconnecting")
        stats = page.evaluate("window.sessionsClient.stats")
        assert stats["resets"] == 0 and stats["resumes"] >= 1 and stats["replayed"] >= 1, stats

        store = redis.Redis.from_url(clean_redis)  # the store loses its change log: no resume is possible
        store.delete(keys.epoch(ACME.account_id))
        store.close()
        page.evaluate("window.sessionsClient.reconnect()")
        expect(page.locator("#connection")).to_have_attribute("data-how", "reset")
        expect(page.locator("#connection")).to_contain_text("Live · reset to a fresh snapshot")
        expect(row.locator(".c-state")).to_have_text("Hold")  # the fresh snapshot has it too
        assert page.evaluate("window.sessionsClient.stats.resets") == 1
    finally:
        a.stop()
        b.stop()


@pytest.mark.parametrize(("refuse_event_stream", "transport"), [(False, "SSE"), (True, "long-poll")])
def test_falls_back_when_websockets_are_refused(page: Page, server: ServiceProcess, settings: Settings,
                                               refuse_event_stream: bool, transport: str) -> None:
    proxy = Middlebox(int(server.url.rsplit(":", 1)[1]), refuse_websocket=True, refuse_event_stream=refuse_event_stream)
    try:
        sign_in(page, proxy.url, manager_token(settings))
        expect(page.locator("#connection")).to_contain_text(f"Live · via {transport}")
        call = build_call("a", ACME, f"e2e-{transport}", (ALICE,), DEMO_CAST.customers[1], random.Random(1))
        answered = index_of(call, callback("in-progress"))
        send(server.url, settings, call, call.steps[:2])
        row = page.locator(f"tr.session[data-id='e2e-{transport}']")
        expect(row.locator(".c-state")).to_have_text("Ringing")
        send(server.url, settings, call, call.steps[2: answered + 1])
        expect(row.locator(".c-state")).to_have_text("Connected")
        assert any("/sessions/live" in line for line in proxy.refused), proxy.refused
    finally:
        proxy.close()


def test_dev_sign_in_exists_only_in_development(page: Page, clean_redis: str, server: ServiceProcess,
                                                settings: Settings) -> None:
    assert httpx.post(server.url + "/console/dev-token", json={"role": "agent"}).status_code == 404
    assert httpx.get(server.url + "/console/config").json() == {"devTokens": False}
    page.goto(server.url + "/")
    expect(page.locator("#dev")).to_be_hidden()
    expired = token(settings, sub="u", account="acme", endpoint="E", ttl=-30)
    page.get_by_label("Paste a bearer token").fill(expired)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.locator("#sign-in-error")).to_contain_text("expired")

    dev = ServiceProcess(clean_redis, {"APP_ENV": "development"})
    try:
        page.goto(dev.url + "/")
        page.get_by_role("button", name="Sign in as demo agent (Alice)").click()
        expect(page.locator("#connection")).to_have_attribute("data-state", "live")
        expect(page.locator("#who")).to_have_text("Alice · acme")
        expect(page.locator("#views")).to_be_hidden()  # an agent sees only their own calls
        page.get_by_role("button", name="Sign out").click()
        page.get_by_role("button", name="Sign in as demo manager").click()
        expect(page.locator("#who")).to_have_text("Morgan · acme · manager")
        expect(page.locator("#views")).to_be_visible()
    finally:
        dev.stop()


def test_a_pasted_token_warns_before_it_expires_then_signs_out(page: Page, clean_redis: str,
                                                               settings: Settings) -> None:
    server = ServiceProcess(clean_redis, {"LIVE_TOKEN_GRACE": "0.5"})
    try:
        short = token(settings, sub=ALICE.user_id, account=ACME.account_id, endpoint=ALICE.endpoint_id, ttl=4)
        sign_in(page, server.url, short)
        expect(page.locator("#connection")).to_contain_text("token expires", timeout=6000)
        expect(page.locator("#sign-in-error")).to_contain_text("Your token has expired", timeout=8000)
        expect(page.locator("#sign-in")).to_be_visible()
    finally:
        server.stop()
