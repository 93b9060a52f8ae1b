"""Presence in the console, in a real headless Chromium: a Manager's console on one
server process shows the agents whose consoles are connected to another, and drops
one when its process is killed (SIGKILL: only its lease running out can tell). An
agent's console shows itself. The lease is made short (a setting); `expect` waits
only bound a hang."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from app.config import Settings
from app.simulator.cast import DEMO_CAST, Agent
from tests.support.factories import token
from tests.support.processes import ServiceProcess, service_pair

pytest_plugins = ["tests.support.browser"]
ACME = DEMO_CAST.demo
ALICE, BOB = ACME.agents[0], ACME.agents[1]
ENV = {"PRESENCE_LEASE_SECONDS": "1", "PRESENCE_INTERVAL_SECONDS": "0.25", "PRESENCE_LEAVE_GRACE_SECONDS": "0.5"}
HANG_MS = 30_000


@pytest.fixture
def pair(clean_redis: str) -> Iterator[tuple[ServiceProcess, ServiceProcess]]:
    with service_pair(clean_redis, ENV) as processes:
        yield processes


def sign_in(page: Page, base: str, tok: str) -> None:
    page.goto(base + "/")
    page.get_by_label("Paste a bearer token").fill(tok)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")


def agent_token(settings: Settings, agent: Agent) -> str:
    return token(settings, sub=agent.user_id, account=ACME.account_id, endpoint=agent.endpoint_id, name=agent.name)


def test_a_managers_console_shows_who_is_connected_and_drops_a_killed_processes_agent(
        page: Page, browser: Browser, pair: tuple[ServiceProcess, ServiceProcess], settings: Settings) -> None:
    a, b = pair
    manager = token(settings, sub=ACME.manager.user_id, account=ACME.account_id, endpoint=None,
                    roles=("User", "Manager"), name=ACME.manager.name)
    sign_in(page, b.url, manager)
    expect(page.locator("#presence-title")).to_have_text("Connected now")
    expect(page.locator("#present-none")).to_be_visible()
    alice_page = browser.new_page()
    bob_page = browser.new_page()
    try:
        sign_in(alice_page, a.url, agent_token(settings, ALICE))
        sign_in(bob_page, b.url, agent_token(settings, BOB))
        expect(alice_page.locator("#presence-title")).to_have_text("Your softphone")
        expect(alice_page.locator("#present li")).to_have_count(1)  # an agent sees itself only
        expect(alice_page.locator(f'#present li[data-endpoint="{ALICE.endpoint_id}"]')).to_contain_text(ALICE.name)
        present = page.locator("#present li")
        expect(present).to_have_count(2, timeout=HANG_MS)
        expect(page.locator(f'#present li[data-endpoint="{ALICE.endpoint_id}"]')).to_contain_text(ALICE.name)
        expect(page.locator("#present-none")).to_be_hidden()
        a.stop("kill")  # Alice's console is connected to a, which dies without a word
        expect(page.locator(f'#present li[data-endpoint="{ALICE.endpoint_id}"]')).to_have_count(0, timeout=HANG_MS)
        expect(page.locator(f'#present li[data-endpoint="{BOB.endpoint_id}"]')).to_contain_text(BOB.name)
        bob_page.close()  # a closed tab leaves after its grace (0.5 s here)
        expect(present).to_have_count(0, timeout=HANG_MS)
        expect(page.locator("#present-none")).to_be_visible()
    finally:
        alice_page.close()
        if not bob_page.is_closed():
            bob_page.close()
