"""The console shows the sweep, in a real headless Chromium against a real service
process that sweeps (fast, with no Twilio REST API, as the demo does): a session
nothing has been heard of is marked stale, the row says so, and the toolbar shows
the account's sweep counts."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
from playwright.sync_api import Page, expect
import pytest

from app.config import Settings
from tests.support.factories import event, token
from tests.support.processes import ServiceProcess

pytest_plugins = ["tests.support.browser"]


@pytest.fixture
def sweeping(clean_redis: str) -> Iterator[ServiceProcess]:
    proc = ServiceProcess(clean_redis, {"SWEEP_INTERVAL_SECONDS": "0.2", "SWEEP_LEASE_SECONDS": "5"})
    yield proc
    proc.stop()


def test_a_stale_session_and_the_sweep_counts_are_shown(page: Page, sweeping: ServiceProcess,
                                                        settings: Settings) -> None:
    manager = token(settings, sub="m1", account="A1", endpoint=None, roles=("User", "Manager"), name="Mia")
    page.goto(sweeping.url + "/")
    page.get_by_label("Paste a bearer token").fill(manager)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    expect(page.locator("#sweep")).to_have_text("Sweep: 0 checked · 0 resolved · 0 lost · 0 stale")

    # A ringing call the platform opened in 2024 and nobody has said a word about since.
    r = httpx.post(sweeping.url + "/events", headers={"Authorization": f"Bearer {settings.events_api_key}"},
                   json={"events": [event("session.upsert", "A1", "S1", session={
                       "endpointId": "E1", "callState": "Ringing", "direction": "Incoming",
                       "fromAddress": "+15551234567"})]})
    assert r.status_code == 200, r.text
    row = page.locator("tr.session[data-id='S1']")
    expect(row.locator(".c-state .b-stale-stale")).to_have_text("Stale")  # arrives as a live patch
    expect(row).to_have_class(re.compile(r"\bstale\b"))
    expect(row.locator(".c-state .b-stale-stale")).to_have_attribute(
        "title", "nothing heard since 2024-05-01T10:00:00.000Z; no open Twilio call to ask about")
    expect(page.locator("#summary")).to_have_text("1 active · 1 ringing · 1 stale")
    page.reload()  # the counts are polled: a fresh page reads them at once
    expect(page.locator("#sweep")).to_contain_text("Sweep: 1 checked · 0 resolved · 0 lost · 1 stale · last ")
