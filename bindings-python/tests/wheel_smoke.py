"""Run by `make test-wheel` in a fresh venv with only the built wheel (no
Rust toolchain on PATH): the package imports and serves a stream."""

import shutil
import socket

import tidings

assert shutil.which("cargo") is None, "this check must run without a Rust toolchain"
server = tidings.Server("127.0.0.1", 0)


@server.stream("/s")
async def one(request):
    yield "from the wheel"


server.start()
with socket.create_connection(("127.0.0.1", server.port), timeout=10) as conn:
    conn.sendall(b"GET /s HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
    reply = b""
    while chunk := conn.recv(4096):
        reply += chunk
server.stop()
assert b"data: from the wheel\n\n" in reply, reply
print("wheel OK:", tidings.__version__)
