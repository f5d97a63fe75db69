"""The demo pages in headless Chromium: the page loads, its EventSource
receives the events, and the DOM shows them."""

from __future__ import annotations

from helpers import assert_counter_page_counts_to_20_and_closes, demo


def test_counter_page_lists_20_values_then_closes_the_stream(browser) -> None:
    with demo("counter", "--delay", "0.01", "--log-level", "debug") as running:
        assert_counter_page_counts_to_20_and_closes(browser, running.url + "/")


def test_progress_page_reaches_99_and_says_done(browser) -> None:
    with demo("progress", "--min-delay", "0", "--max-delay", "0.005") as running:
        page = browser.new_page()
        page.goto(running.url + "/")
        assert page.locator("#session").text_content() == "1"
        page.wait_for_function("document.querySelector('#status').textContent === 'done'", timeout=20_000)
        assert page.locator("#bar").get_attribute("value") == "99"
        assert page.evaluate("source.readyState") == 2
        page.close()


def test_livescore_page_updates_and_reconnects_after_a_restart(browser) -> None:
    with demo("livescore", "--interval", "0.05") as running:
        url = running.url
        port = int(url.rsplit(":", 1)[1])
        page = browser.new_page()
        page.goto(url + "/")
        page.wait_for_function("document.querySelector('#connection').dataset.state === 'live'")
        page.wait_for_function("Number(document.querySelector('#updates').textContent) >= 5")
        assert page.locator("#home-name").text_content() == "Riverside Rovers"
        assert page.locator("#timeline li").count() >= 1
    # The server is gone: the page notices and keeps trying.
    page.wait_for_function("document.querySelector('#connection').dataset.state === 'reconnecting'")
    before = int(page.locator("#updates").text_content() or "0")
    with demo("livescore", "--interval", "0.05", port=port):
        page.wait_for_function("document.querySelector('#connection').dataset.state === 'live'", timeout=15_000)
        page.wait_for_function(f"Number(document.querySelector('#updates').textContent) > {before + 3}")
    page.close()
