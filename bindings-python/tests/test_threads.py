"""Publishing from many threads while many clients read: nothing lost,
per-thread order kept."""

from __future__ import annotations

import socket
import threading

import tidings
from helpers import PATIENCE

THREADS = 8
PER_THREAD = 10_000
CLIENTS = 50


def read_events(port: int, expected: int, out: list[list[bytes]], index: int, ready: threading.Barrier) -> None:
    """A fast raw reader: counts `data:` lines of a chunked event stream."""
    conn = socket.create_connection(("127.0.0.1", port), timeout=PATIENCE)
    conn.sendall(b"GET /c HTTP/1.1\r\nhost: x\r\n\r\n")
    ready.wait()
    buffer = b""
    data: list[bytes] = []
    while len(data) < expected:
        chunk = conn.recv(1 << 20)
        assert chunk, "stream ended early"
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        data.extend(line[6:] for line in lines if line.startswith(b"data: "))
    conn.close()
    out[index] = data


def test_8_threads_publish_80k_events_to_50_readers_in_order() -> None:
    server = tidings.Server("127.0.0.1", 0)
    # The readers are Python threads sharing one GIL: give them room to lag.
    channel = server.channel("/c", history=0, auto_id=False, max_lag=THREADS * PER_THREAD)
    server.start()
    try:
        ready = threading.Barrier(CLIENTS + 1)
        results: list[list[bytes]] = [[] for _ in range(CLIENTS)]
        readers = [
            threading.Thread(target=read_events, args=(server.port, THREADS * PER_THREAD, results, i, ready))
            for i in range(CLIENTS)
        ]
        for reader in readers:
            reader.start()
        ready.wait()
        deadline = threading.Event()
        while channel.subscribers < CLIENTS and not deadline.wait(0.01):
            pass

        def publish(thread: int) -> None:
            for n in range(PER_THREAD):
                channel.publish(f"{thread}:{n}")

        publishers = [threading.Thread(target=publish, args=(t,)) for t in range(THREADS)]
        for publisher in publishers:
            publisher.start()
        for publisher in publishers:
            publisher.join()
        for reader in readers:
            reader.join(120)
            assert not reader.is_alive(), "a reader did not get every event"
        for data in results:
            assert len(data) == THREADS * PER_THREAD
            last = [-1] * THREADS
            for item in data:
                thread, n = map(int, item.split(b":"))
                assert n == last[thread] + 1, "per-thread order broken or an event lost"
                last[thread] = n
    finally:
        server.stop()
