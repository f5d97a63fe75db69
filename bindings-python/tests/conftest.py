"""Fixtures: a server on a free port, and headless Chromium."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

import tidings
from helpers import CHROMIUM


@pytest.fixture
def server() -> Iterator[tidings.Server]:
    """A server on a free loopback port, stopped after the test."""
    srv = tidings.Server("127.0.0.1", 0, keepalive=15.0)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def browser():
    """Headless Debian Chromium driven by Playwright (no browser download).
    Module-scoped: Playwright's sync API keeps an event loop marked running
    while it lives, which later `asyncio.run()` calls must not see."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (bash .ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--no-proxy-server",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield instance
        instance.close()
