"""Browser test fixtures, a pytest plugin (`pytest_plugins = ["tests.support.browser"]`)
so every module shares one browser: Debian's Chromium, installed by the test run
itself when missing (never downloaded by a test tool), driven by Playwright."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

# Imported now, not lazily at the end of the run by its pytest plugin: once
# Playwright's greenlets have run, CPython 3.11's parser can trip on its own
# recursion counter ("AST constructor recursion depth mismatch") while
# rewriting a module imported that late.
import hypothesis  # noqa: F401
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
# As the machine's notes say: without the background-networking flags Chromium
# keeps trying to reach Google's hosts, and this machine's network refuses them.
CHROMIUM_ARGS = ["--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def ensure_chromium() -> Path:
    """`/usr/bin/chromium`, installing Debian's package first if it is missing.
    Raises (so the run fails, loudly) when it cannot be installed."""
    if CHROMIUM.exists():
        return CHROMIUM
    apt = shutil.which("apt-get")
    if apt is None:
        raise RuntimeError("/usr/bin/chromium is missing and there is no apt-get to install Debian's chromium")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    log: list[str] = []
    for command in ([apt, "install", "-y", "chromium"], [apt, "update"], [apt, "install", "-y", "chromium"]):
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900, check=False)
        log.append(f"$ {' '.join(command)}  (exit {done.returncode})\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
        if command[1] == "install" and done.returncode == 0 and CHROMIUM.exists():
            return CHROMIUM
    raise RuntimeError("could not install Debian's chromium:\n" + "\n".join(log))


@pytest.fixture(scope="session")
def chromium() -> Path:
    try:
        return ensure_chromium()
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        pytest.fail(f"browser tests need Chromium: {exc}", pytrace=False)


@pytest.fixture(scope="module")
def browser(chromium: Path) -> Iterator[Browser]:
    # Module scope, not session: Playwright's sync API keeps an event loop
    # running on this thread while it is open, which would break every asyncio
    # test that runs after the browser tests.
    with sync_playwright() as pw:
        # A fresh temporary profile per launch is Playwright's default.
        launched = pw.chromium.launch(executable_path=str(chromium), headless=True, chromium_sandbox=False,
                                      args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    context.set_default_timeout(15_000)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    yield tab
    context.close()
    assert not errors, f"uncaught errors in the page: {errors}"
