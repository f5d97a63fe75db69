"""Each demo run as its own process, checked on the wire with an independent
client (httpx + httpx-sse)."""

from __future__ import annotations

import json
import time

import httpx_sse

from helpers import PATIENCE, assert_replays_the_match, client, demo, events, first_events


def test_counter_sends_20_messages_then_end_event() -> None:
    with demo("counter", "--delay", "0.001") as running:
        with client() as http, httpx_sse.connect_sse(http, "GET", f"{running.url}/stream") as source:
            headers = source.response.headers
            assert headers["content-type"] == "text/event-stream; charset=utf-8"
            assert headers["cache-control"] == "no-cache"
            assert headers["access-control-allow-origin"] == "*"
            got = [(e.event, e.id, e.retry, e.data) for e in source.iter_sse()]
        expected = [("new_message", "message_id", 15000, f"Counter value {n}") for n in range(1, 21)]
        expected.append(("end_event", "message_id", 15000, "End of the stream"))
        assert got == expected


def test_counter_producer_stops_when_the_client_leaves() -> None:
    with demo("counter", "--delay", "0.05", "--log-level", "debug") as running:
        with client() as http, httpx_sse.connect_sse(http, "GET", f"{running.url}/stream") as source:
            for n, event in enumerate(source.iter_sse(), start=1):
                if n == 2:
                    break
        deadline = time.monotonic() + PATIENCE
        while "client left /stream" not in running.log():
            assert time.monotonic() < deadline, running.log()
            time.sleep(0.02)
        assert "Traceback" not in running.log()


def test_numbers_are_unnamed_events_on_both_paths_with_keepalives() -> None:
    with demo("numbers", "--delay", "0.001") as running:
        for path in ("/numbers", "/"):
            got = [(e.event, e.data) for e in events(running.url + path)]
            assert got == [("message", str(n)) for n in range(1, 6)]
    with demo("numbers", "--delay", "0.4", "--keepalive", "0.1") as running:
        with client() as http, http.stream("GET", f"{running.url}/numbers") as response:
            body = b"".join(response.iter_raw())
        assert b":\n\n" in body, "an idle stream got no keep-alive comment"


def test_progress_page_sessions_stream_and_bad_session_ids() -> None:
    with demo("progress", "--min-delay", "0", "--max-delay", "0.001") as running:
        with client() as http:
            first, second = http.get(running.url + "/").text, http.get(running.url + "/").text
            assert 'const sessionId = "1";' in first and 'const sessionId = "2";' in second
            for bad in ("", "?session_id=", "?session_id=abc", "?session_id=1.5"):
                refused = http.get(f"{running.url}/progress{bad}")
                assert refused.status_code == 400, bad
                assert refused.headers["content-type"] == "text/plain; charset=utf-8"
                assert "session_id" in refused.text
        got = [(e.event, e.id, json.loads(e.data)) for e in events(f"{running.url}/progress?session_id=7")]
        assert got == [("progress", "7", {"progress": p}) for p in range(100)]


def test_livescore_broadcasts_the_match_and_resumes_from_history() -> None:
    with demo("livescore", "--interval", "0.02") as running:
        with client() as http, http.stream("GET", f"{running.url}/livescore") as response:
            headers = response.headers
        received = first_events(f"{running.url}/livescore", 40)
        # A client that was away resumes right after the last id it saw.
        resumed = first_events(f"{running.url}/livescore", 30, **{"last-event-id": received[9].id})
    assert headers["access-control-allow-origin"] == "*"
    assert headers["cache-control"] == "no-cache"
    assert_replays_the_match(received)
    assert [e.data for e in resumed] == [e.data for e in received[10:40]]
