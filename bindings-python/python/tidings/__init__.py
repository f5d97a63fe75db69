"""tidings: an embeddable Server-Sent Events engine with a Rust transport.

    import asyncio, tidings

    server = tidings.Server(port=8000, cors="*")

    @server.stream("/stream")
    async def counter(request):
        for n in range(1, 21):
            yield {"event": "new_message", "data": f"Counter value {n}"}
            await asyncio.sleep(1)

    server.run()   # Ctrl-C stops it
"""

from __future__ import annotations

import logging as _logging

from . import _tidings
from ._errors import (
    BrokerError,
    ClientDisconnected,
    ConfigError,
    HTTPError,
    InvalidEventError,
    ServerStateError,
    ServerStoppedError,
    TidingsError,
)
from ._asgi import LifespanFailed
from ._default import channel, configure, default_server
from ._runner import Response
from ._serve import serve, serve_async
from ._server import Server
from ._tidings import Channel, Event, Request

__version__: str = _tidings.__version__

__all__ = [
    "BrokerError",
    "Channel",
    "ClientDisconnected",
    "ConfigError",
    "Event",
    "HTTPError",
    "InvalidEventError",
    "LifespanFailed",
    "Request",
    "Response",
    "Server",
    "ServerStateError",
    "ServerStoppedError",
    "TidingsError",
    "__version__",
    "channel",
    "configure",
    "default_server",
    "serve",
    "serve_async",
]

# Quiet by default, like any library: the host configures `logging`.
_logging.getLogger("tidings").addHandler(_logging.NullHandler())
_tidings.install_log_bridge()
