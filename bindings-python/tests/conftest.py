"""Fixtures: a server on a free port, and headless Chromium."""

from __future__ import annotations

from typing import Iterator

import pytest

import tidings
from helpers import chromium


@pytest.fixture
def server() -> Iterator[tidings.Server]:
    """A server on a free loopback port, stopped after the test."""
    srv = tidings.Server("127.0.0.1", 0, keepalive=15.0)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium (see `helpers.chromium`). Module-scoped: Playwright's
    sync API keeps an event loop marked running while it lives, which later
    `asyncio.run()` calls must not see."""
    with chromium() as instance:
        yield instance
