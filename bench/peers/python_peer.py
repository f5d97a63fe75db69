#!/usr/bin/env python3
"""Python peers: one SSE service written three ways (--impl).

- sse-starlette: a Starlette route returning EventSourceResponse, fed by one
  asyncio.Queue per subscriber that a publisher task on the same loop fills.
- fastapi: the same fan-out behind FastAPI's StreamingResponse, yielding
  preformatted "data: ...\\n\\n" strings as the classic FastAPI SSE demos do.
- tidings: the tidings binding; the transport runs in Rust and Python only
  publishes, from a plain thread.
- fastapi-on-tidings: the fastapi app above, unchanged, served by tidings'
  ASGI server (`tidings run`'s) instead of uvicorn.
- fastapi-channel: the same FastAPI route returning `ChannelResponse` (an
  unrouted channel) for broadcasts and tidings' `EventSourceResponse` for
  streams: the endpoint runs in Python, the connection is then served in Rust.

The first two are the code a Python developer typically writes, served by
uvicorn (uvloop, httptools) in this process; nothing is tuned beyond turning
off pings and logs, so they show what the usual stack costs. Their fan-out
lives in one process's memory, so they run one event loop whatever --threads
says; tidings gets --threads engine threads.

Usage: python_peer.py --impl IMPL [--port P --subscribers N --events E
--rate R --size S --mode broadcast|stream --threads T]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import socket
import threading
from collections.abc import AsyncIterator, Iterator

import tidings
import uvicorn
import uvloop
from fastapi import FastAPI
from fastapi.responses import Response, StreamingResponse
from sse_starlette import EventSourceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

from protocol import announce, parser, payload, publish_on_schedule, publish_on_schedule_async, raise_fd_limit

BACKLOG = 4096


class Hub:
    """Fan-out to one unbounded asyncio.Queue per connected subscriber."""

    def __init__(self) -> None:
        self.queues: set[asyncio.Queue[str]] = set()

    @contextlib.contextmanager
    def subscription(self) -> Iterator[asyncio.Queue[str]]:
        queue: asyncio.Queue[str] = asyncio.Queue()
        self.queues.add(queue)
        try:
            yield queue
        finally:
            self.queues.discard(queue)

    def publish(self, data: str) -> None:
        for queue in self.queues:
            queue.put_nowait(data)


def starlette_app(args: argparse.Namespace, hub: Hub) -> Starlette:
    async def broadcast() -> AsyncIterator[dict[str, str]]:
        with hub.subscription() as queue:
            while True:
                yield {"data": await queue.get()}

    async def own_stream() -> AsyncIterator[dict[str, str]]:
        for seq in range(args.events):
            yield {"data": payload(seq, args.size)}

    async def sse(request: Request) -> EventSourceResponse:
        events = broadcast() if args.mode == "broadcast" else own_stream()
        # sep="\n": the protocol's framing (sse-starlette defaults to CRLF).
        return EventSourceResponse(events, ping=3600, sep="\n")

    return Starlette(routes=[Route("/sse", sse)])


def fastapi_app(args: argparse.Namespace, hub: Hub) -> FastAPI:
    app = FastAPI()

    async def broadcast() -> AsyncIterator[str]:
        with hub.subscription() as queue:
            while True:
                yield f"data: {await queue.get()}\n\n"

    async def own_stream() -> AsyncIterator[str]:
        for seq in range(args.events):
            yield f"data: {payload(seq, args.size)}\n\n"

    @app.get("/sse")
    async def sse() -> StreamingResponse:
        events = broadcast() if args.mode == "broadcast" else own_stream()
        return StreamingResponse(events, media_type="text/event-stream")

    return app


async def serve_asgi(args: argparse.Namespace) -> None:
    """Serves the chosen ASGI app with uvicorn on a socket bound here (so port
    0 works) and, in broadcast mode, publishes from a task on the same loop."""
    hub = Hub()
    app = starlette_app(args, hub) if args.impl == "sse-starlette" else fastapi_app(args, hub)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    sock.listen(BACKLOG)
    announce(sock.getsockname()[1])
    config = uvicorn.Config(app, http="httptools", log_level="warning", access_log=False, backlog=BACKLOG)
    serving = uvicorn.Server(config).serve(sockets=[sock])
    if args.mode == "stream":
        await serving
        return

    await asyncio.gather(serving, publish_on_schedule_async(args, lambda: len(hub.queues), hub.publish))


async def serve_fastapi_on_tidings(args: argparse.Namespace) -> None:
    """The fastapi app, unchanged, on tidings' ASGI server; the publisher is a
    task on the app's loop, as under uvicorn."""
    hub = Hub()
    server = tidings.Server("127.0.0.1", args.port, keepalive=None, worker_threads=args.threads)
    server.mount(fastapi_app(args, hub), lifespan="off")
    async with server:
        assert server.port is not None, "a started server has a port"
        announce(server.port)
        if args.mode == "broadcast":
            await publish_on_schedule_async(args, lambda: len(hub.queues), hub.publish)
        await asyncio.get_running_loop().create_future()


def serve_fastapi_channel(args: argparse.Namespace) -> None:
    """A FastAPI endpoint that hands each connection to the engine; publishing
    from a plain thread, as the tidings peer does."""
    from tidings.starlette import ChannelResponse, EventSourceResponse

    server = tidings.Server("127.0.0.1", args.port, keepalive=None, worker_threads=args.threads)
    channel = server.channel("/internal/sse", history=0, max_lag=max(args.events, 1024), route=False)
    app = FastAPI()

    async def own_stream() -> AsyncIterator[str]:
        for seq in range(args.events):
            yield payload(seq, args.size)

    @app.get("/sse")
    async def sse() -> Response:
        if args.mode == "broadcast":
            return ChannelResponse(channel)
        return EventSourceResponse(own_stream())

    server.mount(app, lifespan="off")
    serve_until_killed(args, server, channel)


def serve_tidings(args: argparse.Namespace) -> None:
    """Serves with the tidings binding: its own engine threads, publishing here."""
    server = tidings.Server("127.0.0.1", args.port, keepalive=None, worker_threads=args.threads)
    channel = None
    if args.mode == "stream":

        @server.stream("/sse")
        async def own_stream(request: tidings.Request) -> AsyncIterator[str]:
            for seq in range(args.events):
                yield payload(seq, args.size)

    else:
        channel = server.channel("/sse", history=0, max_lag=max(args.events, 1024))

    serve_until_killed(args, server, channel)


def serve_until_killed(args: argparse.Namespace, server: tidings.Server, channel: tidings.Channel | None) -> None:
    """Starts `server`, tells the harness its port, publishes on `channel`
    (broadcast mode) and idles until killed."""
    server.start()
    assert server.port is not None, "a started server has a port"
    announce(server.port)
    if args.mode == "broadcast":
        assert channel is not None, "broadcast mode has a channel"
        publish_on_schedule(args, lambda: channel.subscribers, channel.publish)
    threading.Event().wait()


def main() -> None:
    cli = parser(__doc__.split("\n\n")[0])
    impls = ("sse-starlette", "fastapi", "tidings", "fastapi-on-tidings", "fastapi-channel")
    cli.add_argument("--impl", choices=impls, required=True)
    args = cli.parse_args()
    logging.basicConfig(level=logging.WARNING)
    raise_fd_limit()
    if args.impl == "tidings":
        serve_tidings(args)
    elif args.impl == "fastapi-channel":
        serve_fastapi_channel(args)
    elif args.impl == "fastapi-on-tidings":
        uvloop.run(serve_fastapi_on_tidings(args))
    else:
        # uvicorn's loop="uvloop" applies only to Server.run(); serve() runs on ours.
        uvloop.run(serve_asgi(args))


if __name__ == "__main__":
    main()
