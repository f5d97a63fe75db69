"""Runs an ASGI 3.0 application on the engine.

The engine reads requests and writes responses; this module only turns its
exchanges into ASGI's ``scope``, ``receive`` and ``send`` on the
application's asyncio loop. Engine threads never call into Python: they
queue jobs in a mailbox that the loop drains when its file descriptor turns
readable (see ``bindings-python/src/app.rs``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any, Awaitable, Callable, MutableMapping

from . import _tidings
from ._errors import ClientDisconnected

logger = logging.getLogger("tidings")
# One line per response, as uvicorn's "uvicorn.access" logger writes it.
access_logger = logging.getLogger("tidings.access")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

LIFESPAN_MODES = ("auto", "on", "off")

# Requests' tasks are kept in a set pruned of finished ones past this size.
PRUNE_AT = 1024

# The scope extension that says the engine can take the connection.
EXTENSION = "tidings.channel"


def served_by_tidings(scope: Scope) -> bool:
    """Whether the engine serves this request (and can take its connection)."""
    return EXTENSION in scope.get("extensions", {})


class LifespanFailed(RuntimeError):
    """The application's lifespan startup failed; the server does not start."""


class Mount:
    """An ASGI application mounted on a server: every request no tidings
    route serves runs it, on the loop given to :meth:`open`.

    A request's task is cancelled when its client leaves before the
    response is complete (a request whose client left while it waited for
    the loop is not run at all): nobody is left to answer."""

    def __init__(
        self,
        native: _tidings.Server,
        app: ASGIApp,
        *,
        root_path: str = "",
        lifespan: str = "auto",
        forwarded_allow_ips: str | None = None,
    ) -> None:
        if lifespan not in LIFESPAN_MODES:
            raise ValueError(f"lifespan must be one of {', '.join(LIFESPAN_MODES)}, not {lifespan!r}")
        self.app = app
        self._scope_config = _tidings.ScopeConfig(root_path, forwarded_allow_ips)
        self._bridge = native.mount()
        self._lifespan = Lifespan(app, lifespan)
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._opened = False
        self._closed = False
        self._prune_at = PRUNE_AT

    async def open(self) -> None:
        """Runs the lifespan startup, then takes requests on the running loop."""
        if self._opened:
            raise RuntimeError("the application was already started; a server starts once")
        self._opened = True
        await self._lifespan.startup()
        self._loop = loop = asyncio.get_running_loop()
        # The responses of one loop turn leave together: the bridge holds
        # them and has the loop release them once the turn's callbacks ran.
        self._bridge.attach(functools.partial(loop.call_soon, self._bridge.release_wakes))
        loop.add_reader(self._bridge.fileno(), self._drain)

    async def close(self) -> None:
        """After the engine stopped: lets the loop see the last jobs, cancels
        the requests still running, then runs the lifespan shutdown.
        Idempotent."""
        if self._closed:
            return
        self._closed = True
        loop = self._loop
        if loop is not None:
            self._drain()
            self._bridge.release_wakes()
            loop.remove_reader(self._bridge.fileno())
            self._loop = None
        tasks = [task for task in self._tasks if not task.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        await self._lifespan.shutdown()

    def _drain(self) -> None:
        loop = self._loop
        if loop is None:
            return
        state = self._lifespan.state
        tasks = self._tasks
        for exchange in self._bridge.drain():
            if exchange.closed:
                # The client left while its request waited for the loop.
                logger.debug("%s %s: the client left before the app ran", exchange.method, exchange.path)
                continue
            scope = exchange.scope(self._scope_config, state)
            task = loop.create_task(self._run(exchange, scope, loop))
            exchange.cancel_on_disconnect(task)
            tasks.add(task)
        # Kept for `close()`; pruned in bulk rather than by a done callback
        # per request.
        if len(tasks) > self._prune_at:
            self._tasks = tasks = {task for task in tasks if not task.done()}
            self._prune_at = max(PRUNE_AT, 2 * len(tasks))

    async def _run(self, exchange: _tidings.AppExchange, scope: Scope, loop: asyncio.AbstractEventLoop) -> None:
        receive, send = _endpoints(exchange, scope, loop)
        try:
            await self.app(scope, receive, send)
        except asyncio.CancelledError:
            # The client left (nothing to answer), or the server stopped.
            if not exchange.closed:
                exchange.fail()
            return
        except Exception as error:
            if exchange.closed and not exchange.answered:
                # Most likely the client's leaving (a send raised): not the app's fault.
                logger.debug("%s %s ended as its client left: %r", exchange.method, exchange.path, error)
            else:
                logger.error("the ASGI application failed on %s %s", exchange.method, exchange.path, exc_info=error)
            exchange.fail()
            return
        if not exchange.answered:
            logger.error(
                "the ASGI application returned without completing its response to %s %s",
                exchange.method,
                exchange.path,
            )
            exchange.fail()


def _endpoints(exchange: _tidings.AppExchange, scope: Scope, loop: asyncio.AbstractEventLoop) -> tuple[Receive, Send]:
    """The ``receive`` and ``send`` of one request."""

    async def receive() -> Message:
        while True:
            message = exchange.receive_nowait()
            if message is not None:
                return message
            ready: asyncio.Future[bool] = loop.create_future()
            exchange.wait_receive(ready)
            await ready

    async def send(message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.body":
            if exchange.write(message.get("body", b""), message.get("more_body", False)):
                room: asyncio.Future[bool] = loop.create_future()
                exchange.wait_writable(room)
                if not await room:
                    raise ClientDisconnected("the client has disconnected")
        elif kind == "http.response.start":
            if access_logger.isEnabledFor(logging.INFO):
                _log_access(scope, message["status"])
            if exchange.start(message["status"], message.get("headers", ())):
                # No length: it may stream. Its head leaves by the next loop
                # turn even if the body waits (an idle event stream is open
                # for its client at once, as under uvicorn); a body sent
                # right away still goes out with the head in one write.
                loop.call_soon(exchange.flush_head)
        elif kind == "tidings.channel":
            exchange.subscribe(message["channel"])
        elif kind == "tidings.stream":
            # Handed back in the message: ASGI's send returns nothing.
            message["stream"] = exchange.stream(message.get("queue", 32))
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r} on an HTTP connection")

    return receive, send


def _log_access(scope: Scope, status: int) -> None:
    """``127.0.0.1:50312 - "GET /path?query HTTP/1.1" 200``, as uvicorn logs it."""
    client = scope.get("client")
    peer = f"{client[0]}:{client[1]}" if client else "-"
    target = scope["raw_path"].decode("latin-1")
    if scope["query_string"]:
        target += "?" + scope["query_string"].decode("latin-1")
    access_logger.info('%s - "%s %s HTTP/%s" %d', peer, scope["method"], target, scope["http_version"], status)


class Lifespan:
    """The ASGI lifespan protocol: startup before the first request,
    shutdown after the last; ``state`` is copied into every request's scope."""

    def __init__(self, app: ASGIApp, mode: str) -> None:
        self._app = app
        self._mode = mode
        self.state: dict[str, Any] | None = {} if mode != "off" else None
        self._inbox: asyncio.Queue[Message] | None = None
        self._task: asyncio.Task[None] | None = None
        self._started: asyncio.Future[str | None] | None = None
        self._stopped: asyncio.Future[str | None] | None = None
        self._unsupported = mode == "off"

    async def startup(self) -> None:
        if self._unsupported:
            return
        loop = asyncio.get_running_loop()
        self._inbox = asyncio.Queue()
        self._started = loop.create_future()
        self._stopped = loop.create_future()
        self._task = loop.create_task(self._main())
        await self._inbox.put({"type": "lifespan.startup"})
        failure = await self._started
        if failure is not None:
            raise LifespanFailed(failure)

    async def shutdown(self) -> None:
        if self._unsupported or self._inbox is None or self._stopped is None:
            return
        await self._inbox.put({"type": "lifespan.shutdown"})
        failure = await self._stopped
        if failure is not None:
            logger.error("the application's lifespan shutdown failed: %s", failure)
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    async def _main(self) -> None:
        assert self._inbox is not None and self._started is not None and self._stopped is not None
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": self.state}
        try:
            await self._app(scope, self._inbox.get, self._send)
        except BaseException as error:
            if not self._started.done() and self._mode == "auto":
                logger.info("the application does not support the ASGI lifespan protocol (%r); going on", error)
                self._unsupported = True
                self._resolve(self._started, None)
            else:
                logger.error("the application's lifespan failed", exc_info=error)
                self._resolve(self._started, f"{type(error).__name__}: {error}")
            self._resolve(self._stopped, None)
            if isinstance(error, (KeyboardInterrupt, SystemExit)):
                raise
        else:
            if not self._started.done():
                # Returned without a word (an app that ignores lifespan
                # scopes): nothing to start or stop, as uvicorn sees it.
                logger.debug("the application returned from its lifespan without starting; going on")
                self._unsupported = True
        finally:
            self._resolve(self._started, None)
            self._resolve(self._stopped, None)

    async def _send(self, message: Message) -> None:
        assert self._started is not None and self._stopped is not None
        kind = message["type"]
        if kind == "lifespan.startup.complete":
            self._resolve(self._started, None)
        elif kind == "lifespan.startup.failed":
            self._resolve(self._started, message.get("message") or "lifespan startup failed")
        elif kind == "lifespan.shutdown.complete":
            self._resolve(self._stopped, None)
        elif kind == "lifespan.shutdown.failed":
            self._resolve(self._stopped, message.get("message") or "lifespan shutdown failed")
        else:
            raise RuntimeError(f"unexpected ASGI lifespan message {kind!r}")

    @staticmethod
    def _resolve(future: asyncio.Future[str | None], value: str | None) -> None:
        if not future.done():
            future.set_result(value)
