"""``tidings hub``: a standalone Mercure hub. Subscribers open
``GET /.well-known/mercure?topic=...``; publishers ``POST`` form-encoded
updates with a JWT, as they would to a Mercure hub.

Settings come from the command line, else from the environment
(``TIDINGS_HUB_*``, so that keys stay out of ``ps``), else from the
``[hub]`` table of ``--config FILE.toml``."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
from typing import Any, Callable

logger = logging.getLogger("tidings")

EXIT_USAGE = 1

# Each setting, by its key in the TOML file (and, upper-cased after
# TIDINGS_HUB_, its environment variable), with its type.
SETTINGS: dict[str, type] = {
    "listen": str,
    "path": str,
    "jwt_key": str,
    "publisher_jwt_key": str,
    "subscriber_jwt_key": str,
    "jwt_algorithm": str,
    "anonymous": bool,
    "cors": list,
    "tls_cert": str,
    "tls_key": str,
    "broker": str,
    "topic_base": str,
    "history": int,
    "metrics_path": str,
}

KIND_NAMES = {str: "a string", int: "an integer", bool: "true or false", list: "a list of strings"}

DEFAULTS: dict[str, Any] = {
    "listen": "127.0.0.1:3000",
    "path": "/.well-known/mercure",
    "jwt_algorithm": "HS256",
    "anonymous": True,
    "cors": [],
    "history": 1000,
}


class SettingsError(Exception):
    """A setting that cannot work, with what to do about it."""


def add_parser(commands: Any) -> None:
    """Adds the ``hub`` command to the ``tidings`` command line."""
    hub = commands.add_parser(
        "hub",
        help="run a standalone Mercure hub",
        description="Run a Mercure hub: subscribe with GET PATH?topic=..., publish with a form POST "
        "and a JWT whose mercure.publish claim selects the topics.",
    )
    hub.add_argument("--listen", metavar="HOST:PORT", help="where to listen (default: 127.0.0.1:3000)")
    hub.add_argument("--path", help="the hub's path (default: /.well-known/mercure)")
    hub.add_argument(
        "--jwt-key",
        metavar="KEY",
        help="the key of publishers' and subscribers' tokens: a secret, or a public key in PEM for "
        "RS*/ES*/EdDSA (default: $TIDINGS_HUB_JWT_KEY)",
    )
    hub.add_argument("--publisher-jwt-key", metavar="KEY", help="the publishers' key, if it differs")
    hub.add_argument("--subscriber-jwt-key", metavar="KEY", help="the subscribers' key, if it differs")
    hub.add_argument("--jwt-algorithm", metavar="ALG", help="the tokens' algorithm (default: HS256)")
    hub.add_argument(
        "--cors",
        action="append",
        metavar="ORIGIN",
        help="an origin whose pages may subscribe, or '*' (repeatable; default: none)",
    )
    hub.add_argument("--tls-cert", metavar="PEM", help="serve HTTPS (and HTTP/2) with this certificate chain")
    hub.add_argument("--tls-key", metavar="PEM", help="the private key of --tls-cert")
    hub.add_argument("--broker", metavar="URL", help="share updates with every hub on this Redis (redis://...)")
    hub.add_argument(
        "--no-anonymous",
        dest="anonymous",
        action="store_false",
        default=None,
        help="turn subscribers without a token away (default: they receive public updates)",
    )
    hub.add_argument(
        "--topic-base",
        metavar="URL",
        help="what channel topics start with, e.g. https://example.com (default: none)",
    )
    hub.add_argument("--history", type=int, metavar="N", help="updates kept for resuming subscribers (default: 1000)")
    hub.add_argument("--metrics-path", metavar="PATH", help="serve Prometheus metrics at this path, e.g. /metrics")
    hub.add_argument("--config", metavar="FILE", help="read settings from the [hub] table of this TOML file")
    hub.add_argument(
        "--log-level",
        choices=["critical", "error", "warning", "info", "debug"],
        default="info",
        help="log level (default: info)",
    )


def settings(options: argparse.Namespace, environ: dict[str, str] | None = None) -> dict[str, Any]:
    """The hub's settings: the command line's, over the environment's, over
    the file's, over the defaults."""
    environ = dict(os.environ) if environ is None else environ
    chosen = dict(DEFAULTS)
    if options.config:
        chosen.update(read_config(options.config))
    for key, kind in SETTINGS.items():
        value = environ.get(f"TIDINGS_HUB_{key.upper()}")
        if value is not None:
            chosen[key] = parse_value(key, kind, value)
    for key in SETTINGS:
        value = getattr(options, key, None)
        if value is not None:
            chosen[key] = value
    return chosen


def parse_value(key: str, kind: type, text: str) -> Any:
    """A setting from an environment variable's text."""
    if kind is bool:
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise SettingsError(f"TIDINGS_HUB_{key.upper()} must be true or false, not {text!r}")
    if kind is int:
        try:
            return int(text)
        except ValueError:
            raise SettingsError(f"TIDINGS_HUB_{key.upper()} must be a number, not {text!r}") from None
    if kind is list:
        return [item.strip() for item in text.split(",") if item.strip()]
    return text


def read_config(path: str) -> dict[str, Any]:
    """The ``[hub]`` table of a TOML file, every key checked."""
    loads: Callable[[str], dict[str, Any]]
    try:
        import tomllib

        loads = tomllib.loads
    except ImportError:  # Python < 3.11
        try:
            import tomli  # type: ignore[import-not-found]

            loads = tomli.loads
        except ImportError:
            raise SettingsError("--config needs Python 3.11 or later (or: pip install tomli)") from None
    try:
        with open(path, encoding="utf-8") as file:
            document = loads(file.read())
    except OSError as error:
        raise SettingsError(f"cannot read {path}: {error.strerror}") from None
    except ValueError as error:
        raise SettingsError(f"{path} is not valid TOML: {error}") from None
    table = document.get("hub", {})
    if not isinstance(table, dict):
        raise SettingsError(f"{path}: [hub] must be a table")
    chosen: dict[str, Any] = {}
    for key, value in table.items():
        kind = SETTINGS.get(key)
        if kind is None:
            known = ", ".join(SETTINGS)
            raise SettingsError(f"{path}: unknown hub setting {key!r} (known: {known})")
        if kind is list and isinstance(value, str):
            value = [value]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise SettingsError(f"{path}: hub.{key} must be {KIND_NAMES[kind]}, not {value!r}")
        chosen[key] = value
    return chosen


def listen_address(listen: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) as a host and a port."""
    host, separator, port = listen.rpartition(":")
    if not separator or not port.isdigit() or int(port) > 65535:
        raise SettingsError(f"--listen must be HOST:PORT, such as 127.0.0.1:3000, not {listen!r}")
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port)


def build_server(chosen: dict[str, Any]) -> Any:
    """The server a hub with these settings runs."""
    from ._server import Server

    host, port = listen_address(chosen["listen"])
    shared = chosen.get("jwt_key")
    publisher = chosen.get("publisher_jwt_key") or shared
    subscriber = chosen.get("subscriber_jwt_key") or shared
    if publisher is None:
        logger.warning("no publisher key (--jwt-key or --publisher-jwt-key): nothing can be published over HTTP")
    cors = chosen.get("cors") or None
    return Server(
        host,
        port,
        cors=cors,
        tls_cert=chosen.get("tls_cert"),
        tls_key=chosen.get("tls_key"),
        broker=chosen.get("broker"),
        metrics_path=chosen.get("metrics_path"),
        hub=True,
        hub_path=chosen["path"],
        hub_publisher_key=publisher,
        hub_subscriber_key=subscriber,
        hub_jwt_algorithm=chosen["jwt_algorithm"],
        hub_anonymous=chosen["anonymous"],
        hub_topic_base=chosen.get("topic_base"),
        hub_history=chosen["history"],
    )


def run(options: argparse.Namespace) -> int:
    """``tidings hub``: serves until SIGINT or SIGTERM; the exit status."""
    from ._errors import TidingsError

    try:
        chosen = settings(options)
        server = build_server(chosen)
    except (SettingsError, TidingsError, ValueError, TypeError) as error:
        logger.error("%s", error)
        return EXIT_USAGE
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda _signum, _frame: stop.set())
    try:
        server.start()
    except (TidingsError, OSError) as error:
        logger.error("%s", error)
        return EXIT_USAGE
    # On stdout, for scripts and tests that start it on port 0.
    print(f"tidings hub: open {server.url}{chosen['path']}", flush=True)
    try:
        while not stop.wait(1.0):
            pass
    finally:
        server.stop()
    return 0
