"""Servers joined by a broker: a real redis-server started by the test, and
tidings servers as separate processes (plain Python servers, and FastAPI
apps under ``tidings run --workers``), read with httpx-sse."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import httpx_sse
import pytest

import tidings
from helpers import PATIENCE, ROOT, Demo, RedisServer, client, first_events, redis_server, serving

# A node: a channel at /c on the broker, and a route that publishes `count`
# events named `<name>:<i>` from this process.
NODE = '''
import sys, threading, tidings

server = tidings.Server("127.0.0.1", 0, broker=sys.argv[1])
channel = server.channel("/c", history=1000)

@server.route("/publish")
def publish(request):
    name, count = request.query["name"], int(request.query["count"])
    for i in range(count):
        channel.publish(f"{name}:{i}")
    return "ok"

@server.route("/confirm")
def confirm(request):
    return channel.publish_confirmed(request.query["data"], timeout=10)

@server.route("/presence")
def presence(request):
    import json
    stats = server.stats()["channels"]["/c"]
    return tidings.Response(json.dumps([stats["subscribers"], stats["cluster_subscribers"]]), content_type="application/json")

@server.route("/broker")
def broker(request):
    import json
    return tidings.Response(json.dumps(server.stats()["broker"]), content_type="application/json")

server.start()
print(f"node: open {server.url}/", flush=True)
try:
    threading.Event().wait()
except KeyboardInterrupt:
    pass
finally:
    server.stop()
'''

# A FastAPI app whose channel is joined by `tidings run --broker`.
APP = '''
import os
import tidings
from fastapi import FastAPI, Request
from tidings.starlette import ChannelResponse

scores = tidings.channel("/scores", history=1000)
app = FastAPI()

@app.get("/events")
async def events(request: Request):
    return ChannelResponse(scores, request, headers={"x-pid": str(os.getpid())})

@app.post("/publish/{data}")
async def publish(data: str):
    scores.publish(data)
    return {"pid": os.getpid()}
'''


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    with redis_server(tmp_path / "redis") as running:
        yield running


@pytest.fixture
def node_script(tmp_path: Path) -> Path:
    script = tmp_path / "node.py"
    script.write_text(NODE)
    return script


def start_node(script: Path, redis: RedisServer) -> contextlib.AbstractContextManager[Demo]:
    return serving([sys.executable, str(script), redis.url])


class Collector:
    """Reads `count` events of a stream on a thread of its own."""

    def __init__(self, url: str, count: int, **headers: str) -> None:
        self.received: list[httpx_sse.ServerSentEvent] = []
        self.connected = threading.Event()
        self._thread = threading.Thread(target=self._read, args=(url, count, headers), daemon=True)
        self._thread.start()
        assert self.connected.wait(PATIENCE), f"cannot subscribe to {url}"

    def _read(self, url: str, count: int, headers: dict[str, str]) -> None:
        with client() as http, httpx_sse.connect_sse(http, "GET", url, headers=headers) as source:
            self.headers = source.response.headers
            self.connected.set()
            for event in source.iter_sse():
                self.received.append(event)
                if len(self.received) == count:
                    return

    def result(self) -> list[tuple[str, str]]:
        self._thread.join(PATIENCE)
        assert not self._thread.is_alive(), f"only {len(self.received)} events arrived"
        return [(event.id, event.data) for event in self.received]


@pytest.fixture(scope="module")
def rust_node() -> Path:
    """core/examples/cluster_node.rs: the same node as NODE, in plain Rust."""
    subprocess.run(["cargo", "build", "-q", "-p", "tidings", "--example", "cluster_node"], cwd=ROOT, check=True)
    return ROOT / "target" / "debug" / "examples" / "cluster_node"


def test_three_node_processes_deliver_every_publish_to_everyone_in_one_order(
    node_script: Path, rust_node: Path, redis: RedisServer
) -> None:
    # Two Python processes and one plain Rust process.
    per_node = 100
    with start_node(node_script, redis) as a, start_node(node_script, redis) as b, serving(
        [str(rust_node), redis.url]
    ) as c:
        nodes = [a, b, c]
        collectors = [Collector(f"{node.url}/c", 3 * per_node) for node in nodes for _ in range(2)]
        publishers = [
            threading.Thread(target=lambda n=n, node=node: publish_from(node, f"n{n}", per_node))
            for n, node in enumerate(nodes)
        ]
        for publisher in publishers:
            publisher.start()
        for publisher in publishers:
            publisher.join(PATIENCE)
        sequences = [collector.result() for collector in collectors]
    first = sequences[0]
    assert len(first) == 3 * per_node
    assert all(sequence == first for sequence in sequences[1:]), "one order for all"
    for n in range(3):
        mine = [data for _, data in first if data.startswith(f"n{n}:")]
        assert mine == [f"n{n}:{i}" for i in range(per_node)]


def publish_from(node: Demo, name: str, count: int) -> None:
    with client() as http:
        assert http.get(f"{node.url}/publish", params={"name": name, "count": count}).text == "ok"


def test_a_client_resumes_on_another_node_where_it_left_off(node_script: Path, redis: RedisServer) -> None:
    with start_node(node_script, redis) as a, start_node(node_script, redis) as b, client() as http:
        first = Collector(f"{a.url}/c", 5)
        publish_from(a, "e", 10)
        seen = first.result()
        last_id = seen[-1][0]
        # The id is the broker's: b knows where it is, though b never sent it.
        rest = Collector(f"{b.url}/c", 5, **{"last-event-id": last_id}).result()
        assert [data for _, data in seen + rest] == [f"e:{i}" for i in range(10)]
        confirmed = http.get(f"{b.url}/confirm", params={"data": "x"}).text
        assert confirmed.count("-") == 1 and confirmed > last_id
        # Presence counts every node's subscribers (reported every 2 s).
        with httpx_sse.connect_sse(http, "GET", f"{a.url}/c"):
            wait_for(lambda: http.get(f"{b.url}/presence").json() == [0, 1], "b to count a's subscriber")


def test_redis_killed_and_restarted_with_its_data_loses_nothing(node_script: Path, tmp_path: Path) -> None:
    redis = RedisServer(tmp_path / "aof", persistent=True)
    redis.start()
    try:
        with start_node(node_script, redis) as a, start_node(node_script, redis) as b, client() as http:
            on_b = Collector(f"{b.url}/c", 40)
            publish_from(a, "before", 20)
            redis.kill()
            # Publishes while Redis is down wait in a's queue.
            publish_from(a, "during", 20)
            wait_for(lambda: not http.get(f"{a.url}/broker").json()["connected"], "a to see the fault")
            fault = http.get(f"{a.url}/broker").json()
            assert fault["faults"] >= 1 and fault["last_error"] and fault["queued"] > 0
            redis.start()
            data = [data for _, data in on_b.result()]
            assert data == [f"before:{i}" for i in range(20)] + [f"during:{i}" for i in range(20)]
            wait_for(lambda: http.get(f"{a.url}/broker").json()["connected"], "a to reconnect")
            healed = http.get(f"{a.url}/broker").json()
            assert healed["reconnects"] >= 1 and healed["gaps"] == 0 and healed["queued"] == 0
    finally:
        redis.kill()


def test_a_node_killed_and_restarted_serves_resumes_again(node_script: Path, redis: RedisServer) -> None:
    killed = subprocess.Popen([sys.executable, str(node_script), redis.url], stdout=subprocess.PIPE, text=True)
    try:
        assert killed.stdout is not None
        opened = re.search(r"open (http://\S+)/", killed.stdout.readline())
        assert opened, "the node did not start"
        url = opened.group(1)
        first = Collector(f"{url}/c", 10)
        with client() as http:
            assert http.get(f"{url}/publish", params={"name": "e", "count": 15}).text == "ok"
        last_id = first.result()[-1][0]
        # Confirmed: everything is in Redis before the kill.
        with client() as http:
            http.get(f"{url}/confirm", params={"data": "last"})
    finally:
        killed.kill()  # SIGKILL: no stop, no goodbye to Redis
        killed.wait()
        if killed.stdout is not None:
            killed.stdout.close()
    # A new process, never part of the first half: its history comes from Redis.
    with start_node(node_script, redis) as again:
        rest = Collector(f"{again.url}/c", 6, **{"last-event-id": last_id}).result()
    assert [data for _, data in rest] == [f"e:{i}" for i in range(10, 15)] + ["last"]


def test_four_workers_on_one_port_are_one_server(tmp_path: Path, redis: RedisServer) -> None:
    (tmp_path / "cluster_app.py").write_text(APP)
    command = [sys.executable, "-m", "tidings", "run", "cluster_app:app", "--app-dir", str(tmp_path)]
    command += ["--port", "0", "--workers", "4", "--broker", redis.url, "--no-access-log"]
    with serving(command) as running:
        # Subscribers until every worker serves some (the kernel spreads
        # connections among the listening workers).
        subscribers: list[Collector] = []
        served_by: set[str] = set()
        deadline = time.monotonic() + PATIENCE
        while len(served_by) < 4:
            assert time.monotonic() < deadline, f"only workers {served_by} took subscribers"
            subscriber = Collector(f"{running.url}/events", 20)
            subscribers.append(subscriber)
            served_by.add(subscriber.headers["x-pid"])
            assert len(subscribers) < 200
        # Publishes land on whichever worker takes the connection.
        publishers = set()
        for i in range(20):
            with client() as fresh:
                publishers.add(fresh.post(f"{running.url}/publish/p{i}").json()["pid"])
        assert len(publishers) >= 2
        expected = [f"p{i}" for i in range(20)]
        for subscriber in subscribers:
            assert [data for _, data in subscriber.result()] == expected


def test_broker_settings_are_checked() -> None:
    with pytest.raises(tidings.ConfigError, match="redis://"):
        tidings.Server(broker="http://127.0.0.1:6379")
    with pytest.raises(tidings.ConfigError, match="broker_queue"):
        tidings.Server(broker="redis://127.0.0.1:1/0", broker_queue=0)
    assert tidings.Server().stats()["broker"] is None


def test_a_tls_brokers_ca_file_is_read_when_the_server_is_made(tmp_path: Path) -> None:
    # The connection itself is the core's (core/tests/cluster.rs runs Redis over TLS).
    with pytest.raises(tidings.ConfigError, match="missing-ca.pem"):
        tidings.Server(broker="rediss://127.0.0.1:1/0", broker_ca=tmp_path / "missing-ca.pem")
    (tmp_path / "empty.pem").write_text("no certificate\n")
    with pytest.raises(tidings.ConfigError, match="no PEM certificate"):
        tidings.Server(broker="rediss://127.0.0.1:1/0", broker_ca=str(tmp_path / "empty.pem"))
    with pytest.raises(tidings.ConfigError, match="rediss://"):
        tidings.Server(broker="redis://127.0.0.1:1/0", broker_ca=tmp_path / "empty.pem")


def test_tidings_run_hands_the_broker_and_its_ca_to_the_apps_server(monkeypatch: pytest.MonkeyPatch) -> None:
    from tidings._default import with_broker_from_environment

    monkeypatch.setenv("TIDINGS_BROKER", "rediss://redis.internal:6380/0")
    monkeypatch.setenv("TIDINGS_BROKER_CA", "/etc/redis/ca.pem")
    assert with_broker_from_environment({"port": 1}) == {
        "port": 1, "broker": "rediss://redis.internal:6380/0", "broker_ca": "/etc/redis/ca.pem"}
    # What the app gives wins.
    given = {"broker": "redis://other:6379/0"}
    assert with_broker_from_environment(given) == given


def test_a_full_queue_raises_broker_error_while_redis_is_unreachable() -> None:
    from helpers import free_port

    server = tidings.Server("127.0.0.1", 0, broker=f"redis://127.0.0.1:{free_port()}/0", broker_queue=2, drain_timeout=0.2)
    channel = server.channel("/c")
    server.start()
    try:
        with pytest.raises(tidings.BrokerError, match="unreachable"):
            for n in range(1000):
                channel.publish(str(n))
        assert issubclass(tidings.BrokerError, ConnectionError)
        wait_for(lambda: server.stats()["broker"]["faults"] > 0, "the fault in stats")
        assert server.stats()["broker"]["refused"] >= 1
    finally:
        server.stop()


def wait_for(condition: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + PATIENCE
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_publish_confirmed_without_a_broker_answers_at_once(server: tidings.Server) -> None:
    channel = server.channel("/c")
    server.start()
    first, second = channel.publish_confirmed("x"), channel.publish_confirmed("y")
    assert first is not None and second is not None
    assert first.endswith("-1") and second.endswith("-2")
    assert channel.publish_confirmed("z", id="mine") == "mine"
    assert os.environ.get("TIDINGS_BROKER") is None
