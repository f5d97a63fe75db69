"""The C demos (examples/c) on the wire, read with httpx-sse."""

from __future__ import annotations

from pathlib import Path

import httpx_sse

from cabi import EXAMPLES, build, valgrind
from helpers import assert_replays_the_match, client, events, first_events, serving


def test_counter_in_c_sends_the_exact_sequence_and_survives_leaving_clients(tmp_path: Path) -> None:
    binary = build(EXAMPLES / "c/counter.c", tmp_path / "counter")
    # Under valgrind: clients that leave mid-stream must not leak or corrupt anything.
    command = [*valgrind(), str(binary), "--port", "0", "--delay", "0.002", "--examples", str(EXAMPLES)]
    with serving(command, stop_timeout=60) as running:
        with client() as http, httpx_sse.connect_sse(http, "GET", f"{running.url}/stream") as source:
            assert source.response.headers["access-control-allow-origin"] == "*"
            for n, _event in enumerate(source.iter_sse(), start=1):
                if n == 3:
                    break  # leave early
        got = [(e.event, e.id, e.retry, e.data) for e in events(f"{running.url}/stream")]
        expected = [("new_message", "message_id", 15000, f"Counter value {n}") for n in range(1, 21)]
        expected.append(("end_event", "message_id", 15000, "End of the stream"))
        assert got == expected
        with client() as http:
            assert "EventSource" in http.get(f"{running.url}/").text


def test_livescore_in_c_broadcasts_the_match_in_order(tmp_path: Path) -> None:
    binary = build(EXAMPLES / "c/livescore.c", tmp_path / "livescore")
    with serving([str(binary), "--port", "0", "--interval", "0.01", "--examples", str(EXAMPLES)]) as running:
        received = first_events(f"{running.url}/livescore", 40)
    assert_replays_the_match(received)
    assert all("\n" not in event.data for event in received), "updates are sent as compact one-line JSON"
