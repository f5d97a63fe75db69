"""Test helpers shared by the Python package's tests and the cross-language
tests in ../../tests: an independent SSE client (httpx + httpx-sse, never
our own parser) and server processes on free ports."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import httpx
import httpx_sse
import jwt
import pytest
import trustme

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "python"
CHROMIUM = os.environ.get("TIDINGS_CHROMIUM", "/usr/bin/chromium")

# Generous bound for things that should happen "at once"; tests never assert speed.
PATIENCE = 10.0


def client() -> httpx.Client:
    """A plain HTTP client that ignores proxy settings (traffic stays on loopback)."""
    return httpx.Client(trust_env=False, timeout=PATIENCE)


def events(url: str, **headers: str) -> list[httpx_sse.ServerSentEvent]:
    """Every event of a finite stream."""
    with client() as http, httpx_sse.connect_sse(http, "GET", url, headers=headers) as source:
        return list(source.iter_sse())


class Demo:
    def __init__(self, process: subprocess.Popen[str], url: str) -> None:
        self.process = process
        self.url = url
        self.stderr: list[str] = []
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.stderr.append(line)

    def log(self) -> str:
        return "".join(self.stderr)

    def close(self) -> None:
        """Closes the pipes once the process has exited."""
        self._reader.join(PATIENCE)
        for pipe in (self.process.stdout, self.process.stderr):
            if pipe is not None:
                pipe.close()


def first_events(url: str, count: int, **headers: str) -> list[httpx_sse.ServerSentEvent]:
    """The first `count` events of an endless stream, then leaves."""
    received: list[httpx_sse.ServerSentEvent] = []
    with client() as http, httpx_sse.connect_sse(http, "GET", url, headers=headers) as source:
        for event in source.iter_sse():
            received.append(event)
            if len(received) == count:
                break
    return received


def assert_replays_the_match(received: list[httpx_sse.ServerSentEvent]) -> None:
    """The livescore contract: updates follow examples/data/match.json in
    order (looping), goals as `event: goal`, everything else unnamed."""
    match = json.loads((ROOT / "examples" / "data" / "match.json").read_text())
    updates = [json.loads(event.data) for event in received]
    start = match.index(updates[0])
    assert updates == [match[(start + i) % len(match)] for i in range(len(updates))]
    for event, update in zip(received, updates):
        assert event.event == ("goal" if update["event"]["type"] == "goal" else "message")


@contextlib.contextmanager
def demo(name: str, *args: str, port: int = 0) -> Iterator[Demo]:
    """Runs examples/python/<name>.py (on a free port unless given); Ctrl-C
    ends it, and it must exit cleanly."""
    with serving([sys.executable, str(EXAMPLES / f"{name}.py"), "--port", str(port), *args]) as running:
        yield running


@contextlib.contextmanager
def serving(
    command: list[str], stop_timeout: float = PATIENCE, env: dict[str, str] | None = None
) -> Iterator[Demo]:
    """Runs a server program that prints "<name>: open http(s)://host:port/",
    yields it, then sends Ctrl-C: it must exit cleanly (status 0)."""
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env
    )
    assert process.stdout is not None
    line = _readline(process, PATIENCE)
    match = re.search(r"open (https?://[^/\s]+)/", line)
    if not match:
        process.kill()
        raise AssertionError(f"{command[0]} printed {line!r}; stderr: {process.stderr.read() if process.stderr else ''}")
    running = Demo(process, match.group(1))
    try:
        yield running
    finally:
        process.send_signal(signal.SIGINT)
        try:
            code = process.wait(timeout=stop_timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            raise AssertionError(f"{command[0]} did not stop on Ctrl-C")
        finally:
            running.close()
        assert code == 0, f"{command[0]} exited with {code}: {running.log()}"


def _readline(process: subprocess.Popen[str], timeout: float) -> str:
    result: list[str] = []
    reader = threading.Thread(target=lambda: result.append(process.stdout.readline() if process.stdout else ""))
    reader.daemon = True
    reader.start()
    reader.join(timeout)
    return result[0] if result else ""


@contextlib.contextmanager
def chromium(*extra_args: str) -> Iterator[Any]:
    """Headless Debian Chromium driven by Playwright (no browser download),
    with `extra_args` on its command line."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (bash .ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--no-proxy-server",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                *extra_args,
            ],
        )
        try:
            yield instance
        finally:
            instance.close()


def assert_counter_page_counts_to_20_and_closes(browser: Any, url: str) -> None:
    """The counter page at `url`, in `browser`: its EventSource lists the 20
    values and the end, then stays closed (a closed EventSource never
    reconnects)."""
    page = browser.new_page()
    page.goto(url)
    page.wait_for_function("document.querySelector('#status').textContent === 'closed'")
    items = page.locator("#messages li").all_text_contents()
    assert items == [f"Counter value {n}" for n in range(1, 21)] + ["End of the stream"]
    assert page.evaluate("source.readyState") == 2
    page.close()


class RedisServer:
    """A redis-server of the test's own on a free loopback port, in its own
    directory; `kill` ends it with SIGKILL (no last save), `start` brings it
    back on the same port."""

    def __init__(self, directory: Path, persistent: bool = False) -> None:
        self.directory = directory
        self.persistent = persistent
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        command += ["--dir", str(self.directory), "--appendonly", "yes" if self.persistent else "no"]
        command += ["--appendfsync", "always"]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + PATIENCE
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                assert self.process.poll() is None, "redis-server exited at start"
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.02)

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


@contextlib.contextmanager
def redis_server(directory: Path, persistent: bool = False) -> Iterator[RedisServer]:
    """Runs a `RedisServer` for the duration of the block."""
    redis = RedisServer(directory, persistent)
    redis.start()
    try:
        yield redis
    finally:
        redis.kill()


def jwt_token(channels: list[str], secret: Any, expires_in: float = 60, algorithm: str = "HS256", **header: Any) -> str:
    """A token (made by PyJWT) granting `channels` in the `tidings` claim."""
    claims = {"sub": "tester", "exp": int(time.time() + expires_in), "tidings": {"subscribe": channels}}
    return jwt.encode(claims, secret, algorithm=algorithm, headers=header or None)


def token_carried(how: str, token: str | None) -> dict[str, Any]:
    """httpx request options that carry `token` in the `how` place: the
    Authorization header, the tidings_token cookie or the access_token
    query parameter (none when `token` is None)."""
    if token is None:
        return {}
    if how == "header":
        return {"headers": {"authorization": f"Bearer {token}"}}
    if how == "cookie":
        return {"headers": {"cookie": f"theme=dark; tidings_token={token}"}}
    return {"params": {"access_token": token}}


def free_port() -> int:
    """A port nothing listens on now (bind to 0, read it, close)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Pki:
    """A CA and a certificate for 127.0.0.1 in `directory`."""

    def __init__(self, directory: Path) -> None:
        self.ca = trustme.CA()
        self.directory = directory
        self.ca_file = directory / "ca.pem"
        self.cert = directory / "server.pem"
        self.key = directory / "server.key"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        self.issue()

    def issue(self) -> None:
        """A new certificate over the files the server was given."""
        issued = self.ca.issue_cert("127.0.0.1")
        self.cert.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
        issued.private_key_pem.write_to_path(str(self.key))

    def context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    def client(self, http2: bool = False) -> httpx.Client:
        return httpx.Client(trust_env=False, timeout=PATIENCE, verify=self.context(), http2=http2)

    def spki_hash(self) -> str:
        """The base64 SHA-256 of the served certificate's public key, as
        Chromium's ``--ignore-certificate-errors-spki-list`` takes it."""
        import base64
        import hashlib

        from cryptography import x509
        from cryptography.hazmat.primitives import serialization

        certificate = x509.load_pem_x509_certificate(self.cert.read_bytes())
        spki = certificate.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return base64.b64encode(hashlib.sha256(spki).digest()).decode()

    def served_certificate(self, port: int) -> bytes:
        """The DER of the certificate a fresh handshake is given."""
        with socket.create_connection(("127.0.0.1", port), timeout=PATIENCE) as raw:
            with self.context().wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                certificate = tls.getpeercert(binary_form=True)
                assert certificate is not None
                return certificate
