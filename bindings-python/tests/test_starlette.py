"""tidings.starlette's responses in a Starlette app: under tidings (the
engine takes the connection) and under uvicorn (they stream from Python),
with the same events on the wire."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from typing import Any, Iterator

import httpx_sse
import pytest
import uvicorn
from sse_starlette.event import ServerSentEvent
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

import tidings
from helpers import PATIENCE, client, events
from tidings.starlette import ChannelResponse, EventSourceResponse, served_by_tidings

finished = threading.Event()


class News:
    """The channel the app hands connections to; its server lives for this
    module's tests only (made at import, it would outlive every other test)."""

    server: tidings.Server
    channel: tidings.Channel


async def mixed(request: Request) -> EventSourceResponse:
    async def items() -> Any:
        yield "plain text"
        yield {"event": "named", "id": "7", "data": "line one\nline two"}
        yield tidings.Event("from an Event", event="typed")
        yield ServerSentEvent(data="from sse-starlette", event="compat", retry=5000)
        yield {"data": {"json": True}}

    return EventSourceResponse(items(), headers={"x-app": "yes"})


async def synchronous(request: Request) -> EventSourceResponse:
    return EventSourceResponse(iter(["a", "b"]))


async def idle(request: Request) -> EventSourceResponse:
    async def items() -> Any:
        try:
            yield "first"
            await asyncio.sleep(3600)
        finally:
            finished.set()

    return EventSourceResponse(items(), ping=0.2)


async def broken(request: Request) -> EventSourceResponse:
    async def items() -> Any:
        yield "before"
        raise RuntimeError("the generator broke")

    return EventSourceResponse(items())


async def where(request: Request) -> EventSourceResponse:
    return EventSourceResponse(iter([str(served_by_tidings(request.scope))]))


async def channel(request: Request) -> ChannelResponse:
    return ChannelResponse(News.channel, headers={"x-app": "yes"})


app = Starlette(
    routes=[
        Route("/mixed", mixed),
        Route("/sync", synchronous),
        Route("/idle", idle),
        Route("/broken", broken),
        Route("/where", where),
        Route("/news", channel),
    ]
)


@contextlib.contextmanager
def under_tidings() -> Iterator[str]:
    server = tidings.Server("127.0.0.1", 0)
    server.mount(app)
    server.start()
    try:
        yield str(server.url)
    finally:
        server.stop()


@contextlib.contextmanager
def under_uvicorn() -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + PATIENCE
    while not server.started:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(PATIENCE)


SERVERS = {"tidings": under_tidings, "uvicorn": under_uvicorn}


@pytest.fixture(scope="module", autouse=True)
def news_channel() -> Iterator[None]:
    News.server = tidings.Server("127.0.0.1", 0)  # never started: the channel is all it is for
    News.channel = News.server.channel("/internal/news", history=10)
    yield
    News.server.stop()


@pytest.mark.parametrize("kind", SERVERS)
def test_items_of_every_kind_are_encoded_alike(kind: str) -> None:
    with SERVERS[kind]() as url:
        received = events(f"{url}/mixed")
        assert [e.data for e in events(f"{url}/sync")] == ["a", "b"]
        assert events(f"{url}/where")[0].data == str(kind == "tidings")
        with client() as http, http.stream("GET", f"{url}/mixed") as response:
            headers = response.headers
    assert [(e.event, e.data, e.id) for e in received] == [
        ("message", "plain text", ""),
        ("named", "line one\nline two", "7"),
        ("typed", "from an Event", "7"),  # EventSource keeps the last id
        ("compat", "from sse-starlette", "7"),
        ("message", '{"json":true}', "7"),
    ]
    assert received[3].retry == 5000
    assert headers["content-type"].startswith("text/event-stream")
    assert headers["cache-control"] == "no-cache"
    assert headers["x-app"] == "yes"


@pytest.mark.parametrize("kind", SERVERS)
def test_an_idle_generator_ends_soon_after_its_client_leaves(kind: str) -> None:
    finished.clear()
    with SERVERS[kind]() as url:
        with client() as http, httpx_sse.connect_sse(http, "GET", f"{url}/idle") as source:
            assert next(source.iter_sse()).data == "first"
        left = time.monotonic()
        assert finished.wait(PATIENCE)
        waited = time.monotonic() - left
    if kind == "tidings":
        assert waited < 1.0, f"the generator lived {waited:.2f} s after its client left"


def test_a_generator_that_raises_ends_the_stream_with_an_error_event() -> None:
    with under_tidings() as url:
        received = events(f"{url}/broken")
    assert [(e.event, e.data) for e in received] == [("message", "before"), ("error", "stream failed")]


@pytest.mark.parametrize("kind", SERVERS)
def test_a_channel_response_delivers_history_and_live_events(kind: str) -> None:
    news = News.channel
    first = news.publish("one")
    news.publish("two")
    with SERVERS[kind]() as url:
        with client() as http, httpx_sse.connect_sse(http, "GET", f"{url}/news", headers={"last-event-id": str(first)}) as source:
            assert source.response.headers["x-app"] == "yes"
            stream = source.iter_sse()
            assert next(stream).data == "two"
            news.publish("three")
            assert next(stream).data == "three"
