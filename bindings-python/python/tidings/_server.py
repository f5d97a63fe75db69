"""`tidings.Server`: the native engine plus the asyncio loop its Python
handlers run on."""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Any, Callable, TypeVar, Union

from . import _asgi, _runner, _tidings
from ._errors import ServerStateError
from ._tidings import Channel, Event, Request

Handler = TypeVar("Handler", bound=Callable[..., Any])
PathLike = Union[str, "os.PathLike[str]"]


class Server:
    """An SSE server whose transport runs in Rust on its own threads.

    >>> server = Server(port=0)
    >>> scores = server.channel("/livescore", history=100)
    >>> server.start()
    >>> scores.publish({"home": 1, "away": 0}, event="goal") is not None
    True
    >>> server.stop()

    Stream handlers run on an asyncio loop: the running one inside
    ``async with server:`` or ``await server.serve()``, or one that tidings
    runs on a background thread after a plain ``start()`` (and ``run()``).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 8000,
        *,
        cors: str | list[str] | tuple[str, ...] | None = None,
        keepalive: float | None = 15.0,
        write_timeout: float = 30.0,
        tcp_keepalive: float | None = 60.0,
        drain_timeout: float = 5.0,
        worker_threads: int = 0,
        stream_queue: int = 32,
        max_connections: int | None = None,
        max_connections_per_ip: int | None = None,
        max_head_bytes: int = 16384,
        head_timeout: float = 10.0,
        max_pending_callbacks: int = 1024,
        reuse_port: bool = False,
        broker: str | None = None,
        broker_queue: int = 10_000,
        broker_ca: str | os.PathLike[str] | None = None,
        tls_cert: str | os.PathLike[str] | None = None,
        tls_key: str | os.PathLike[str] | None = None,
        http2: bool = True,
        max_streams_per_connection: int = 100,
        metrics_path: str | None = None,
        jwt_key: str | bytes | None = None,
        jwt_key_file: str | os.PathLike[str] | None = None,
        jwt_jwks_file: str | os.PathLike[str] | None = None,
        jwt_algorithm: str = "HS256",
        jwt_leeway: float = 5.0,
        jwt_cookie: str | None = "tidings_token",
        jwt_query: str | None = "access_token",
        jwt_claim: str = "tidings",
        jwt_audience: str | None = None,
        jwt_issuer: str | None = None,
        jwt_end_at_expiry: bool = True,
        hub: bool = False,
        hub_path: str | None = None,
        hub_publisher_key: str | bytes | None = None,
        hub_subscriber_key: str | bytes | None = None,
        hub_jwt_algorithm: str = "HS256",
        hub_anonymous: bool = True,
        hub_topic_base: str | None = None,
        hub_history: int = 1000,
    ) -> None:
        self._native = _tidings.Server(
            host,
            port,
            cors=cors,
            keepalive=keepalive,
            write_timeout=write_timeout,
            tcp_keepalive=tcp_keepalive,
            drain_timeout=drain_timeout,
            worker_threads=worker_threads,
            stream_queue=stream_queue,
            max_connections=max_connections,
            max_connections_per_ip=max_connections_per_ip,
            max_head_bytes=max_head_bytes,
            head_timeout=head_timeout,
            max_pending_callbacks=max_pending_callbacks,
            reuse_port=reuse_port,
            broker=broker,
            broker_queue=broker_queue,
            broker_ca=broker_ca,
            tls_cert=tls_cert,
            tls_key=tls_key,
            http2=http2,
            max_streams_per_connection=max_streams_per_connection,
            metrics_path=metrics_path,
            jwt_key=jwt_key,
            jwt_key_file=jwt_key_file,
            jwt_jwks_file=jwt_jwks_file,
            jwt_algorithm=jwt_algorithm,
            jwt_leeway=jwt_leeway,
            jwt_cookie=jwt_cookie,
            jwt_query=jwt_query,
            jwt_claim=jwt_claim,
            jwt_audience=jwt_audience,
            jwt_issuer=jwt_issuer,
            jwt_end_at_expiry=jwt_end_at_expiry,
            hub=hub,
            hub_path=hub_path,
            hub_publisher_key=hub_publisher_key,
            hub_subscriber_key=hub_subscriber_key,
            hub_jwt_algorithm=hub_jwt_algorithm,
            hub_anonymous=hub_anonymous,
            hub_topic_base=hub_topic_base,
            hub_history=hub_history,
        )
        self._tls = tls_cert is not None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None
        self._sync_streams = _runner.SyncStreams()
        self._drain_timeout = drain_timeout
        self._mount: _asgi.Mount | None = None

    # Routes -----------------------------------------------------------------

    def channel(
        self,
        path: str,
        *,
        history: int = 1000,
        auto_id: bool = True,
        max_lag: int = 1024,
        keepalive: float | None = None,
        max_subscribers: int | None = None,
        route: bool = True,
        private: bool = False,
    ) -> Channel:
        """Registers a broadcast channel at `path`; publish to it from any thread.

        With ``route=False`` no path serves it: clients reach it only through
        an endpoint that returns ``ChannelResponse(channel)`` after its own
        checks (`path` then just names it, e.g. in ``stats()``).

        With ``private=True`` a subscriber at `path` must bring a JWT (the
        server's ``jwt_*`` settings) whose claim grants the channel: 401
        without a valid one, 403 with one that names other channels."""
        return self._native.channel(
            path,
            history=history,
            auto_id=auto_id,
            max_lag=max_lag,
            keepalive=keepalive,
            max_subscribers=max_subscribers,
            route=route,
            private=private,
        )

    def stream(self, path: str) -> Callable[[Handler], Handler]:
        """Decorator: ``handler(request)`` produces one client's events.

        It may be an async generator function, a sync generator function
        (run on a thread of its own), or a function (sync or async) that
        returns either; raising :class:`HTTPError` before anything is sent
        answers with that status instead. Items may be ``str``, ``bytes``,
        ``Event`` or a dict of event fields (``data``, ``event``, ``id``,
        ``retry``, ``comment``).
        """

        def register(handler: Handler) -> Handler:
            self._native.stream(
                path,
                lambda request, sink: _runner.open_stream(self._loop, handler, request, sink, self._sync_streams),
            )
            return handler

        return register

    def authorize(self, channel: Channel) -> Callable[[Handler], Handler]:
        """Decorator: ``check(request)`` (sync or async) decides whether a
        client may subscribe to `channel` at its path: ``None`` or ``True``
        lets it in, ``False`` answers 403, and raising
        :class:`HTTPError` answers its status and reason (any other
        exception: 500, logged). It runs on the server's event loop, after
        the token check of a private channel, and must decide within
        ``head_timeout`` (else 503). Clients that an endpoint hands over
        with ``ChannelResponse`` are not asked."""

        def register(check: Handler) -> Handler:
            channel.set_authorizer(
                lambda request, verdict: _runner.open_authorization(self._loop, check, request, verdict)
            )
            return check

        return register

    def route(self, path: str) -> Callable[[Handler], Handler]:
        """Decorator: ``handler(request)`` (sync or async) returns the
        response for `path`: ``str`` (HTML), ``bytes`` or :class:`Response`."""

        def register(handler: Handler) -> Handler:
            self._native.route(path, lambda request, reply: _runner.open_route(self._loop, handler, request, reply))
            return handler

        return register

    def mount(
        self,
        app: _asgi.ASGIApp,
        *,
        root_path: str = "",
        lifespan: str = "auto",
        forwarded_allow_ips: str | None = None,
    ) -> None:
        """Serves the ASGI 3.0 application `app` (FastAPI, Starlette, any
        framework) for every request that no tidings route serves: channels,
        streams and pages registered on this server win.

        `lifespan` is ``"auto"`` (run it if the app supports it), ``"on"`` or
        ``"off"``; its startup runs before the server starts serving, its
        shutdown after it stopped. `forwarded_allow_ips` (``"*"`` or a
        comma-separated list of addresses and networks such as
        ``10.0.0.0/8``) names the proxies whose
        ``X-Forwarded-For`` and ``X-Forwarded-Proto`` set the scope's
        ``client`` and ``scheme``. One application per server."""
        if self._mount is not None:
            raise ServerStateError("an application is already mounted on this server")
        self._mount = _asgi.Mount(
            self._native,
            app,
            root_path=root_path,
            lifespan=lifespan,
            forwarded_allow_ips=forwarded_allow_ips,
        )

    def page(self, path: str, file: PathLike) -> None:
        """Serves `file` at `path`."""
        self._native.page(path, os.fspath(file))

    def files(self, prefix: str, directory: PathLike) -> None:
        """Serves the files under `directory` below `prefix`."""
        self._native.files(prefix, os.fspath(directory))

    def reload_tls(self) -> None:
        """Reads `tls_cert` and `tls_key` again (a renewed certificate) and
        serves the new pair to new connections; open ones keep theirs.
        Raises :class:`ConfigError`, keeping the pair in service, if the
        files do not hold a matching pair or the server has no TLS."""
        self._native.reload_tls()

    # Lifecycle --------------------------------------------------------------

    def start(self) -> None:
        """Starts serving; handlers run on an asyncio loop that tidings runs
        on a background thread until :meth:`stop`."""
        started_loop = self._loop is None
        if started_loop:
            self._start_loop_thread()
        try:
            if self._mount is not None and self._loop is not None:
                asyncio.run_coroutine_threadsafe(self._mount.open(), self._loop).result()
            self._native.start()
        except BaseException:
            if started_loop:  # no thread left behind by a failed start
                self._stop_loop_thread()
            raise

    def stop(self, farewell: Event | str | dict[str, Any] | None = None) -> None:
        """Stops the server: open streams get what was already queued, then
        `farewell` if given, then end. Idempotent; returns when every thread
        tidings started has finished.

        Called from a handler or hook (on the loop that runs handlers, or on
        the callback thread), it starts the stop and returns at once: waiting
        there would wait for itself. A later ``stop()`` from elsewhere waits."""
        if self._on_handler_loop():
            self._native.stop(farewell, wait=False)
            return
        self._native.stop(farewell)
        self._sync_streams.join(self._drain_timeout + 1.0)
        loop = self._loop
        # The loop tidings runs; `async with` closes the mount on its own.
        if self._mount is not None and self._loop_thread is not None and loop is not None:
            asyncio.run_coroutine_threadsafe(self._mount.close(), loop).result()
        self._stop_loop_thread()

    def _on_handler_loop(self) -> bool:
        try:
            return asyncio.get_running_loop() is self._loop
        except RuntimeError:
            return False

    async def serve(self) -> None:
        """Serves on the running loop until cancelled, then stops."""
        async with self:
            await asyncio.get_running_loop().create_future()

    def run(self) -> None:
        """Serves until Ctrl-C (SIGINT), then stops cleanly."""
        try:
            asyncio.run(self.serve())
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    async def __aenter__(self) -> Server:
        self._loop = asyncio.get_running_loop()
        try:
            if self._mount is not None:
                await self._mount.open()
            self._native.start()
        except BaseException:
            if self._mount is not None:
                await self._mount.close()
            self._loop = None
            raise
        return self

    async def __aexit__(self, *_exc: object) -> None:
        # Stopping waits for the engine's threads: keep the loop free meanwhile.
        await asyncio.get_running_loop().run_in_executor(None, self._native.stop)
        if self._mount is not None:
            await self._mount.close()
        self._loop = None

    def __enter__(self) -> Server:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # State ------------------------------------------------------------------

    @property
    def port(self) -> int | None:
        """The bound port while running (useful with ``port=0``)."""
        return self._native.port

    @property
    def host(self) -> str:
        return self._native.host

    @property
    def url(self) -> str | None:
        """``http://host:port`` (``https://`` with TLS) while running."""
        port = self._native.port
        if port is None:
            return None
        host = self._native.host
        scheme = "https" if self._tls else "http"
        return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"

    @property
    def tls(self) -> bool:
        """Whether the server speaks HTTPS (it was given ``tls_cert``)."""
        return self._tls

    def set_start_options(
        self, host: str, port: int, drain_timeout: float | None = None, reuse_port: bool = False
    ) -> None:
        """Changes where and how the server will listen, and how long its
        stop drains, until it starts: a server declared when a program is
        imported (with its channels) can be started by whatever runs the
        program, as ``tidings run`` does."""
        self._native.set_start_options(host, port, drain_timeout, reuse_port)
        if drain_timeout is not None:
            self._drain_timeout = drain_timeout

    @property
    def drain_timeout(self) -> float:
        """Seconds open responses get to finish when the server stops."""
        return self._drain_timeout

    @property
    def running(self) -> bool:
        return self._native.running

    def stats(self) -> dict[str, Any]:
        """Counters: connections, streams, events published and delivered,
        bytes written, slow-consumer drops, write timeouts, per channel."""
        return self._native.stats()

    # The background loop of a synchronous start() ---------------------------

    def _start_loop_thread(self) -> None:
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            try:
                loop.run_forever()
                _cancel_remaining(loop)
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()

        self._loop_thread = threading.Thread(target=run, name="tidings-asyncio", daemon=True)
        self._loop = loop
        self._loop_thread.start()
        ready.wait()

    def _stop_loop_thread(self) -> None:
        thread, loop = self._loop_thread, self._loop
        if thread is None or loop is None:
            return
        self._loop_thread = None
        self._loop = None
        if not loop.is_closed():
            loop.call_soon_threadsafe(loop.stop)
        if thread is not threading.current_thread():
            thread.join()


def _cancel_remaining(loop: asyncio.AbstractEventLoop) -> None:
    """Cancels the tasks left on a loop that stops, and lets them finish
    (so generators' ``finally`` blocks run)."""
    tasks = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))


__all__ = ["Server", "Request"]
