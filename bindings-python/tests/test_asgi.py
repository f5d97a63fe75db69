"""The ASGI server: one small raw ASGI app per behaviour, mounted on a real
server on 127.0.0.1 and driven over TCP with httpx and raw sockets."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time
from typing import Any, Iterator

import httpx
import pytest

import tidings
from helpers import PATIENCE, client


def started(app: Any, **mount: Any) -> tidings.Server:
    server = tidings.Server("127.0.0.1", 0)
    server.mount(app, **mount)
    server.start()
    return server


@pytest.fixture
def serve() -> Iterator[Any]:
    """Mounts an app on a started server; every server is stopped after the test."""
    servers: list[tidings.Server] = []

    def run(app: Any, **mount: Any) -> tidings.Server:
        server = started(app, **mount)
        servers.append(server)
        return server

    yield run
    for server in servers:
        server.stop()


async def respond(send: Any, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers or []})
    await send({"type": "http.response.body", "body": body})


def jsonable(scope: dict[str, Any]) -> dict[str, Any]:
    out = dict(scope)
    out["headers"] = [[name.decode(), value.decode()] for name, value in scope["headers"]]
    out["raw_path"] = scope["raw_path"].decode()
    out["query_string"] = scope["query_string"].decode()
    out["extensions"] = scope.get("extensions", {})
    return out


def raw(url: str, request: bytes, *, until_close: bool = True) -> bytes:
    """Sends `request` bytes on a fresh connection; returns what comes back."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=PATIENCE) as conn:
        conn.sendall(request)
        received = b""
        while True:
            try:
                chunk = conn.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            received += chunk
            if not until_close and b"\r\n\r\n" in received:
                break
        return received


# The scope ------------------------------------------------------------------


def test_the_scope_has_every_field_the_spec_names(serve: Any) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            message = await receive()
            scope["state"]["db"] = "connected"
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.complete"})
            return
        await respond(send, 200, json.dumps(jsonable(scope)).encode())
        # What one request does to its scope stays in it.
        scope["state"]["db"] = "changed by one request"
        scope["asgi"]["version"] = "changed by one request"
        scope["extensions"]["tidings.channel"]["x"] = "changed by one request"

    server = serve(app)
    with client() as http:
        first = http.get(
            f"{server.url}/caf%C3%A9/a%2Fb?x=1&y=%20",
            headers=[("X-Tag", "one"), ("Accept", "a"), ("x-tag", "two")],
        ).json()
        second = http.get(f"{server.url}/").json()
    assert first["type"] == "http"
    assert first["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert first["http_version"] == "1.1"
    assert first["method"] == "GET"
    assert first["scheme"] == "http"
    assert first["path"] == "/café/a/b"
    assert first["raw_path"] == "/caf%C3%A9/a%2Fb"
    assert first["query_string"] == "x=1&y=%20"
    assert first["root_path"] == ""
    names = [name for name, _ in first["headers"]]
    assert all(name == name.lower() for name in names)
    assert [v for n, v in first["headers"] if n == "x-tag"] == ["one", "two"]
    assert first["client"][0] == "127.0.0.1" and first["client"][1] > 0
    assert first["server"] == ["127.0.0.1", server.port]
    assert "tidings.channel" in first["extensions"]
    # Each request gets its own shallow copy of the lifespan state.
    assert first["state"] == {"db": "connected"}
    assert second["state"] == {"db": "connected"}
    assert second["asgi"] == first["asgi"]
    assert second["extensions"] == first["extensions"] == {"tidings.channel": {}}


def test_root_path_and_trusted_proxy_headers(serve: Any) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        body = {k: scope[k] for k in ("path", "root_path", "scheme", "client")}
        body["raw_path"] = scope["raw_path"].decode()
        await respond(send, 200, json.dumps(body).encode())

    server = serve(app, root_path="/api", lifespan="off", forwarded_allow_ips="127.0.0.1")
    with client() as http:
        proxied = http.get(
            f"{server.url}/items", headers={"x-forwarded-proto": "https", "x-forwarded-for": "203.0.113.9, 10.0.0.1"}
        ).json()
    assert proxied["path"] == "/api/items"
    assert proxied["raw_path"] == "/api/items"
    assert proxied["root_path"] == "/api"
    assert proxied["scheme"] == "https"
    assert proxied["client"] == ["10.0.0.1", 0]

    untrusted = serve(app, lifespan="off", forwarded_allow_ips="192.0.2.1")
    with client() as http:
        direct = http.get(f"{untrusted.url}/", headers={"x-forwarded-proto": "https", "x-forwarded-for": "1.2.3.4"}).json()
    assert direct["scheme"] == "http"
    assert direct["client"][0] == "127.0.0.1"

    # Networks too, as uvicorn takes them: the loopback's /8 is trusted, another is not.
    for allowed, trusted in (("192.0.2.0/24, 127.0.0.0/8", True), ("10.0.0.0/8", False)):
        networks = serve(app, lifespan="off", forwarded_allow_ips=allowed)
        with client() as http:
            seen = http.get(f"{networks.url}/", headers={"x-forwarded-for": "198.51.100.7"}).json()
        assert (seen["client"][0] == "198.51.100.7") is trusted, (allowed, seen)


def test_bad_forwarded_allow_ips_are_refused() -> None:
    server = tidings.Server("127.0.0.1", 0)
    try:
        for bad in ("localhost", "10.0.0.0/33", "10.0.0.1/"):
            with pytest.raises(ValueError, match="not an IP address, a network"):
                server.mount(lambda *a: None, forwarded_allow_ips=bad)
        with pytest.raises(ValueError, match="lifespan"):
            server.mount(lambda *a: None, lifespan="sometimes")
    finally:
        server.stop()


# Request bodies -------------------------------------------------------------


def test_a_chunked_request_body_arrives_in_chunks_with_more_body(serve: Any) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        messages = []
        while True:
            message = await receive()
            messages.append(message)
            if not message.get("more_body"):
                break
        body = b"".join(m["body"] for m in messages)
        flags = [m["more_body"] for m in messages]
        await respond(send, 200, json.dumps({"body": body.decode(), "flags": flags}).encode())

    server = serve(app, lifespan="off")

    def chunks() -> Iterator[bytes]:
        for part in (b"one ", b"two ", b"three"):
            yield part
            time.sleep(0.05)

    with client() as http:
        answer = http.post(f"{server.url}/upload", content=chunks()).json()
        sized = http.post(f"{server.url}/upload", content=b"x" * 100).json()
        empty = http.get(f"{server.url}/").json()
    assert answer["body"] == "one two three"
    assert answer["flags"][-1] is False and len(answer["flags"]) >= 2
    assert sized == {"body": "x" * 100, "flags": [False]}
    assert empty == {"body": "", "flags": [False]}


def test_an_upload_waits_for_the_application_to_read_it(serve: Any) -> None:
    reading = threading.Event()
    received: list[int] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await asyncio.get_running_loop().run_in_executor(None, reading.wait, PATIENCE)
        total = 0
        while True:
            message = await receive()
            total += len(message["body"])
            if not message.get("more_body"):
                break
        received.append(total)
        await respond(send, 200, str(total).encode())

    server = serve(app, lifespan="off")
    size = 256 * 1024 * 1024
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=PATIENCE) as conn:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
        conn.sendall(f"POST /upload HTTP/1.1\r\nhost: x\r\ncontent-length: {size}\r\n\r\n".encode())
        conn.setblocking(False)
        block = b"u" * 65536
        sent = 0
        deadline = time.monotonic() + 2.0
        # Until the socket pushes back: the server stops reading while the
        # application does not, so far less than the body gets through.
        while time.monotonic() < deadline and sent < size:
            try:
                sent += conn.send(block)
            except BlockingIOError:
                time.sleep(0.01)
        assert sent < 64 * 1024 * 1024, f"{sent} bytes were taken before the application read any"
        reading.set()
        conn.setblocking(True)
        while sent < size:
            sent += conn.send(block[: min(len(block), size - sent)])
        reply = conn.recv(4096)
    assert reply.startswith(b"HTTP/1.1 200"), reply
    assert received == [size]


def test_continue_is_sent_once_the_application_reads(serve: Any) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        message = await receive()
        await respond(send, 200, message["body"])

    server = serve(app, lifespan="off")
    reply = raw(
        server.url,
        b"POST / HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
    )
    assert reply.startswith(b"HTTP/1.1 200"), reply
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=PATIENCE) as conn:
        conn.sendall(b"PUT / HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\ncontent-length: 4\r\n\r\n")
        assert conn.recv(1024).startswith(b"HTTP/1.1 100 Continue")
        conn.sendall(b"body")
        assert conn.recv(1024).endswith(b"body")


# Responses ------------------------------------------------------------------


def test_a_streamed_response_arrives_chunk_by_chunk(serve: Any) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        for n in range(3):
            await send({"type": "http.response.body", "body": f"part {n}\n".encode(), "more_body": True})
            await asyncio.sleep(0.05)
        await send({"type": "http.response.body"})

    server = serve(app, lifespan="off")
    with client() as http, http.stream("GET", f"{server.url}/") as response:
        assert response.headers["transfer-encoding"] == "chunked"
        lines = list(response.iter_lines())
    assert lines == ["part 0", "part 1", "part 2"]


def test_a_streaming_head_leaves_before_its_first_chunk(serve: Any) -> None:
    sending = threading.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        await asyncio.sleep(0.3)  # an event stream idle before its first event
        sending.set()
        await send({"type": "http.response.body", "body": b"data: first\n\n"})

    server = serve(app, lifespan="off")
    with client() as http, http.stream("GET", f"{server.url}/") as response:
        # The head arrived while the app had sent no body yet, as under uvicorn.
        assert not sending.is_set()
        assert response.status_code == 200
        assert response.read() == b"data: first\n\n"


def test_a_slow_reader_holds_the_application_back(serve: Any) -> None:
    progress: list[int] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        chunk = b"z" * 65536
        for n in range(1024):  # 64 MiB
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            progress.append(n)
        await send({"type": "http.response.body"})

    server = serve(app, lifespan="off")
    host, port = server.url.removeprefix("http://").split(":")
    with socket.socket() as conn:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        conn.settimeout(PATIENCE)
        conn.connect((host, int(port)))
        conn.sendall(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        time.sleep(0.5)
        ahead = len(progress) * 65536
        assert ahead < 32 * 1024 * 1024, f"the application ran {ahead} bytes ahead of its reader"
        received = 0
        while received < 1024 * 65536:
            chunk = conn.recv(1 << 20)
            assert chunk, "the response ended early"
            received += chunk.count(b"z")
    assert len(progress) == 1024


def test_head_requests_get_no_body_and_keep_alive_works(serve: Any) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await respond(send, 200, b"hello", [(b"content-length", b"5")])

    server = serve(app, lifespan="off")
    reply = raw(server.url, b"HEAD / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
    assert b"content-length: 5" in reply and reply.endswith(b"\r\n\r\n")
    with client() as http:
        for _ in range(3):
            assert http.get(f"{server.url}/").text == "hello"
    pipelined = raw(
        server.url,
        b"GET /a HTTP/1.1\r\nhost: x\r\n\r\nGET /b HTTP/1.1\r\nhost: x\r\n\r\n"
        b"GET /c HTTP/1.0\r\n\r\n",
    )
    assert pipelined.count(b"HTTP/1.1 200 OK") == 2
    assert pipelined.count(b"HTTP/1.0 200 OK") == 1  # and then the HTTP/1.0 connection closes
    assert pipelined.count(b"hello") == 3


def test_500_concurrent_requests_are_all_answered(serve: Any) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await asyncio.sleep(0.01)
        await respond(send, 200, scope["path"].encode())

    server = serve(app, lifespan="off")

    host, port = server.url.removeprefix("http://").split(":")

    # Raw connections: httpx's pool, not the server, is slow at 500 at once.
    async def one(n: int) -> str:
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(f"GET /{n} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n".encode())
        reply = await asyncio.wait_for(reader.read(), PATIENCE)
        writer.close()
        head, _, body = reply.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK"), head
        return body.decode()

    async def burst() -> list[str]:
        return list(await asyncio.gather(*(one(n) for n in range(500))))

    assert asyncio.run(burst()) == [f"/{n}" for n in range(500)]


# Errors ---------------------------------------------------------------------


def test_an_exception_before_the_start_is_a_500_with_a_logged_traceback(
    serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["path"] == "/raise":
            raise ValueError("the app broke")
        if scope["path"] == "/bad-header":
            await respond(send, 200, b"", [(b"bad header", b"x")])
        if scope["path"] == "/nothing":
            return
        await respond(send, 200, b"fine")

    server = serve(app, lifespan="off")
    with caplog.at_level(logging.ERROR, logger="tidings"), client() as http:
        for path in ("/raise", "/bad-header", "/nothing"):
            assert http.get(f"{server.url}{path}").status_code == 500, path
        assert http.get(f"{server.url}/ok").text == "fine"
    failures = [r for r in caplog.records if "failed" in r.getMessage() or "returned without" in r.getMessage()]
    assert any(r.exc_info and "the app broke" in str(r.exc_info[1]) for r in failures)
    assert any("returned without completing" in r.getMessage() for r in failures)


def test_an_exception_after_the_start_closes_the_connection(serve: Any) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"100")]})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise RuntimeError("mid-response")

    server = serve(app, lifespan="off")
    with client() as http, pytest.raises(httpx.RemoteProtocolError):
        http.get(f"{server.url}/")
    with client() as http, pytest.raises(httpx.RemoteProtocolError):
        http.get(f"{server.url}/")  # and again: the server goes on


def test_websocket_requests_are_refused_with_403(serve: Any) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await respond(send, 200, b"http")

    server = serve(app, lifespan="off")
    reply = raw(
        server.url,
        b"GET /ws HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\nconnection: upgrade\r\n"
        b"sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n",
        until_close=False,
    )
    assert reply.startswith(b"HTTP/1.1 403"), reply
    with client() as http:
        assert http.get(f"{server.url}/").text == "http"


def test_malformed_and_oversized_requests_get_400_and_431(serve: Any) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await respond(send, 200, b"ok")

    server = serve(app, lifespan="off")
    assert raw(server.url, b"NOT HTTP AT ALL\r\n\r\n").startswith(b"HTTP/1.1 400")
    huge = b"GET / HTTP/1.1\r\nhost: x\r\nx-big: " + b"a" * 20000 + b"\r\n\r\n"
    assert raw(server.url, huge).startswith(b"HTTP/1.1 431")
    bad_length = b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: nope\r\n\r\n"
    assert raw(server.url, bad_length).startswith(b"HTTP/1.1 400")
    with client() as http:
        assert http.get(f"{server.url}/").text == "ok"


# Disconnects ----------------------------------------------------------------


def test_a_stream_idle_between_chunks_is_cancelled_within_a_second_of_the_client_leaving(serve: Any) -> None:
    cancelled = threading.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"first\n", "more_body": True})
        try:
            await asyncio.sleep(3600)  # idle: nothing more is sent
        except asyncio.CancelledError:
            cancelled.set()
            raise

    server = serve(app, lifespan="off")
    with client() as http, http.stream("GET", f"{server.url}/") as response:
        assert next(response.iter_lines()) == "first"
    left = time.monotonic()
    assert cancelled.wait(PATIENCE), "the application was never told"
    assert time.monotonic() - left < 1.0


def test_receive_says_disconnect_once_the_client_leaves(serve: Any) -> None:
    seen: list[str] = []
    done = threading.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()  # the (empty) body
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"hi\n", "more_body": True})
        try:
            seen.append((await receive())["type"])
        finally:
            done.set()

    server = serve(app, lifespan="off")
    with client() as http, http.stream("GET", f"{server.url}/") as response:
        next(response.iter_lines())
    assert done.wait(PATIENCE)
    # Either the task saw the message or it was cancelled first; never a hang.
    assert seen in ([], ["http.disconnect"])


def test_send_after_the_client_left_raises_an_oserror(serve: Any) -> None:
    errors: list[BaseException] = []
    done = threading.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        async def answer_late() -> None:
            try:
                while (await receive())["type"] != "http.disconnect":
                    pass
                await respond(send, 200, b"too late")
            except OSError as error:
                errors.append(error)
            finally:
                done.set()

        # Shielded from the cancellation that the client's leaving brings.
        await asyncio.shield(answer_late())

    server = serve(app, lifespan="off")
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=PATIENCE) as conn:
        conn.sendall(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        time.sleep(0.1)
    assert done.wait(PATIENCE)
    assert len(errors) == 1 and isinstance(errors[0], tidings.ClientDisconnected)


# Lifespan -------------------------------------------------------------------


def lifespan_app(events: list[str], fail: str | None = None) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                kind = message["type"].split(".")[1]
                events.append(kind)
                if kind == fail:
                    await send({"type": f"lifespan.{kind}.failed", "message": f"{kind} broke"})
                    return
                await send({"type": f"lifespan.{kind}.complete"})
                if kind == "shutdown":
                    return
        await respond(send, 200, b"ok")

    return app


def test_lifespan_runs_startup_before_serving_and_shutdown_after() -> None:
    events: list[str] = []
    server = started(lifespan_app(events))
    assert events == ["startup"]
    with client() as http:
        assert http.get(f"{server.url}/").text == "ok"
    server.stop()
    assert events == ["startup", "shutdown"]


def test_a_failed_startup_stops_the_start() -> None:
    server = tidings.Server("127.0.0.1", 0)
    server.mount(lifespan_app([], fail="startup"))
    with pytest.raises(tidings.LifespanFailed, match="startup broke"):
        server.start()
    assert not server.running
    server.stop()


def test_lifespan_on_fails_for_an_app_without_it_and_auto_goes_on() -> None:
    async def http_only(scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "http", "no lifespan here"
        await respond(send, 200, b"ok")

    strict = tidings.Server("127.0.0.1", 0)
    strict.mount(http_only, lifespan="on")
    with pytest.raises(tidings.LifespanFailed):
        strict.start()
    strict.stop()
    relaxed = started(http_only)
    try:
        with client() as http:
            assert http.get(f"{relaxed.url}/").text == "ok"
    finally:
        relaxed.stop()

    async def ignores_lifespan(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return  # neither raises nor starts: as uvicorn, it is served
        await respond(send, 200, b"ok")

    for mode in ("auto", "on"):
        quiet = started(ignores_lifespan, lifespan=mode)
        try:
            with client() as http:
                assert http.get(f"{quiet.url}/").text == "ok"
        finally:
            quiet.stop()


# Beside tidings routes --------------------------------------------------------


def test_tidings_routes_win_and_the_app_gets_the_rest(serve: Any) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await respond(send, 200, f"app {scope['method']} {scope['path']}".encode())

    server = tidings.Server("127.0.0.1", 0)
    news = server.channel("/news", history=10)
    server.mount(app, lifespan="off")
    server.start()
    try:
        news.publish("first")
        with client() as http:
            assert http.get(f"{server.url}/other").text == "app GET /other"
            assert http.post(f"{server.url}/other").text == "app POST /other"
            with http.stream("GET", f"{server.url}/news", headers={"last-event-id": "unknown"}) as response:
                assert response.headers["content-type"].startswith("text/event-stream")
        assert server.stats()["channels"]["/news"]["events_published"] == 1
    finally:
        server.stop()


def test_a_stop_ends_a_response_that_never_ends() -> None:
    async def forever(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        while True:
            await send({"type": "http.response.body", "body": b".", "more_body": True})
            await asyncio.sleep(0.01)

    server = tidings.Server("127.0.0.1", 0, drain_timeout=0.5)
    server.mount(forever, lifespan="off")
    server.start()
    with client() as http, http.stream("GET", f"{server.url}/") as response:
        next(response.iter_bytes())
        began = time.monotonic()
        server.stop()
        assert time.monotonic() - began < PATIENCE
    assert not server.running
