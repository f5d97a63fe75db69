"""Type stubs of the native module (checked against it by mypy.stubtest)."""

from collections.abc import Callable
from typing import Any, Optional, Union, final

__version__: str
__all__ = [
    "Channel",
    "Event",
    "Reply",
    "Request",
    "Server",
    "StreamSink",
    "__version__",
    "install_log_bridge",
]

_Data = Union[str, bytes, dict[str, Any], list[Any], tuple[Any, ...]]

@final
class Event:
    """A server-sent event, validated when created."""

    def __new__(
        cls,
        data: Optional[_Data] = None,
        *,
        event: Optional[str] = None,
        id: Optional[str] = None,
        retry: Optional[int] = None,
        comment: Optional[str] = None,
    ) -> Event: ...
    @property
    def data(self) -> Optional[str]: ...
    @property
    def event(self) -> Optional[str]: ...
    @property
    def id(self) -> Optional[str]: ...
    @property
    def retry(self) -> Optional[int]: ...
    @property
    def comment(self) -> Optional[str]: ...
    def encode(self) -> bytes: ...
    def __eq__(self, value: object, /) -> bool: ...
    def __ne__(self, value: object, /) -> bool: ...
    __hash__: None  # type: ignore[assignment]

@final
class Request:
    """The request that opened a stream or reached a route."""

    @property
    def method(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def query_string(self) -> str: ...
    @property
    def query(self) -> dict[str, str]: ...
    @property
    def headers(self) -> dict[str, str]: ...
    @property
    def last_event_id(self) -> Optional[str]: ...
    @property
    def client(self) -> tuple[str, int]: ...

@final
class Channel:
    """A broadcast channel: every publish reaches every current subscriber."""

    def publish(
        self,
        data: Optional[Union[_Data, Event]] = None,
        *,
        event: Optional[str] = None,
        id: Optional[str] = None,
        retry: Optional[int] = None,
        comment: Optional[str] = None,
    ) -> Optional[str]: ...
    @property
    def path(self) -> str: ...
    @property
    def subscribers(self) -> int: ...
    @property
    def events_published(self) -> int: ...
    @property
    def history_len(self) -> int: ...
    def on_subscribe(self, callback: Callable[[Request], object]) -> None: ...
    def on_unsubscribe(self, callback: Callable[[Request], object]) -> None: ...

@final
class StreamSink:
    """The sending end of one client's stream (used by the stream runner)."""

    def accept(self) -> None: ...
    def reject(self, status: int, message: str) -> None: ...
    def refuse(self, status: Optional[int], reason: str) -> None: ...
    def try_send(self, item: object) -> bool: ...
    def send_blocking(self, item: object) -> None: ...
    def when_ready(self, callback: Callable[[bool], object]) -> None: ...
    def on_close(self, callback: Callable[[], object]) -> None: ...
    def close(self) -> None: ...
    def fail(self) -> None: ...
    @property
    def closed(self) -> bool: ...

@final
class Reply:
    """The one-time answer to a request on a route."""

    def send(self, body: Union[str, bytes], status: int = 200, content_type: str = "text/html; charset=utf-8") -> None: ...
    def refuse(self, status: Optional[int], reason: str) -> None: ...

@final
class Server:
    """The native server; ``tidings.Server`` wraps it."""

    def __new__(
        cls,
        host: str = "127.0.0.1",
        port: int = 8000,
        *,
        cors: Optional[Union[str, list[str], tuple[str, ...]]] = None,
        keepalive: Optional[float] = 15.0,
        write_timeout: float = 30.0,
        tcp_keepalive: Optional[float] = 60.0,
        drain_timeout: float = 5.0,
        worker_threads: int = 0,
        stream_queue: int = 32,
        max_connections: Optional[int] = None,
        max_connections_per_ip: Optional[int] = None,
        max_head_bytes: int = 16384,
        head_timeout: float = 10.0,
        max_pending_callbacks: int = 1024,
    ) -> Server: ...
    def channel(
        self,
        path: str,
        *,
        history: int = 1000,
        auto_id: bool = True,
        max_lag: int = 1024,
        keepalive: Optional[float] = None,
        max_subscribers: Optional[int] = None,
    ) -> Channel: ...
    def stream(self, path: str, opener: Callable[[Request, StreamSink], object]) -> None: ...
    def route(self, path: str, handler: Callable[[Request, Reply], object]) -> None: ...
    def page(self, path: str, file: str) -> None: ...
    def files(self, prefix: str, directory: str) -> None: ...
    def start(self) -> int: ...
    def stop(self, farewell: object = None, wait: bool = True) -> None: ...
    @property
    def port(self) -> Optional[int]: ...
    @property
    def host(self) -> str: ...
    @property
    def running(self) -> bool: ...
    def stats(self) -> dict[str, Any]: ...

def install_log_bridge() -> None: ...
