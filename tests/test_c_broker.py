"""A C server and a Python server joined by a real redis-server: the
broker URL from C's `tidings_config`, one order for the subscribers of
both, and `tidings_channel_publish_confirmed` telling the broker's id."""

from __future__ import annotations

import re
import subprocess
import threading
from pathlib import Path

import httpx_sse

import tidings
from cabi import build
from helpers import PATIENCE, ROOT, client, redis_server


def read(url: str, count: int, into: list[tuple[str, str]], connected: threading.Event) -> None:
    with client() as http, httpx_sse.connect_sse(http, "GET", url) as source:
        connected.set()
        for event in source.iter_sse():
            into.append((event.id, event.data))
            if len(into) == count:
                return


def test_a_c_server_and_a_python_server_share_channels_through_redis(tmp_path: Path) -> None:
    node = build(ROOT / "tests" / "c" / "broker_node.c", tmp_path / "broker_node")
    with redis_server(tmp_path / "redis") as redis:
        python_node = tidings.Server("127.0.0.1", 0, broker=redis.url)
        channel = python_node.channel("/c")
        python_node.start()
        process = subprocess.Popen([str(node), redis.url, "c", "30", "1"], stdout=subprocess.PIPE, text=True)
        try:
            assert process.stdout is not None
            opened = re.search(r"open (http://\S+)/", process.stdout.readline())
            assert opened, "the C node did not start"
            received: dict[str, list[tuple[str, str]]] = {"c": [], "python": []}
            readers = []
            # Python's subscriber first: the C node publishes once its own is there.
            for name, url in (("python", f"{python_node.url}/c"), ("c", f"{opened.group(1)}/c")):
                connected = threading.Event()
                reader = threading.Thread(target=read, args=(url, 62, received[name], connected), daemon=True)
                reader.start()
                assert connected.wait(PATIENCE)
                readers.append(reader)
            # The C node publishes once its subscriber is there; Python too.
            for i in range(30):
                channel.publish(f"python:{i}")
            for reader in readers:
                reader.join(PATIENCE)
            confirmed = process.stdout.readline().split()
            small = process.stdout.readline()
        finally:
            process.send_signal(2)
            assert process.wait(PATIENCE) == 0
            if process.stdout is not None:
                process.stdout.close()
            python_node.stop()
    # 30 from each, and the two confirmed publishes of the C node.
    assert len(received["c"]) == 62
    assert received["c"] == received["python"], "one order on both servers"
    data = [data for _, data in received["c"]]
    assert [d for d in data if d.startswith("c:")] == [f"c:{i}" for i in range(30)]
    assert [d for d in data if d.startswith("python:")] == [f"python:{i}" for i in range(30)]
    assert confirmed[0] == "confirmed" and re.fullmatch(r"\d+-\d+", confirmed[1])
    first, second = [id for id, d in received["c"] if d == "confirmed"]
    assert confirmed[1] == first
    # The one confirmed into no buffer was published, and its length told.
    assert small.startswith("small buffer: TIDINGS_ERR_BUFFER_TOO_SMALL") and small.split()[-1] == str(len(second))
