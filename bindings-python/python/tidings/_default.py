"""The process's default server: where channels declared at module level
(``tidings.channel("/scores")``) live, and what ``tidings run`` serves the
application on, so that an endpoint and the engine share them."""

from __future__ import annotations

import os
import threading
from typing import Any

from ._errors import ServerStateError
from ._server import Server
from ._tidings import Channel

_lock = threading.Lock()
_default: Server | None = None


def configure(**options: Any) -> Server:
    """Creates the default server with :class:`Server`'s options (``cors``,
    ``keepalive``, limits, ...); call it before the first
    :func:`channel`. ``tidings run`` still chooses the host and port."""
    global _default
    with _lock:
        if _default is not None:
            raise ServerStateError("the default server exists already: call tidings.configure() before tidings.channel()")
        _default = Server(**with_environment(options))
        return _default


def default_server() -> Server:
    """The default server, created with default options on first use."""
    global _default
    with _lock:
        if _default is None:
            _default = Server(**with_environment({}))
        return _default


def with_environment(options: dict[str, Any]) -> dict[str, Any]:
    """`options`, completed from what ``tidings run`` puts in the
    environment for the server an app declares: its broker, its TLS and
    its metrics route."""
    return with_metrics_from_environment(with_tls_from_environment(with_broker_from_environment(options)))


def with_metrics_from_environment(options: dict[str, Any]) -> dict[str, Any]:
    """`options`, with ``metrics_path`` from ``$TIDINGS_METRICS_PATH`` unless
    given (``tidings run --metrics-path``)."""
    path = os.environ.get("TIDINGS_METRICS_PATH")
    if not path or "metrics_path" in options:
        return options
    return {**options, "metrics_path": path}


def with_tls_from_environment(options: dict[str, Any]) -> dict[str, Any]:
    """`options`, with ``tls_cert`` and ``tls_key`` from ``$TIDINGS_TLS_CERT``
    and ``$TIDINGS_TLS_KEY`` unless given (``tidings run --ssl-certfile``)."""
    cert = os.environ.get("TIDINGS_TLS_CERT")
    if not cert or "tls_cert" in options or "tls_key" in options:
        return options
    return {**options, "tls_cert": cert, "tls_key": os.environ.get("TIDINGS_TLS_KEY")}


def with_broker_from_environment(options: dict[str, Any]) -> dict[str, Any]:
    """`options`, with ``broker`` from ``$TIDINGS_BROKER`` (and ``broker_ca``
    from ``$TIDINGS_BROKER_CA``) unless given: how ``tidings run --broker``
    reaches the server an app declares."""
    broker = os.environ.get("TIDINGS_BROKER")
    if not broker or "broker" in options:
        return options
    options = {**options, "broker": broker}
    ca = os.environ.get("TIDINGS_BROKER_CA")
    if ca and "broker_ca" not in options:
        options["broker_ca"] = ca
    return options


def existing_default_server() -> Server | None:
    """The default server if something created it."""
    return _default


def channel(name: str, *, route: bool = False, **options: Any) -> Channel:
    """Registers a channel on the default server (see :meth:`Server.channel`
    for the options); publish to it from any endpoint or thread, hand
    connections to it with ``ChannelResponse``.

    Unlike :meth:`Server.channel`, no path serves it unless ``route=True``:
    clients reach it through your endpoints, after their dependencies (auth)
    ran, and `name` only names it."""
    return default_server().channel(name, route=route, **options)
