"""Events published from C reach a client byte for byte as the WHATWG format
says: multi-line data split on LF, CRLF and CR, named events, ids, retry,
comments, data holding NUL bytes (given with its length), and UTF-8."""

from __future__ import annotations

import concurrent.futures
from pathlib import Path

import httpx_sse

from cabi import build
from helpers import ROOT, client, serving

# In the order tests/c/events.c publishes them.
WIRE = (
    "data: plain\n\n"
    "data: two\ndata: lines\n\n"
    "data: crlf\ndata: and cr\ndata: end\n\n"
    "event: update\ndata: named\n\n"
    "id: custom-7\ndata: with an id\n\n"
    "retry: 2500\ndata: reconnect later\n\n"
    ": a note\ndata: after a comment\n\n"
    "data: nul\x00inside\n\n"
    "data: h\u00e9llo \u2713\n\n"
    "event: end\ndata: the end\n\n"
)

# (event, data, id, retry) as a conforming parser reads them back; the id is
# the last one seen, as a browser keeps it.
PARSED = [
    ("message", "plain", "", None),
    ("message", "two\nlines", "", None),
    ("message", "crlf\nand cr\nend", "", None),
    ("update", "named", "", None),
    ("message", "with an id", "custom-7", None),
    ("message", "reconnect later", "custom-7", 2500),
    ("message", "after a comment", "custom-7", None),
    ("message", "nul\x00inside", "custom-7", None),
    ("message", "h\u00e9llo \u2713", "custom-7", None),
    ("end", "the end", "custom-7", None),
]


def read_text(url: str) -> str:
    with client() as http, http.stream("GET", url) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        received = ""
        for text in response.iter_text():
            received += text
            if received.endswith("data: the end\n\n"):
                return received
    return received


def read_parsed(url: str) -> list[tuple[str, str, str, int | None]]:
    parsed = []
    with client() as http, httpx_sse.connect_sse(http, "GET", url) as source:
        for event in source.iter_sse():
            parsed.append((event.event, event.data, event.id, event.retry))
            if event.event == "end":
                break
    return parsed


def test_every_event_shape_from_c_arrives_exactly(tmp_path: Path) -> None:
    binary = build(ROOT / "tests/c/events.c", tmp_path / "events")
    with serving([str(binary), "2"]) as running, concurrent.futures.ThreadPoolExecutor(2) as pool:
        url = f"{running.url}/events"
        text, parsed = pool.submit(read_text, url), pool.submit(read_parsed, url)
        assert text.result().endswith(WIRE), text.result()
        assert parsed.result() == PARSED
