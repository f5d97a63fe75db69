"""TLS from C (tests/c/tls_server.c): a channel read by httpx over HTTP/1.1
and HTTP/2, and `tidings_server_reload_tls` swapping the certificate for new
connections, or keeping it when the files are broken."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx_sse

from cabi import build
from helpers import PATIENCE, ROOT, Demo, Pki, serving


def test_a_c_server_speaks_tls_and_h2_and_reloads_its_certificate(tmp_path: Path) -> None:
    binary = build(ROOT / "tests/c/tls_server.c", tmp_path / "tls_server")
    pki = Pki(tmp_path)
    with serving([str(binary), str(pki.cert), str(pki.key)]) as running:
        assert running.url.startswith("https://")
        with pki.client(http2=True) as http, httpx_sse.connect_sse(http, "GET", f"{running.url}/c") as source:
            assert source.response.http_version == "HTTP/2"
            event = next(source.iter_sse())
            assert (event.data, event.id) == ("over tls from C", "c-1")
        port = int(running.url.rsplit(":", 1)[1])
        before = pki.served_certificate(port)
        pki.issue()
        running.process.send_signal(signal.SIGHUP)
        wait_for_log(running, "tls: reloaded")
        after = pki.served_certificate(port)
        assert after != before
        pki.cert.write_text("not a certificate")
        running.process.send_signal(signal.SIGHUP)
        wait_for_log(running, "tls: reload failed")
        assert "PEM" in running.log()
        assert pki.served_certificate(port) == after


def wait_for_log(running: Demo, text: str) -> None:
    deadline = time.monotonic() + PATIENCE
    while text not in running.log():
        assert time.monotonic() < deadline, f"{text!r} not logged: {running.log()}"
        time.sleep(0.02)
