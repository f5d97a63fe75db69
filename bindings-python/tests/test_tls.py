"""TLS and HTTP/2 from Python: a CA made per test (trustme), real clients
(httpx over HTTP/1.1 and HTTP/2, curl, the ssl module), certificate reload,
the ASGI scope's scheme, and a reset h2 stream cancelling one ASGI response
while its sibling on the same connection goes on."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import h2.config
import h2.connection
import h2.errors
import h2.events
import httpx
import httpx_sse
import pytest

import tidings
from helpers import PATIENCE, Pki, chromium, serving


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path)


@contextlib.contextmanager
def tls_server(pki: Pki, **options: Any) -> Iterator[tidings.Server]:
    server = tidings.Server("127.0.0.1", 0, tls_cert=pki.cert, tls_key=pki.key, **options)
    try:
        yield server
    finally:
        server.stop()


def wait_for(what: str, condition: Any) -> None:
    deadline = time.monotonic() + PATIENCE
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for: {what}"
        time.sleep(0.01)


def test_httpx_reads_a_channel_over_tls_on_http1_and_http2(pki: Pki) -> None:
    with tls_server(pki) as server:
        channel = server.channel("/c")
        server.start()
        assert server.url is not None and server.url.startswith("https://")
        for http2, version in ((False, "HTTP/1.1"), (True, "HTTP/2")):
            with pki.client(http2=http2) as http, httpx_sse.connect_sse(http, "GET", f"{server.url}/c") as source:
                assert source.response.http_version == version
                wait_for("subscribed", lambda: channel.subscribers == 1)
                channel.publish("over " + version, id=version)
                event = next(source.iter_sse())
                assert (event.data, event.id) == ("over " + version, version)
            wait_for("unsubscribed", lambda: channel.subscribers == 0)


def test_twenty_event_streams_share_one_h2_connection(pki: Pki) -> None:
    with tls_server(pki) as server:
        channel = server.channel("/c")
        server.start()
        with pki.client(http2=True) as http, contextlib.ExitStack() as stack:
            sources = [stack.enter_context(httpx_sse.connect_sse(http, "GET", f"{server.url}/c")) for _ in range(20)]
            wait_for("20 subscribers", lambda: channel.subscribers == 20)
            assert server.stats()["connections_open"] == 1
            channel.publish("to all twenty")
            for source in sources:
                assert source.response.http_version == "HTTP/2"
                assert next(source.iter_sse()).data == "to all twenty"


def test_curl_speaks_http2_over_tls_to_a_stream(pki: Pki) -> None:
    curl = shutil.which("curl")
    if curl is None:
        pytest.fail("curl is missing: install it (bash .ci/run does)")
    with tls_server(pki) as server:

        @server.stream("/count")
        async def count(request: tidings.Request) -> Any:
            yield f"{request.scheme} {request.headers.get('host')}"
            for n in range(3):
                yield str(n)

        server.start()
        assert server.url is not None
        done = subprocess.run(
            [curl, "-sS", "-N", "--http2", "--cacert", str(pki.ca_file), "-w", "\nversion %{http_version}\n",
             "--max-time", str(PATIENCE), f"{server.url}/count"],
            capture_output=True, text=True, timeout=PATIENCE * 2, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        host = server.url.removeprefix("https://")
        assert f"data: https {host}\n" in done.stdout
        assert [line for line in done.stdout.splitlines() if line.startswith("data: ")][1:] == [
            "data: 0",
            "data: 1",
            "data: 2",
        ]
        assert done.stdout.rstrip().endswith("version 2")


def test_reload_tls_swaps_the_certificate_for_new_connections_only(pki: Pki) -> None:
    with tls_server(pki) as server:
        channel = server.channel("/c")
        server.start()
        port = int(server.url.rsplit(":", 1)[1]) if server.url else 0
        before = pki.served_certificate(port)
        with pki.client() as http, httpx_sse.connect_sse(http, "GET", f"{server.url}/c") as source:
            wait_for("subscribed", lambda: channel.subscribers == 1)
            pki.issue()
            server.reload_tls()
            after = pki.served_certificate(port)
            assert after != before
            channel.publish("still connected")
            assert next(source.iter_sse()).data == "still connected"
        pki.cert.write_text("not a certificate")
        with pytest.raises(tidings.ConfigError, match="PEM"):
            server.reload_tls()
        assert pki.served_certificate(port) == after
    plain = tidings.Server("127.0.0.1", 0)
    with pytest.raises(tidings.ConfigError, match="tls_cert"):
        plain.reload_tls()


def test_bad_tls_options_raise_config_error(pki: Pki, tmp_path: Path) -> None:
    with pytest.raises(tidings.ConfigError, match="go together"):
        tidings.Server(tls_cert=pki.cert)
    with pytest.raises(tidings.ConfigError, match="missing.pem"):
        tidings.Server(tls_cert=tmp_path / "missing.pem", tls_key=pki.key)
    (tmp_path / "other").mkdir()
    other = Pki(tmp_path / "other")
    with pytest.raises(tidings.ConfigError, match="does not serve"):
        tidings.Server(tls_cert=pki.cert, tls_key=other.key)
    with pytest.raises(tidings.ConfigError, match="max_streams_per_connection"):
        tidings.Server(max_streams_per_connection=0)


def test_a_plain_client_on_the_tls_port_is_counted_and_the_rest_goes_on(pki: Pki) -> None:
    with tls_server(pki) as server:
        channel = server.channel("/c", history=10)
        server.start()
        channel.publish("seen", id="1")
        channel.publish("kept", id="2")
        plain_url = server.url.replace("https://", "http://") if server.url else ""
        with httpx.Client(trust_env=False, timeout=PATIENCE) as http, pytest.raises(httpx.HTTPError):
            http.get(f"{plain_url}/c")
        wait_for("counted", lambda: server.stats()["tls_handshakes_failed"] == 1)
        with pki.client() as http, httpx_sse.connect_sse(
            http, "GET", f"{server.url}/c", headers={"last-event-id": "1"}
        ) as source:
            assert next(source.iter_sse()).data == "kept"


# Chromium: 20 EventSources on one HTTP/2 connection ----------------------------

TWENTY_SOURCES = """<!doctype html>
<meta charset="utf-8">
<script>
  window.received = Array(20).fill(0)
  window.sources = Array.from({ length: 20 }, (_, n) => {
    const source = new EventSource('/c?n=' + n)
    source.onmessage = () => { window.received[n] += 1 }
    return source
  })
</script>
"""


def test_chromium_multiplexes_twenty_event_sources_on_one_h2_connection(pki: Pki, tmp_path: Path) -> None:
    page_file = tmp_path / "twenty.html"
    page_file.write_text(TWENTY_SOURCES)
    with tls_server(pki) as server:
        channel = server.channel("/c")
        server.page("/", page_file)
        server.start()
        # Trusts the test certificate by its public key (no CA install).
        with chromium(f"--ignore-certificate-errors-spki-list={pki.spki_hash()}") as browser:
            page = browser.new_page()
            page.goto(f"{server.url}/")
            # Over HTTP/1.1, Chromium's 6 connections per host would hold 14 back.
            wait_for("20 subscribers", lambda: channel.subscribers == 20)
            assert server.stats()["connections_open"] == 1
            channel.publish("to every source")
            page.wait_for_function("window.received.every((count) => count === 1)")
            protocols = page.evaluate(
                "[...new Set(performance.getEntriesByType('resource').map((entry) => entry.nextHopProtocol))]"
            )
            assert protocols == ["h2"]
            page.evaluate("window.sources[0].close()")
            wait_for("one subscription ended", lambda: channel.subscribers == 19)
            channel.publish("to the other 19")
            page.wait_for_function("window.received.slice(1).every((count) => count === 2)")
            assert page.evaluate("window.received[0]") == 1
            assert server.stats()["connections_open"] == 1
            page.close()


# ASGI over HTTP/2: the granian #917 case --------------------------------------


def test_a_reset_h2_stream_disconnects_its_asgi_response_only(pki: Pki) -> None:
    """Two SSE responses of one app on one h2 connection: the client
    resetting one (RST_STREAM) must end that one's app, while the other
    keeps streaming on the same connection."""
    disconnected: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        name = scope["path"].strip("/")
        assert scope["scheme"] == "https" and scope["http_version"] == "2"
        await send({
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/event-stream")],
        })  # fmt: skip
        assert (await receive())["type"] == "http.request"  # the empty body
        disconnect = asyncio.ensure_future(receive())
        n = 0
        try:
            while not disconnect.done():
                await send({"type": "http.response.body", "body": f"data: {name} {n}\n\n".encode(), "more_body": True})
                n += 1
                await asyncio.wait([disconnect], timeout=0.02)
            assert disconnect.result()["type"] == "http.disconnect"
        finally:
            # Told by `http.disconnect`, or cancelled (as tidings does to an
            # app still responding to a client that left): either way, ended.
            disconnected.append(name)

    with tls_server(pki) as server:
        server.mount(app, lifespan="off")
        server.start()
        port = int(server.url.rsplit(":", 1)[1]) if server.url else 0
        # httpx closes an h2 response without resetting its stream, so the
        # client here is the `h2` package over an ssl socket.
        with RawH2(pki, port) as client:
            kept = client.get("/kept")
            closed = client.get("/closed")
            client.read_until(lambda: b"data: closed" in client.data[closed] and b"data: kept" in client.data[kept])
            client.reset(closed)
            wait_for("the closed one's app was told", lambda: disconnected == ["closed"])
            received = len(client.data[kept])
            client.read_until(lambda: len(client.data[kept]) > received + 1000)
            assert kept not in client.ended
            assert server.stats()["connections_open"] == 1
        wait_for("both told", lambda: sorted(disconnected) == ["closed", "kept"])


class RawH2:
    """An HTTP/2 client over TLS (the `h2` package): streams opened and reset
    by hand, DATA collected per stream."""

    def __init__(self, pki: Pki, port: int) -> None:
        context = pki.context()
        context.set_alpn_protocols(["h2"])
        raw = socket.create_connection(("127.0.0.1", port), timeout=PATIENCE)
        self.sock = context.wrap_socket(raw, server_hostname="127.0.0.1")
        assert self.sock.selected_alpn_protocol() == "h2"
        self.authority = f"127.0.0.1:{port}"
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        self.data: dict[int, bytes] = collections.defaultdict(bytes)
        self.ended: set[int] = set()
        self._flush()

    def __enter__(self) -> RawH2:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def get(self, path: str) -> int:
        stream = int(self.conn.get_next_available_stream_id())
        headers = [(":method", "GET"), (":scheme", "https"), (":authority", self.authority), (":path", path)]
        self.conn.send_headers(stream, headers, end_stream=True)
        self._flush()
        return stream

    def reset(self, stream: int) -> None:
        self.conn.reset_stream(stream, h2.errors.ErrorCodes.CANCEL)
        self._flush()

    def read_until(self, condition: Any) -> None:
        deadline = time.monotonic() + PATIENCE
        while not condition():
            assert time.monotonic() < deadline, "not received in time"
            chunk = self.sock.recv(65536)
            assert chunk, "the server closed the connection"
            for event in self.conn.receive_data(chunk):
                if isinstance(event, h2.events.DataReceived):
                    self.data[event.stream_id] += event.data
                    self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, (h2.events.StreamEnded, h2.events.StreamReset)):
                    self.ended.add(event.stream_id)
            self._flush()

    def _flush(self) -> None:
        self.sock.sendall(self.conn.data_to_send())


# tidings run --ssl-certfile ----------------------------------------------------

SCHEME_APP = """
from fastapi import FastAPI, Request

app = FastAPI()


@app.get("/scheme")
def scheme(request: Request) -> dict[str, str]:
    return {"scheme": request.url.scheme, "version": request.scope["http_version"]}
"""


def test_tidings_run_serves_https_and_reloads_on_sighup(pki: Pki, tmp_path: Path) -> None:
    (tmp_path / "scheme_app.py").write_text(SCHEME_APP)
    command = [
        sys.executable, "-m", "tidings", "run", "scheme_app:app", "--app-dir", str(tmp_path), "--port", "0",
        "--ssl-certfile", str(pki.cert), "--ssl-keyfile", str(pki.key),
    ]  # fmt: skip
    with serving(command, env=dict(os.environ)) as running:
        assert running.url.startswith("https://")
        with pki.client(http2=True) as http:
            assert http.get(f"{running.url}/scheme").json() == {"scheme": "https", "version": "2"}
        port = int(running.url.rsplit(":", 1)[1])
        before = pki.served_certificate(port)
        pki.issue()
        running.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + PATIENCE
        while pki.served_certificate(port) == before:
            assert time.monotonic() < deadline, "SIGHUP did not reload the certificate"
            time.sleep(0.05)


def test_tidings_run_refuses_a_certificate_without_its_key(pki: Pki) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tidings", "run", "x:app", "--ssl-certfile", str(pki.cert)],
        capture_output=True, text=True, timeout=PATIENCE * 3, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr  # EXIT_USAGE, as for an app that cannot load
    assert "--ssl-keyfile" in done.stderr
