"""The server's lifecycle and surroundings: start and stop in every style,
errors of misuse, routes, pages, CORS, stats, and threads left behind."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Callable, Iterator

import pytest

import tidings
from helpers import PATIENCE, client, events


def raw_request(port: int | None, text: str) -> bytes:
    """Sends `text` as it is and returns everything until the server closes."""
    assert port is not None
    with socket.create_connection(("127.0.0.1", port), timeout=PATIENCE) as conn:
        conn.sendall(text.encode())
        reply = b""
        while chunk := conn.recv(65536):
            reply += chunk
        return reply


def engine_threads() -> list[str]:
    """OS threads of this process that tidings started (names are per-OS-thread)."""
    names = []
    for task in Path("/proc/self/task").iterdir():
        name = (task / "comm").read_text().strip()
        if name.startswith("tidings-"):
            names.append(name)
    return names


def test_start_stop_leaves_no_threads_behind() -> None:
    server = tidings.Server("127.0.0.1", 0)
    server.channel("/c")
    server.start()
    assert server.running and server.port and server.url == f"http://127.0.0.1:{server.port}"
    assert engine_threads()
    server.stop()
    assert not server.running and server.port is None
    wait_until(lambda: engine_threads() == [], "every tidings thread ended")
    assert not [t for t in threading.enumerate() if t.name == "tidings-asyncio"]


def test_misuse_raises_clear_errors() -> None:
    server = tidings.Server("127.0.0.1", 0)
    channel = server.channel("/c")
    with pytest.raises(tidings.ConfigError, match="already registered"):
        server.channel("/c")
    with pytest.raises(tidings.ConfigError, match="must start with"):
        server.channel("nope")
    with pytest.raises(OSError, match="no/such/file"):
        server.page("/", "/no/such/file.html")
    server.start()
    with pytest.raises(tidings.ServerStateError, match="already running"):
        server.start()

    other = tidings.Server("127.0.0.1", server.port)
    loops_before = [t for t in threading.enumerate() if t.name == "tidings-asyncio"]
    with pytest.raises(OSError, match=f"127.0.0.1:{server.port}"):
        other.start()
    # A failed start leaves no loop thread behind.
    assert [t for t in threading.enumerate() if t.name == "tidings-asyncio"] == loops_before

    server.stop()
    server.stop()  # twice is fine
    with pytest.raises(tidings.ServerStoppedError):
        channel.publish("late")
    with pytest.raises(tidings.ServerStoppedError):
        server.start()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"keepalive": -1.0}, tidings.ConfigError, "keepalive"),
        ({"max_head_bytes": 10}, tidings.ConfigError, "max_head_bytes"),
        ({"cors": 5}, TypeError, "cors"),
        ({"port": 70000}, OverflowError, None),
    ],
)
def test_invalid_configuration(kwargs, error, match) -> None:
    with pytest.raises(error, match=match):
        tidings.Server("127.0.0.1", **kwargs)


def test_async_with_runs_handlers_on_the_running_loop() -> None:
    loops = []

    async def main() -> list[str]:
        server = tidings.Server("127.0.0.1", 0)

        @server.stream("/s")
        async def produce(request):
            loops.append(asyncio.get_running_loop())
            yield "from the caller's loop"

        async with server:
            url = server.url
            data = await asyncio.get_running_loop().run_in_executor(None, lambda: [e.data for e in events(f"{url}/s")])
            assert loops == [asyncio.get_running_loop()]
            return data

    assert asyncio.run(main()) == ["from the caller's loop"]
    wait_until(lambda: engine_threads() == [], "every tidings thread ended")


def test_run_stops_cleanly_on_sigint(tmp_path: Path) -> None:
    script = tmp_path / "serve.py"
    script.write_text(
        textwrap.dedent(
            """
            import tidings
            server = tidings.Server("127.0.0.1", 0)
            server.channel("/c")

            @server.route("/ready")
            def ready(request):
                return "yes"

            import threading
            def announce():
                import time
                while server.port is None:
                    time.sleep(0.01)
                print(server.port, flush=True)
            threading.Thread(target=announce, daemon=True).start()
            server.run()
            print("stopped", flush=True)
            """
        )
    )
    process = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    port = int(process.stdout.readline())
    with client() as http:
        assert http.get(f"http://127.0.0.1:{port}/ready").text == "yes"
    process.send_signal(signal.SIGINT)
    out, _ = process.communicate(timeout=PATIENCE)
    assert process.returncode == 0
    assert out.strip() == "stopped"


def test_stop_sends_the_farewell_after_queued_events(server: tidings.Server) -> None:
    channel = server.channel("/c")
    server.start()
    received: list[tuple[str, str]] = []
    subscribed = threading.Event()
    channel.on_subscribe(lambda request: subscribed.set())

    def read() -> None:
        received.extend((e.event, e.data) for e in events(f"{server.url}/c"))

    reader = threading.Thread(target=read)
    reader.start()
    assert subscribed.wait(PATIENCE)
    channel.publish("last news")
    server.stop(farewell={"event": "shutdown", "data": "bye"})
    reader.join(PATIENCE)
    assert received == [("message", "last news"), ("shutdown", "bye")]


def test_routes_pages_files_and_cors(tmp_path: Path) -> None:
    public = tmp_path / "public"
    public.mkdir()
    (public / "index.html").write_text("<h1>hi</h1>")
    (public / "app.js").write_text("1")
    (tmp_path / "secret.txt").write_text("outside the served directory")
    server = tidings.Server("127.0.0.1", 0, cors="*")
    server.page("/", public / "index.html")
    server.files("/static", public)

    @server.route("/hello")
    async def hello(request):
        await asyncio.sleep(0)
        return tidings.Response(f'{{"name":"{request.query.get("name")}"}}', content_type="application/json")

    @server.route("/teapot")
    def teapot(request):
        raise tidings.HTTPError(418, "short and stout")

    @server.route("/broken")
    def broken(request):
        raise RuntimeError("a bug in the route")

    server.start()
    try:
        with client() as http:
            page = http.get(f"{server.url}/")
            assert (page.text, page.headers["content-type"]) == ("<h1>hi</h1>", "text/html; charset=utf-8")
            assert http.get(f"{server.url}/static/app.js").headers["content-type"].startswith("text/javascript")
            # httpx would normalise these paths away: send the bytes as they are.
            for attempt in ("/static/../secret.txt", "/static/%2e%2e/secret.txt", "/static/..%2fsecret.txt"):
                reply = raw_request(server.port, f"GET {attempt} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
                assert reply.startswith(b"HTTP/1.1 404"), (attempt, reply)
                assert b"outside" not in reply, attempt
            hello = http.get(f"{server.url}/hello?name=ada")
            assert (hello.json(), hello.headers["content-type"]) == ({"name": "ada"}, "application/json")
            teapot = http.get(f"{server.url}/teapot")
            assert (teapot.status_code, teapot.text) == (418, "short and stout\n")
            broken = http.get(f"{server.url}/broken")
            assert (broken.status_code, broken.text) == (500, "route handler failed\n")
            assert http.get(f"{server.url}/hello").headers["access-control-allow-origin"] == "*"
    finally:
        server.stop()


def test_presence_hooks_and_stats(server: tidings.Server) -> None:
    channel = server.channel("/c")
    joined, left = [], []
    channel.on_subscribe(lambda request: joined.append(request.query.get("who")))
    channel.on_unsubscribe(lambda request: left.append(request.query.get("who")))
    server.start()
    with client() as http, http.stream("GET", f"{server.url}/c?who=ada") as response:
        assert response.status_code == 200
        deadline = PATIENCE
        while channel.subscribers != 1 and deadline > 0:
            deadline -= 0.01
            threading.Event().wait(0.01)
        channel.publish("x")
        stats = server.stats()
        assert stats["channels"]["/c"]["subscribers"] == 1
        assert stats["events_published"] == 1
    server.stop()
    assert joined == ["ada"] and left == ["ada"]


def test_publishing_from_a_handler_a_thread_and_during_stop_never_deadlocks() -> None:
    server = tidings.Server("127.0.0.1", 0, drain_timeout=2.0)
    feed = server.channel("/feed")

    @server.stream("/echo")
    async def echo(request):
        # Publishing from inside a handler, on the loop thread.
        feed.publish("from a handler")
        yield "published"

    server.start()
    stop_publishing = threading.Event()
    outcomes: list[str] = []

    def hammer() -> None:
        while not stop_publishing.is_set():
            try:
                feed.publish("from a thread")
            except tidings.ServerStoppedError:
                outcomes.append("stopped")
                return

    publisher = threading.Thread(target=hammer)
    publisher.start()
    assert [e.data for e in events(f"{server.url}/echo")] == ["published"]
    stopper = threading.Thread(target=server.stop)
    stopper.start()
    stopper.join(PATIENCE)
    assert not stopper.is_alive(), "stop() deadlocked with a publisher running"
    stop_publishing.set()
    publisher.join(PATIENCE)
    assert outcomes == ["stopped"]
    assert feed.events_published > 1


def test_engine_logs_reach_python_logging(caplog: pytest.LogCaptureFixture) -> None:
    server = tidings.Server("127.0.0.1", 0)
    with caplog.at_level(logging.INFO, logger="tidings"):
        server.start()
        server.stop()
    messages = [record.getMessage() for record in caplog.records if record.name == "tidings"]
    assert any(m.startswith("tidings listening addr=127.0.0.1:") for m in messages), messages
    assert any(m.startswith("tidings stopped") for m in messages), messages


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = PATIENCE
    while not condition():
        assert deadline > 0, f"timed out waiting for: {what}"
        deadline -= 0.01
        threading.Event().wait(0.01)


@pytest.mark.parametrize("where", ["on_subscribe", "stream handler", "route handler"])
def test_stop_from_a_callback_starts_the_stop_and_returns(where: str) -> None:
    server = tidings.Server("127.0.0.1", 0)
    channel = server.channel("/c")
    returned = threading.Event()

    def stop_here(*_args: object) -> str:
        server.stop()
        returned.set()
        return "stopping"

    if where == "on_subscribe":
        channel.on_subscribe(stop_here)
        path = "/c"
    elif where == "stream handler":

        async def stream(request: tidings.Request):  # type: ignore[no-untyped-def]
            stop_here()
            yield "never sent"

        server.stream("/s")(stream)
        path = "/s"
    else:
        server.route("/r")(stop_here)
        path = "/r"
    unraisable: list[object] = []
    previous_hook = sys.unraisablehook
    sys.unraisablehook = unraisable.append
    try:
        server.start()
        try:
            raw_request(server.port, f"GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        except OSError:
            pass  # the connection may end with the server
        assert returned.wait(PATIENCE), "stop() called from a callback did not return"
        wait_until(lambda: not server.running, "the server stopped")
        server.stop()  # from here: waits for what the callback started
        wait_until(lambda: engine_threads() == [], "every tidings thread ended")
    finally:
        sys.unraisablehook = previous_hook
    assert unraisable == []


def test_sync_generator_threads_are_finished_when_stop_returns() -> None:
    server = tidings.Server("127.0.0.1", 0, drain_timeout=1.0)
    started = threading.Event()

    @server.stream("/s")
    def endless(request: tidings.Request) -> Iterator[str]:
        started.set()
        while True:
            yield "tick"
            threading.Event().wait(0.05)

    server.start()
    with socket.create_connection(("127.0.0.1", server.port), timeout=PATIENCE) as conn:
        conn.sendall(b"GET /s HTTP/1.1\r\nhost: x\r\n\r\n")
        assert started.wait(PATIENCE)
        server.stop()
    assert [t.name for t in threading.enumerate() if t.name == "tidings-sync-stream"] == []


@pytest.mark.parametrize(
    "setting",
    [{"write_timeout": 1e19}, {"keepalive": 1e300}, {"drain_timeout": float("nan")}, {"head_timeout": -1.0}],
)
def test_durations_out_of_range_raise_config_errors(setting: dict[str, float]) -> None:
    name = next(iter(setting))
    with pytest.raises(tidings.ConfigError, match=name):
        tidings.Server("127.0.0.1", 0, **setting)  # type: ignore[arg-type]
    server = tidings.Server("127.0.0.1", 0)
    with pytest.raises(tidings.ConfigError, match="keepalive"):
        server.channel("/c", keepalive=1e19)


def test_callbacks_waiting_past_the_bound_are_refused_with_503_and_counted() -> None:
    server = tidings.Server("127.0.0.1", 0, max_pending_callbacks=4)
    release = threading.Event()
    entered = threading.Event()

    @server.route("/busy")
    def busy(request: tidings.Request) -> str:
        return "ok"

    channel = server.channel("/block")
    # Presence hooks run on the callback thread: this one holds it.
    channel.on_subscribe(lambda request: (entered.set(), release.wait(PATIENCE)))
    server.start()
    try:
        blocker = socket.create_connection(("127.0.0.1", server.port), timeout=PATIENCE)
        blocker.sendall(b"GET /block HTTP/1.1\r\nhost: x\r\n\r\n")
        assert entered.wait(PATIENCE)
        results: list[bytes] = []
        requests = [
            threading.Thread(
                target=lambda: results.append(
                    raw_request(server.port, "GET /busy HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
                )
            )
            for _ in range(10)
        ]
        for request in requests:
            request.start()
        wait_until(lambda: server.stats()["callbacks_refused"] == 6, "six refusals")
        release.set()
        for request in requests:
            request.join(PATIENCE)
        statuses = sorted(reply.split(b" ", 2)[1] for reply in results)
        assert statuses == [b"200"] * 4 + [b"503"] * 6
        blocker.close()
    finally:
        release.set()
        server.stop()
