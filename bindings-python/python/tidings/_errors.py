"""The exceptions tidings raises. Each subclasses `TidingsError` and the
built-in a caller would catch for that kind of problem."""

from __future__ import annotations


class TidingsError(Exception):
    """Base class of every tidings error."""


class InvalidEventError(TidingsError, ValueError):
    """An event field would break the SSE framing (CR/LF in `event` or `id`,
    NUL in `id`); the message names the field. Nothing was sent."""


class ConfigError(TidingsError, ValueError):
    """A configuration value, route path or response value is invalid."""


class ServerStateError(TidingsError, RuntimeError):
    """The call does not fit the server's state (already running, a stream
    already accepted, a request already answered)."""


class ServerStoppedError(TidingsError, RuntimeError):
    """The server was stopped: it cannot be started again and its channels
    accept no more events."""


class ClientDisconnected(TidingsError, ConnectionError):
    """The client of a stream has gone away."""


class BrokerError(TidingsError, ConnectionError):
    """The broker cannot take or confirm an event: it has been unreachable
    long enough to fill the publish queue (``broker_queue``), it refused the
    event, or a ``publish_confirmed`` timeout passed. The message says
    which."""


class HTTPError(TidingsError):
    """Raise from a stream or route handler, before anything is sent, to
    answer with an HTTP error instead: ``raise HTTPError(400, "session_id
    must be an integer")``."""

    def __init__(self, status: int, reason: str = "") -> None:
        if not 400 <= status <= 599:
            raise ValueError(f"HTTPError status must be 400-599, not {status}")
        super().__init__(status, reason)
        self.status = status
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.status} {self.reason}".strip()
