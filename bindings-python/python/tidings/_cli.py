"""``tidings run MODULE:APP``: serve an ASGI application, with uvicorn's
flags where they exist, so that swapping ``uvicorn`` for ``tidings run`` is
the whole migration. ``tidings hub`` runs a standalone Mercure hub
(``_hub.py``)."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from typing import Any, Sequence

from . import _hub
from ._asgi import LIFESPAN_MODES, LifespanFailed

logger = logging.getLogger("tidings")

LOG_LEVELS = {
    "critical": logging.CRITICAL,
    "error": logging.ERROR,
    "warning": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
    "trace": 5,
}

# Exit statuses, as uvicorn's: 1 for a bad command line or app, 3 for a
# failed lifespan startup.
EXIT_USAGE = 1
EXIT_STARTUP_FAILED = 3


class AppNotFound(Exception):
    """The ``MODULE:APP`` string names nothing importable."""


def import_app(target: str, *, factory: bool = False) -> Any:
    """The object `target` (``package.module:attribute.path``) names; called
    with no arguments first if `factory`."""
    module_name, _, attributes = target.partition(":")
    if not module_name or not attributes:
        raise AppNotFound(f'the app must be given as "module:attribute", not {target!r}')
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name != module_name and not module_name.startswith(f"{error.name}."):
            raise  # the module exists; something it imports does not
        raise AppNotFound(f"could not import module {module_name!r}") from None
    app: Any = module
    for attribute in attributes.split("."):
        try:
            app = getattr(app, attribute)
        except AttributeError:
            raise AppNotFound(f"module {module_name!r} has no attribute {attributes!r}") from None
    if factory:
        if not callable(app):
            raise AppNotFound(f"{target} is not callable, so it cannot be an app factory")
        app = app()
    return app


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="tidings", description="tidings: a Server-Sent Events engine with a Rust transport.")
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser(
        "run",
        help="serve an ASGI application (FastAPI, Starlette, ...)",
        description="Serve the ASGI application APP (module:attribute), as uvicorn would.",
    )
    run.add_argument("app", metavar="APP", help="the application, as module:attribute (e.g. main:app)")
    run.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    run.add_argument("--port", type=int, default=8000, help="port to listen on; 0 picks a free one (default: 8000)")
    run.add_argument("--factory", action="store_true", help="APP is a function that returns the application")
    run.add_argument("--root-path", default="", help="the ASGI root_path, for an app mounted below a path prefix")
    run.add_argument("--app-dir", default="", help="directory to import APP from (default: the current directory)")
    run.add_argument("--log-level", choices=list(LOG_LEVELS), default="info", help="log level (default: info)")
    run.add_argument("--lifespan", choices=LIFESPAN_MODES, default="auto", help="the ASGI lifespan protocol (default: auto)")
    run.add_argument(
        "--timeout-graceful-shutdown",
        type=float,
        default=None,
        metavar="SECONDS",
        help="time open responses get to finish when stopping (default: 5)",
    )
    run.add_argument(
        "--proxy-headers",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="trust X-Forwarded-For/-Proto from --forwarded-allow-ips (default: on)",
    )
    run.add_argument(
        "--forwarded-allow-ips",
        default=None,
        help="proxies trusted with forwarded headers: '*' or a comma-separated list of addresses "
        "and networks (default: $FORWARDED_ALLOW_IPS or 127.0.0.1)",
    )
    run.add_argument(
        "--access-log",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="log one line per response on the tidings.access logger (default: on)",
    )
    run.add_argument(
        "--workers",
        type=positive,
        default=1,
        metavar="N",
        help="serve from N processes sharing the port (SO_REUSEPORT; each has its own channels unless they "
        "share a --broker) (default: 1)",
    )
    run.add_argument(
        "--broker",
        default=None,
        metavar="URL",
        help="join the app's channels with every server on this Redis (redis://host:port/db, or rediss:// "
        "over TLS), so that workers and machines act as one (default: $TIDINGS_BROKER, else none)",
    )
    run.add_argument(
        "--broker-ca",
        default=None,
        metavar="PEM",
        help="the certificate authorities a rediss:// broker's certificate must chain to "
        "(default: $TIDINGS_BROKER_CA, else the system's)",
    )
    run.add_argument(
        "--ssl-certfile",
        "--tls-cert",
        dest="tls_cert",
        default=None,
        metavar="PEM",
        help="serve HTTPS (and HTTP/2) with this certificate chain; SIGHUP reloads it (default: $TIDINGS_TLS_CERT)",
    )
    run.add_argument(
        "--ssl-keyfile",
        "--tls-key",
        dest="tls_key",
        default=None,
        metavar="PEM",
        help="the private key of --ssl-certfile (default: $TIDINGS_TLS_KEY)",
    )
    run.add_argument(
        "--metrics-path",
        default=None,
        metavar="PATH",
        help="serve Prometheus metrics at this path, e.g. /metrics (default: $TIDINGS_METRICS_PATH, else none)",
    )
    run.add_argument(
        "--reuse-port",
        action="store_true",
        help="let other processes listen on the same port (--workers sets it)",
    )
    run.add_argument("--reload", action="store_true", help="restart when a file under the reload directories changes")
    run.add_argument(
        "--reload-dir",
        action="append",
        default=None,
        metavar="DIR",
        help="directory to watch with --reload (repeatable; default: the app directory)",
    )
    _hub.add_parser(commands)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    """The ``tidings`` console script; returns the exit status."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    options = parser().parse_args(arguments)
    if options.command == "hub":
        logging.basicConfig(
            level=LOG_LEVELS[options.log_level],
            format="%(levelname)s:\t%(name)s: %(message)s",
        )
        return _hub.run(options)
    logging.basicConfig(
        level=LOG_LEVELS[options.log_level],
        format="%(levelname)s:\t%(name)s: %(message)s",
    )
    if not options.access_log:
        logging.getLogger("tidings.access").setLevel(logging.WARNING)
    app_dir = os.path.abspath(options.app_dir or os.curdir)
    if options.broker:
        # Read by the server the app declares when it is imported, here and
        # in every worker and reloaded child.
        os.environ["TIDINGS_BROKER"] = options.broker
    if options.broker_ca:
        os.environ["TIDINGS_BROKER_CA"] = os.path.abspath(options.broker_ca)
    if (options.tls_cert is None) != (options.tls_key is None):
        logger.error("--ssl-certfile and --ssl-keyfile go together")
        return EXIT_USAGE
    if options.tls_cert:
        os.environ["TIDINGS_TLS_CERT"] = os.path.abspath(options.tls_cert)
        os.environ["TIDINGS_TLS_KEY"] = os.path.abspath(options.tls_key)
    if options.metrics_path:
        os.environ["TIDINGS_METRICS_PATH"] = options.metrics_path
    if options.workers > 1:
        if options.reload:
            logger.error("--reload and --workers cannot be combined")
            return EXIT_USAGE
        return _workers(arguments, options)
    if options.reload:
        return _reload(arguments, options, app_dir)
    sys.path.insert(0, app_dir)
    try:
        app = import_app(options.app, factory=options.factory)
    except AppNotFound as error:
        logger.error("cannot load the app: %s", error)
        return EXIT_USAGE
    from ._serve import serve

    allowed = options.forwarded_allow_ips or os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
    try:
        serve(
            app,
            options.host,
            options.port,
            root_path=options.root_path,
            lifespan=options.lifespan,
            timeout_graceful_shutdown=options.timeout_graceful_shutdown,
            proxy_headers=options.proxy_headers,
            forwarded_allow_ips=allowed,
            reuse_port=options.reuse_port,
            # On stdout, for scripts and tests that start it on port 0.
            on_ready=lambda server: print(f"tidings: open {server.url}/", flush=True),
        )
    except LifespanFailed as error:
        logger.error("the application's startup failed: %s", error)
        return EXIT_STARTUP_FAILED
    except OSError as error:
        logger.error("%s", error)
        return EXIT_USAGE
    return 0


def positive(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _workers(arguments: list[str], options: argparse.Namespace) -> int:
    """Runs `options.workers` servers in child processes on one port, until
    SIGINT or SIGTERM, which each child gets too and answers by stopping
    gracefully. A child that fails stops the others; the exit status is the
    first failure's, else 0."""
    # Port 0: one free port for all, held (with SO_REUSEPORT, never
    # listening, so it takes no connections) while the workers run.
    reserved = None
    port = options.port
    if port == 0:
        family = socket.AF_INET6 if ":" in options.host else socket.AF_INET
        reserved = socket.socket(family, socket.SOCK_STREAM)
        reserved.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            reserved.bind((options.host, 0))
        except OSError as error:
            logger.error("cannot bind %s: %s", options.host, error)
            return EXIT_USAGE
        port = reserved.getsockname()[1]
    # The last occurrence of a flag wins: each child is one worker on `port`.
    command = [sys.executable, "-m", "tidings", *arguments, "--workers", "1", "--port", str(port), "--reuse-port"]
    children = [subprocess.Popen(command) for _ in range(options.workers)]
    logger.info("%d workers on %s:%d: %s", len(children), options.host, port, ", ".join(str(c.pid) for c in children))
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    previous = {signum: signal.signal(signum, stop) for signum in (signal.SIGINT, signal.SIGTERM)}
    status = 0
    try:
        while any(child.poll() is None for child in children):
            for child in children:
                code = child.poll()
                if code not in (None, 0) and not stopping:
                    logger.error("worker %d exited with status %d; stopping the others", child.pid, code)
                    status = code
                    stop(signal.SIGTERM, None)
            time.sleep(0.1)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if reserved is not None:
            reserved.close()
    return status or next((child.returncode for child in children if child.returncode), 0)


def _reload(arguments: list[str], options: argparse.Namespace, app_dir: str) -> int:
    """Runs the server in a child process, restarted on every change."""
    try:
        import watchfiles
    except ImportError:
        logger.error("--reload needs the watchfiles package: pip install watchfiles")
        return EXIT_USAGE
    child = [sys.executable, "-m", "tidings", *(a for a in arguments if a != "--reload")]
    directories = [os.path.abspath(d) for d in options.reload_dir or [app_dir]]
    logger.info("watching %s for changes", ", ".join(directories))
    watchfiles.run_process(
        *directories,
        target=shlex.join(child),
        target_type="command",
        watch_filter=watchfiles.PythonFilter(),
        callback=lambda changes: logger.info("%d file(s) changed; restarting", len(changes)),
    )
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
