"""The C counter's page in headless Chromium: its EventSource gets the 20
values and the end from the C server, then stays closed."""

from __future__ import annotations

from pathlib import Path

from cabi import EXAMPLES, build
from helpers import assert_counter_page_counts_to_20_and_closes, serving


def test_the_c_counter_page_lists_20_values_then_closes_the_stream(browser, tmp_path: Path) -> None:
    binary = build(EXAMPLES / "c/counter.c", tmp_path / "counter")
    with serving([str(binary), "--port", "0", "--delay", "0.01", "--examples", str(EXAMPLES)]) as running:
        assert_counter_page_counts_to_20_and_closes(browser, running.url + "/")
