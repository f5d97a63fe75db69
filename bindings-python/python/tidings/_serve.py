"""`tidings.serve(app)`: an ASGI application served by the engine until a
signal stops it, as uvicorn's ``uvicorn.run`` does."""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any, Callable

from ._asgi import ASGIApp
from ._default import existing_default_server, with_environment
from ._errors import ConfigError, ServerStateError
from ._server import Server

logger = logging.getLogger("tidings")


def serve(
    app: ASGIApp,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    root_path: str = "",
    lifespan: str = "auto",
    timeout_graceful_shutdown: float | None = None,
    proxy_headers: bool = True,
    forwarded_allow_ips: str | None = "127.0.0.1",
    reuse_port: bool = False,
    on_ready: Callable[[Server], object] | None = None,
    **options: Any,
) -> None:
    """Serves `app` on `host`:`port` until SIGINT or SIGTERM, then stops
    gracefully: open responses get `timeout_graceful_shutdown` seconds (the
    server's `drain_timeout`, 5 by default) to finish, then the lifespan
    shutdown runs. Runs on uvloop when it is installed.

    `options` are :class:`Server`'s (``cors``, ``max_connections``, ...).
    If the app declared channels with :func:`tidings.channel`, it is served
    on that default server (configure it with :func:`tidings.configure`).
    `reuse_port` lets other processes serve the same port (SO_REUSEPORT),
    as ``tidings run --workers`` has its workers do. `on_ready(server)` is
    called once it serves, e.g. to learn the port of ``port=0``. Raises
    :class:`LifespanFailed` if the app's startup fails."""
    main = serve_async(
        app,
        host,
        port,
        root_path=root_path,
        lifespan=lifespan,
        timeout_graceful_shutdown=timeout_graceful_shutdown,
        proxy_headers=proxy_headers,
        forwarded_allow_ips=forwarded_allow_ips,
        reuse_port=reuse_port,
        on_ready=on_ready,
        **options,
    )
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)


async def serve_async(
    app: ASGIApp,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    root_path: str = "",
    lifespan: str = "auto",
    timeout_graceful_shutdown: float | None = None,
    proxy_headers: bool = True,
    forwarded_allow_ips: str | None = "127.0.0.1",
    reuse_port: bool = False,
    on_ready: Callable[[Server], object] | None = None,
    **options: Any,
) -> None:
    """:func:`serve` on the running loop."""
    server = existing_default_server()
    if server is None:
        if timeout_graceful_shutdown is not None:
            options["drain_timeout"] = timeout_graceful_shutdown
        server = Server(host, port, reuse_port=reuse_port, **with_environment(options))
    elif options:
        raise ServerStateError(
            "the app's channels live on the default server: give its options to tidings.configure(), not serve()"
        )
    else:
        server.set_start_options(host, port, timeout_graceful_shutdown, reuse_port)
    server.mount(
        app,
        root_path=root_path,
        lifespan=lifespan,
        forwarded_allow_ips=forwarded_allow_ips if proxy_headers else None,
    )
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    handled = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, stop.set)
            handled.append(signum)
        except (NotImplementedError, RuntimeError, ValueError):
            pass  # not the main thread, or no signals here: stop by cancelling
    if server.tls and hasattr(signal, "SIGHUP"):
        try:
            loop.add_signal_handler(signal.SIGHUP, _reload_tls, server)
            handled.append(signal.SIGHUP)
        except (NotImplementedError, RuntimeError, ValueError):
            pass
    try:
        async with server:
            logger.info("tidings serves %s (Ctrl-C stops it)", server.url)
            if on_ready is not None:
                on_ready(server)
            await stop.wait()
            logger.info("stopping: open responses get %.1f s to finish", server.drain_timeout)
    finally:
        for signum in handled:
            loop.remove_signal_handler(signum)


def _reload_tls(server: Server) -> None:
    """SIGHUP: serve the certificate files' new contents (a renewal)."""
    try:
        server.reload_tls()
    except ConfigError as error:
        logger.error("the certificate was not reloaded, the old one stays in service: %s", error)
    else:
        logger.info("reloaded the TLS certificate")
