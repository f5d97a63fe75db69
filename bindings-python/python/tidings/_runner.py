"""Runs Python handlers for the engine.

The engine calls `open_stream` and `open_route` on its callback thread. A
stream's producer then runs on an asyncio loop (async generators) or on a
thread of its own (sync generators) and is closed as soon as its client
leaves; a route handler runs on the loop and its result is the response.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import time
from typing import Any, Callable

from . import _tidings
from ._errors import ClientDisconnected, HTTPError

logger = logging.getLogger("tidings")


class SyncStreams:
    """The threads running a server's sync generators, so that ``stop()``
    returns only once they have finished."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._threads: set[threading.Thread] = set()

    def start(self, produced: Any, request: _tidings.Request, sink: _tidings.StreamSink) -> None:
        def run() -> None:
            try:
                _pump_sync(produced, request, sink)
            finally:
                with self._lock:
                    self._threads.discard(thread)

        thread = threading.Thread(target=run, name="tidings-sync-stream", daemon=True)
        with self._lock:
            self._threads.add(thread)
        thread.start()

    def join(self, timeout: float) -> None:
        """Waits for every thread, at most `timeout` seconds in all. After the
        engine stopped, each ends at its generator's next item (the send fails)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                logger.warning("a sync stream generator did not finish within %.1f s of stop()", timeout)


def open_stream(
    loop: asyncio.AbstractEventLoop | None,
    handler: Callable[[_tidings.Request], Any],
    request: _tidings.Request,
    sink: _tidings.StreamSink,
    sync_streams: SyncStreams,
) -> None:
    """Schedules `handler` for one client on `loop` (callback thread)."""
    _on_loop(
        loop,
        lambda running: _start(running, handler, request, sink, sync_streams),
        lambda reason: sink.reject(503, reason),
    )


def _on_loop(
    loop: asyncio.AbstractEventLoop | None,
    callback: Callable[[asyncio.AbstractEventLoop], object],
    unavailable: Callable[[str], None],
) -> None:
    """Runs `callback(loop)` on `loop`, or `unavailable(reason)` (for a 503)
    if there is no loop running to take it."""
    if loop is None or loop.is_closed():
        unavailable("server is not running\n")
        return
    try:
        loop.call_soon_threadsafe(callback, loop)
    except RuntimeError:  # the loop closed in between
        unavailable("server is stopping\n")


def _start(
    loop: asyncio.AbstractEventLoop,
    handler: Callable[[_tidings.Request], Any],
    request: _tidings.Request,
    sink: _tidings.StreamSink,
    sync_streams: SyncStreams,
) -> None:
    try:
        produced = handler(request)
    except Exception as error:
        _refuse(request, sink, error)
        return
    if inspect.iscoroutine(produced):
        # A coroutine function: its result decides the response.
        task = loop.create_task(_await_then_run(loop, produced, request, sink, sync_streams))
        sink.on_close(lambda: _cancel(loop, task))
        return
    _run(loop, produced, request, sink, sync_streams)


async def _await_then_run(
    loop: asyncio.AbstractEventLoop,
    coroutine: Any,
    request: _tidings.Request,
    sink: _tidings.StreamSink,
    sync_streams: SyncStreams,
) -> None:
    try:
        produced = await coroutine
    except asyncio.CancelledError:
        sink.close()
        return
    except Exception as error:
        _refuse(request, sink, error)
        return
    _run(loop, produced, request, sink, sync_streams)


def _refuse(request: _tidings.Request, sink: _tidings.StreamSink, error: Exception) -> None:
    """Answers a stream whose handler raised: its HTTPError's status, else 500 (logged)."""
    status, reason = _failure(request, "stream", error)
    sink.refuse(status, reason)


def _failure(request: _tidings.Request, kind: str, error: Exception) -> tuple[int | None, str]:
    """The status and reason an exception names (an HTTPError's); any other
    exception is logged and names none (the engine answers 500)."""
    if isinstance(error, HTTPError):
        return error.status, error.reason
    logger.error("%s handler for %s failed", kind, request.path, exc_info=error)
    return None, ""


def _run(
    loop: asyncio.AbstractEventLoop,
    produced: Any,
    request: _tidings.Request,
    sink: _tidings.StreamSink,
    sync_streams: SyncStreams,
) -> None:
    if inspect.isasyncgen(produced) or hasattr(produced, "__aiter__"):
        sink.accept()
        task = loop.create_task(_pump_async(loop, produced, request, sink))
        sink.on_close(lambda: _cancel(loop, task))
    elif hasattr(produced, "__iter__") and not isinstance(produced, (str, bytes, dict)):
        sink.accept()
        sync_streams.start(produced, request, sink)
    else:
        logger.error(
            "stream handler for %s returned %s; expected an async or sync generator",
            request.path,
            type(produced).__name__,
        )
        sink.reject(500, "stream handler failed\n")


def _cancel(loop: asyncio.AbstractEventLoop, task: asyncio.Task[Any]) -> None:
    """Cancels `task` from the callback thread, if its loop still runs."""
    try:
        loop.call_soon_threadsafe(task.cancel)
    except RuntimeError:
        pass  # the loop is closed; its tasks are gone with it


def _resolve(future: asyncio.Future[bool], value: bool) -> None:
    if not future.done():
        future.set_result(value)


async def _pump_async(loop: asyncio.AbstractEventLoop, produced: Any, request: _tidings.Request, sink: _tidings.StreamSink) -> None:
    iterator = produced.__aiter__()
    try:
        async for item in iterator:
            while not sink.try_send(item):
                # The client's queue is full: wait for room without blocking the loop.
                room: asyncio.Future[bool] = loop.create_future()
                sink.when_ready(lambda has_room: loop.call_soon_threadsafe(_resolve, room, has_room))
                if not await room:
                    return
        sink.close()
    except (asyncio.CancelledError, ClientDisconnected):
        logger.debug("client left %s; stream closed", request.path)
    except Exception:
        logger.exception("stream %s failed", request.path)
        sink.fail()
    finally:
        sink.close()
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            await aclose()


def _pump_sync(produced: Any, request: _tidings.Request, sink: _tidings.StreamSink) -> None:
    try:
        for item in produced:
            sink.send_blocking(item)
        sink.close()
    except ClientDisconnected:
        logger.debug("client left %s; stream closed", request.path)
    except Exception:
        logger.exception("stream %s failed", request.path)
        sink.fail()
    finally:
        sink.close()
        close = getattr(produced, "close", None)
        if close is not None:
            close()


class Response:
    """A route's response, when a plain ``str`` (HTML) is not enough."""

    __slots__ = ("body", "status", "content_type")

    def __init__(self, body: str | bytes, status: int = 200, content_type: str = "text/html; charset=utf-8") -> None:
        self.body = body
        self.status = status
        self.content_type = content_type

    def __repr__(self) -> str:
        return f"Response(status={self.status}, content_type={self.content_type!r})"


def open_route(
    loop: asyncio.AbstractEventLoop | None,
    handler: Callable[[_tidings.Request], Any],
    request: _tidings.Request,
    reply: _tidings.Reply,
) -> None:
    """Schedules a route handler for one request on `loop` (callback thread)."""
    _on_loop(
        loop,
        lambda running: running.create_task(_answer(handler, request, reply)),
        lambda reason: reply.send(reason, 503, "text/plain; charset=utf-8"),
    )


def open_authorization(
    loop: asyncio.AbstractEventLoop | None,
    check: Callable[[_tidings.Request], Any],
    request: _tidings.Request,
    verdict: _tidings.Verdict,
) -> None:
    """Schedules a channel's authorize check for one client on `loop`
    (callback thread)."""
    _on_loop(
        loop,
        lambda running: running.create_task(_decide(check, request, verdict)),
        lambda reason: verdict.deny(503, reason.strip()),
    )


async def _decide(check: Callable[[_tidings.Request], Any], request: _tidings.Request, verdict: _tidings.Verdict) -> None:
    try:
        result = check(request)
        if inspect.isawaitable(result):
            result = await result
        if result is None or result is True:
            verdict.allow()
        elif result is False:
            verdict.deny(403, "forbidden")
        else:
            raise TypeError(f"an authorize check returns None, True or False, not {type(result).__name__}")
    except ClientDisconnected:
        pass
    except Exception as error:
        status, reason = _failure(request, "authorize", error)
        if status is None or not 400 <= status <= 599:
            status, reason = 500, "authorization failed"
        verdict.deny(status, reason)


async def _answer(handler: Callable[[_tidings.Request], Any], request: _tidings.Request, reply: _tidings.Reply) -> None:
    try:
        result = handler(request)
        if inspect.isawaitable(result):
            result = await result
        if isinstance(result, Response):
            reply.send(result.body, result.status, result.content_type)
        elif isinstance(result, (str, bytes)):
            reply.send(result)
        else:
            raise TypeError(f"a route handler returns str, bytes or tidings.Response, not {type(result).__name__}")
    except ClientDisconnected:
        pass
    except Exception as error:
        reply.refuse(*_failure(request, "route", error))
