#!/usr/bin/env python3
"""Peer: nginx + nchan, the established pub/sub server, broadcast mode only.

nginx serves the subscribers (--threads worker processes, default one, as
the other peers get one core) and this wrapper is the application that
publishes, the way nchan is meant to be used: an HTTP POST per message to
nchan's publisher location, over one persistent connection. The publisher's
speed is part of what is measured. Standard library only.

nchan answers GET /sse with an event stream only when the request says
`Accept: text/event-stream` (as every EventSource client does); without it,
403.

With `--broker redis://host:port`, nchan keeps the channel in Redis (its
Redis mode): several of these peers given the same broker are one cluster,
and the subscriber count nchan reports is the cluster's.

Usage: nchan_peer.py [--port P --subscribers N --events E --rate R --size S --threads T
                      --broker URL --publisher 0|1]
"""

from __future__ import annotations

import http.client
import json
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from protocol import announce, parser, publish_on_schedule, raise_fd_limit

NGINX = "/usr/sbin/nginx"
NCHAN_MODULE = "/usr/lib/nginx/modules/ngx_nchan_module.so"
START_TIMEOUT_S = 10.0

CONFIG = """\
load_module {module};
worker_processes {workers};
worker_rlimit_nofile 262144;
daemon off;
pid nginx.pid;
error_log error.log warn;
events {{ worker_connections 131072; }}
http {{
    access_log off;
    client_body_temp_path body;
    proxy_temp_path proxy;
    fastcgi_temp_path fastcgi;
    uwsgi_temp_path uwsgi;
    scgi_temp_path scgi;
    # One publisher connection for the whole run.
    keepalive_requests 1000000000;
    # Shared memory for messages; each is stored once, however many subscribers.
    nchan_max_reserved_memory 256M;
{redis_url}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location = /sse {{
            nchan_subscriber eventsource;
            nchan_channel_id bench;
{use_redis}
        }}
        location = /pub {{
            nchan_publisher;
            nchan_channel_id bench;
            # Subscribers get each message as it is published; the buffer is
            # only history for late joiners (none here), so keep it short
            # (10, 16 or 4096 fan out alike) and never expire a message.
            nchan_message_buffer_length 16;
            nchan_message_timeout 0;
{use_redis}
        }}
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until_listening(directory: Path, nginx: subprocess.Popen[bytes]) -> None:
    """nginx writes its pid file once its listening socket is bound."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while not (directory / "nginx.pid").exists():
        if nginx.poll() is not None:
            raise RuntimeError(f"nginx exited with status {nginx.returncode}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"nginx did not start in {START_TIMEOUT_S:g} s")
        time.sleep(0.01)


class Publisher:
    """nchan's HTTP publisher API over one persistent connection."""

    def __init__(self, port: int) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port)

    def channel(self) -> tuple[int, bytes]:
        """The status and body of nchan's channel info."""
        self.connection.request("GET", "/pub", headers={"Accept": "text/json"})
        response = self.connection.getresponse()
        return response.status, response.read()

    def subscribers(self) -> int:
        status, body = self.channel()
        # 404 until the first subscriber creates the channel.
        return json.loads(body)["subscribers"] if status == 200 else 0

    def wait_for_redis(self) -> None:
        """In Redis mode nchan answers 503 until it has connected."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while self.channel()[0] == 503:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nchan did not reach Redis in {START_TIMEOUT_S:g} s")
            time.sleep(0.01)

    def publish(self, data: str) -> None:
        self.connection.request("POST", "/pub", body=data.encode())
        response = self.connection.getresponse()
        response.read()
        if response.status not in (201, 202):
            raise RuntimeError(f"publish answered {response.status} {response.reason}")


def main() -> None:
    cli = parser(__doc__.split("\n\n")[0])
    cli.add_argument("--broker", help="redis://host:port: keep the channel in this Redis (nchan's Redis mode)")
    cli.add_argument("--publisher", type=int, choices=(0, 1), default=1, help="0: serve only, publish nothing")
    args = cli.parse_args()
    if args.mode != "broadcast":
        cli.error("nchan has no per-connection streams: only --mode broadcast")
    # The harness kills the whole process group; a wrapper stopped alone takes
    # nginx down too (also when started in the background, with SIGINT ignored).
    for stop in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop, lambda number, _frame: sys.exit(128 + number))
    # nginx inherits the raised limit; its worker_rlimit_nofile asks for more where allowed.
    raise_fd_limit()
    port = args.port or free_port()
    with tempfile.TemporaryDirectory(prefix="nchan-peer-") as name:
        directory = Path(name)
        # Started as root, nginx's workers run as nobody and must reach their temp paths.
        directory.chmod(0o755)
        config = directory / "nginx.conf"
        redis_url = f"    upstream redis {{ nchan_redis_server {args.broker}; }}" if args.broker else ""
        use_redis = "            nchan_redis_pass redis;" if args.broker else ""
        config.write_text(CONFIG.format(module=NCHAN_MODULE, workers=args.threads, port=port,
                                        redis_url=redis_url, use_redis=use_redis))
        nginx = subprocess.Popen([NGINX, "-p", name, "-c", str(config)])
        try:
            wait_until_listening(directory, nginx)
            publisher = Publisher(port)
            if args.broker:
                publisher.wait_for_redis()
            announce(port)
            if args.publisher:
                publish_on_schedule(args, publisher.subscribers, publisher.publish)
            nginx.wait()
            raise RuntimeError(f"nginx exited with status {nginx.returncode}")
        except Exception:
            log = directory / "error.log"
            if log.exists():
                sys.stderr.write(log.read_text(errors="replace"))
            raise
        finally:
            nginx.terminate()
            nginx.wait()


if __name__ == "__main__":
    main()
