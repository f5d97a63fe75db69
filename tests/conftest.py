"""Cross-language tests reuse the Python package's test helpers (an
independent SSE client, server processes) rather than copying them."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bindings-python" / "tests"))

import pytest  # noqa: E402

from helpers import chromium  # noqa: E402


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium, as the Python package's tests have it."""
    with chromium() as instance:
        yield instance
