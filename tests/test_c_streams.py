"""A C producer thread per stream, sending with tidings_stream_send: a client
that stops reading holds its producer back (the queue is bounded, nothing
piles up in memory), and once it reads again it gets every event, in order."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from cabi import build
from helpers import PATIENCE, ROOT, client, serving

EVENTS = 20_000  # as tests/c/slow_reader.c sends


def test_a_slow_reader_holds_its_c_producer_back_and_loses_nothing(tmp_path: Path) -> None:
    binary = build(ROOT / "tests/c/slow_reader.c", tmp_path / "slow_reader")
    with serving([str(binary)]) as running, client() as http:
        host, port = running.url.removeprefix("http://").split(":")

        def sent() -> int:
            return int(http.get(f"{running.url}/sent").text)

        with socket.create_connection((host, int(port)), timeout=PATIENCE) as conn:
            conn.sendall(b"GET /s HTTP/1.1\r\nhost: x\r\n\r\n")
            # Not reading: the producer stops once the socket buffers and
            # the queue are full, well short of the end.
            deadline = time.monotonic() + PATIENCE
            before, now = -1, sent()
            while now != before and time.monotonic() < deadline:
                time.sleep(0.3)
                before, now = now, sent()
            assert 0 < now < EVENTS, now
            # Reading again: everything arrives, in order, whole.
            received = bytearray()
            while not received.endswith(b"0\r\n\r\n"):  # the chunked body's end
                chunk = conn.recv(1 << 20)
                assert chunk, "the stream ended early"
                received += chunk
        assert sent() == EVENTS
    data = [line[6:] for line in bytes(received).split(b"\n") if line.startswith(b"data: ")]
    assert [int(item.split(b" ", 1)[0]) for item in data] == list(range(EVENTS))
    assert all(len(item) == 1024 for item in data)
