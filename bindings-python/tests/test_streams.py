"""Stream routes: every kind of producer, what the client gets, and what
happens to the producer when the client leaves or the producer fails."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time

import httpx_sse
import pytest

import tidings
from helpers import PATIENCE, client, events


def wait_until(condition, what: str) -> None:
    deadline = time.monotonic() + PATIENCE
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_async_generator_stream(server: tidings.Server) -> None:
    @server.stream("/s")
    async def numbers(request):
        for n in range(3):
            yield {"event": "n", "id": str(n), "data": {"n": n}}
            await asyncio.sleep(0)

    server.start()
    got = [(e.event, e.id, e.data) for e in events(f"{server.url}/s")]
    assert got == [("n", "0", '{"n":0}'), ("n", "1", '{"n":1}'), ("n", "2", '{"n":2}')]


def test_sync_generator_runs_off_the_event_loop(server: tidings.Server) -> None:
    threads = []

    @server.stream("/s")
    def numbers(request):
        threads.append(threading.current_thread().name)
        yield "one"
        time.sleep(0.05)  # blocking is fine here: this is not the loop's thread
        yield tidings.Event("two", event="second")

    server.start()
    got = [(e.event, e.data) for e in events(f"{server.url}/s")]
    assert got == [("message", "one"), ("second", "two")]
    assert threads == ["tidings-sync-stream"]


def test_functions_returning_generators_and_request_details(server: tidings.Server) -> None:
    seen = {}

    @server.stream("/plain")
    def plain(request):
        seen.update(
            path=request.path,
            query=request.query,
            last=request.last_event_id,
            agent=request.headers.get("user-agent"),
            client=request.client[0],
        )

        async def produce():
            yield f"hello {request.query['name']}"

        return produce()

    @server.stream("/coro")
    async def coro(request):
        await asyncio.sleep(0)
        return iter(["from a coroutine"])

    server.start()
    assert [e.data for e in events(f"{server.url}/plain?name=ada+b", **{"last-event-id": "41", "user-agent": "t"})] == [
        "hello ada b"
    ]
    assert seen == {"path": "/plain", "query": {"name": "ada b"}, "last": "41", "agent": "t", "client": "127.0.0.1"}
    assert [e.data for e in events(f"{server.url}/coro")] == ["from a coroutine"]


def test_http_error_before_the_first_item_answers_that_status(server: tidings.Server) -> None:
    @server.stream("/p")
    def progress(request):
        if not request.query.get("session_id", "").isdigit():
            raise tidings.HTTPError(400, "session_id must be an integer")
        return iter(["ok"])

    @server.stream("/broken")
    def broken(request):
        raise RuntimeError("handler bug")

    @server.stream("/wrong")
    def wrong(request):
        return 42

    server.start()
    with client() as http:
        refused = http.get(f"{server.url}/p?session_id=x")
        assert (refused.status_code, refused.text) == (400, "session_id must be an integer\n")
        assert refused.headers["content-type"] == "text/plain; charset=utf-8"
        assert http.get(f"{server.url}/broken").status_code == 500
        assert http.get(f"{server.url}/wrong").status_code == 500
    assert [e.data for e in events(f"{server.url}/p?session_id=3")] == ["ok"]


def test_a_raising_generator_ends_with_an_error_event_and_is_logged(
    server: tidings.Server, caplog: pytest.LogCaptureFixture
) -> None:
    @server.stream("/fails")
    async def fails(request):
        yield "before"
        raise ValueError("secret detail")

    @server.stream("/bad-item")
    async def bad_item(request):
        yield "fine"
        yield 3.14

    @server.stream("/bad-field")
    async def bad_field(request):
        yield {"event": "in\njected", "data": "x"}

    server.start()
    with caplog.at_level(logging.ERROR, logger="tidings"):
        got = [(e.event, e.data) for e in events(f"{server.url}/fails")]
        assert got == [("message", "before"), ("error", "stream failed")]
        assert [e.event for e in events(f"{server.url}/bad-item")] == ["message", "error"]
        assert [e.event for e in events(f"{server.url}/bad-field")] == ["error"]
    assert "secret detail" not in "".join(e.data for e in events(f"{server.url}/fails"))
    messages = "\n".join(record.getMessage() + str(record.exc_info) for record in caplog.records)
    assert "secret detail" in messages and "/fails" in messages
    assert "InvalidEventError" in messages


def test_100_clients_leaving_mid_stream_close_every_generator(server: tidings.Server) -> None:
    started = threading.Semaphore(0)
    finished = []

    @server.stream("/forever")
    async def forever(request):
        started.release()
        try:
            while True:
                yield "tick"
                await asyncio.sleep(0.01)
        finally:
            finished.append(time.monotonic())

    server.start()
    sockets = []
    for _ in range(100):
        conn = socket.create_connection(("127.0.0.1", server.port))
        conn.sendall(b"GET /forever HTTP/1.1\r\nhost: x\r\n\r\n")
        sockets.append(conn)
    for _ in range(100):
        assert started.acquire(timeout=PATIENCE)
    for conn in sockets:
        assert b"tick" in conn.recv(4096) or b"tick" in conn.recv(4096)
    left = time.monotonic()
    for conn in sockets:
        conn.close()
    wait_until(lambda: len(finished) == 100, "every generator's finally")
    assert max(finished) - left < 1.0, "a generator outlived its client by more than a second"
    wait_until(lambda: server.stats()["streams_open"] == 0, "streams released")


def test_a_slow_client_slows_only_its_own_producer_and_loses_nothing() -> None:
    native = tidings.Server("127.0.0.1", 0, stream_queue=2)

    @native.stream("/burst")
    async def burst(request):
        for n in range(2000):
            yield str(n)

    native.start()
    try:
        with client() as http, httpx_sse.connect_sse(http, "GET", f"{native.url}/burst") as source:
            received = []
            for event in source.iter_sse():
                received.append(int(event.data))
                if len(received) % 500 == 0:
                    time.sleep(0.05)  # read slowly: the producer must wait, not drop
        assert received == list(range(2000))
    finally:
        native.stop()


def test_a_generator_that_yields_nothing_answers_an_empty_stream(server: tidings.Server) -> None:
    @server.stream("/empty")
    async def empty(request):
        return
        yield  # an async generator that yields nothing

    server.start()
    with client() as http:
        response = http.get(f"{server.url}/empty")
    # The generator was accepted (200) and ended at once with no events.
    assert response.status_code == 200 and response.text == ""
