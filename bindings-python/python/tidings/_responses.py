"""The responses of `tidings.starlette` (this module needs Starlette).

Under ``tidings run`` (or any server with a mounted app), the connection is
handed to the engine: a :class:`ChannelResponse` becomes an ordinary channel
subscriber and an :class:`EventSourceResponse`'s items are encoded, pinged
and watched for disconnects in Rust. Under another ASGI server both still
work, streaming from Python, so tests and local runs need no tidings server.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, AsyncIterable, Iterable, Mapping, Union

from starlette.background import BackgroundTask
from starlette.concurrency import iterate_in_threadpool
from starlette.responses import Response

from . import _tidings
from ._errors import ClientDisconnected
from ._asgi import served_by_tidings
from ._tidings import Channel, Event

logger = logging.getLogger("tidings")

SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
KEEPALIVE_COMMENT = b":\n\n"
DEFAULT_PING = 15.0

Content = Union[AsyncIterable[Any], Iterable[Any]]


class ChannelResponse(Response):
    """Subscribes the request to `channel`, after the endpoint (and its
    dependencies: auth, rate limits, path parameters) decided it may.

    Under tidings the engine serves the subscriber from then on: resume by
    ``Last-Event-ID``, keep-alives, slow-consumer policy, presence hooks, all
    as for a client of the channel's own path. Elsewhere it streams the same
    events from Python."""

    media_type = "text/event-stream"

    def __init__(
        self,
        channel: Channel,
        request: Any = None,
        *,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        background: BackgroundTask | None = None,
    ) -> None:
        if not isinstance(channel, Channel):
            raise TypeError(f"ChannelResponse needs a tidings Channel, not {type(channel).__name__}")
        self.channel = channel
        self.request = request
        self.status_code = status_code
        self.background = background
        self.init_headers({**SSE_HEADERS, **(headers or {})})

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if served_by_tidings(scope):
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            await send({"type": "tidings.channel", "channel": self.channel})
        else:
            await self._stream_from_python(scope, receive, send)
        if self.background is not None:
            await self.background()

    async def _stream_from_python(self, scope: Any, receive: Any, send: Any) -> None:
        last_event_id = _header(scope, b"last-event-id")
        listener = self.channel.listen(last_event_id)
        loop = asyncio.get_running_loop()
        readable = asyncio.Event()
        loop.add_reader(listener.fileno(), readable.set)
        keepalive = listener.keepalive or DEFAULT_PING
        try:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})

            async def pump() -> None:
                while True:
                    readable.clear()
                    frames = listener.next_frames()
                    if frames == b"":
                        return
                    if frames is None:
                        try:
                            await asyncio.wait_for(readable.wait(), keepalive)
                        except asyncio.TimeoutError:
                            frames = KEEPALIVE_COMMENT
                        else:
                            continue
                    await send({"type": "http.response.body", "body": frames, "more_body": True})

            await _until_disconnect(pump(), receive)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except (ClientDisconnected, OSError):
            pass
        finally:
            loop.remove_reader(listener.fileno())
            listener.close()


class EventSourceResponse(Response):
    """sse-starlette's ``EventSourceResponse``, with the engine doing the
    work: the generator only yields. Items may be dicts of event fields
    (``data``, ``event``, ``id``, ``retry``, ``comment``), ``tidings.Event``,
    ``ServerSentEvent``-like objects (with those attributes) or strings.

    Under tidings, encoding, keep-alive pings (the server's ``keepalive``
    period) and disconnect detection run in Rust; `ping` and `sep` are then
    the engine's (it writes ``\\n`` line ends). Elsewhere it streams from
    Python with a ping every `ping` seconds. The generator is cancelled as
    soon as the client leaves, even while it is idle. `send_timeout` bounds
    how long one item may wait for a slow client before the stream ends."""

    def __init__(
        self,
        content: Content,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str = "text/event-stream",
        background: BackgroundTask | None = None,
        ping: float | None = None,
        sep: str | None = None,
        send_timeout: float | None = None,
        queue: int = 32,
    ) -> None:
        if sep not in (None, "\n", "\r\n", "\r"):
            raise ValueError(f"sep must be one of \\r\\n, \\r, \\n, not {sep!r}")
        self.content = content
        self.status_code = status_code
        self.media_type = media_type
        self.background = background
        self.ping = DEFAULT_PING if ping is None else ping
        self.send_timeout = send_timeout
        self.queue = queue
        self.init_headers({**SSE_HEADERS, **(headers or {})})

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if served_by_tidings(scope):
            await self._hand_over(send)
        else:
            await self._stream_from_python(receive, send)
        if self.background is not None:
            await self.background()

    def _items(self) -> AsyncIterable[Any]:
        content = self.content
        if isinstance(content, AsyncIterable):
            return content
        return iterate_in_threadpool(content)

    async def _hand_over(self, send: Any) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        message: dict[str, Any] = {"type": "tidings.stream", "queue": self.queue}
        await send(message)
        stream: _tidings.AppStream = message["stream"]
        loop = asyncio.get_running_loop()

        async def pump() -> None:
            try:
                async for item in self._items():
                    event = _event(item)
                    while not stream.try_send(event):
                        room: asyncio.Future[bool] = loop.create_future()
                        stream.wait_ready(room)
                        if not await asyncio.wait_for(room, self.send_timeout):
                            return
                stream.close()
            except (ClientDisconnected, asyncio.TimeoutError):
                stream.close()
            except Exception:
                logger.exception("the event stream's generator failed")
                stream.fail()
                raise

        gone: asyncio.Future[bool] = loop.create_future()
        stream.wait_closed(gone)
        await _until(pump(), gone)
        stream.close()

    async def _stream_from_python(self, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})

        async def pump() -> None:
            items = self._items().__aiter__()
            pending: asyncio.Future[Any] | None = None
            try:
                while True:
                    if pending is None:
                        pending = asyncio.ensure_future(items.__anext__())
                    done, _ = await asyncio.wait({pending}, timeout=self.ping)
                    if not done:  # idle for a ping period
                        await send({"type": "http.response.body", "body": KEEPALIVE_COMMENT, "more_body": True})
                        continue
                    finished, pending = pending, None
                    try:
                        item = finished.result()
                    except StopAsyncIteration:
                        return
                    body = _encode(_event(item))
                    await asyncio.wait_for(
                        send({"type": "http.response.body", "body": body, "more_body": True}), self.send_timeout
                    )
            finally:
                if pending is not None:
                    pending.cancel()

        try:
            await _until_disconnect(pump(), receive)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except (ClientDisconnected, OSError, asyncio.TimeoutError):
            pass


def _event(item: Any) -> Any:
    """An item as the engine takes it: str, dict or Event as they are, an
    object with event attributes (sse-starlette's ServerSentEvent) as a dict."""
    if isinstance(item, (str, dict, Event)):
        return item
    if isinstance(item, bytes):
        return item.decode()
    fields = {name: getattr(item, name, None) for name in ("data", "event", "id", "retry", "comment")}
    if all(value is None for value in fields.values()):
        raise TypeError(f"cannot send {type(item).__name__} as an event")
    return {name: value for name, value in fields.items() if value is not None}


def _encode(item: Any) -> bytes:
    if isinstance(item, Event):
        return item.encode()
    if isinstance(item, str):
        return Event(item).encode()
    return Event(**item).encode()


def _header(scope: Mapping[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value).decode("utf-8", "replace")
    return None


async def _until(work: Any, stop: asyncio.Future[Any]) -> None:
    """Runs `work` until it ends or `stop` resolves (then cancels it)."""
    task = asyncio.ensure_future(work)
    try:
        await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not task.done():
            task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        if not stop.done():
            stop.cancel()
    error = None if task.cancelled() else task.exception()
    if error is not None:
        raise error


async def _until_disconnect(work: Any, receive: Any) -> None:
    """Runs `work` until it ends or the client disconnects."""

    async def disconnected() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    await _until(work, asyncio.ensure_future(disconnected()))
