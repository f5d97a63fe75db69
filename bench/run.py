#!/usr/bin/env python3
"""Runs the benchmark scenarios against every peer, side by side in one run,
and writes bench/results/<profile>.json, docs/benchmarks.md and its plots.

Every run starts a fresh peer (a server following the peer protocol below)
pinned to core 0 and the load generator pinned to core 1, on 127.0.0.1 only,
and is bounded by the load generator's timeout. Each scenario is repeated and
reported as the median with min-max.

Peer protocol: `<peer> --port 0 --subscribers N --events E --rate R --size S
--mode broadcast|stream --threads T --payloads live|prebuilt` prints `port
<P>`, serves `GET /sse`, and (broadcast) once N subscribers are connected
prints `subscribers <N>`, publishes E events of S bytes whose data starts
with `<seq> <send time ns>` (built before the clock starts if prebuilt), then
prints `published <E> in <seconds>` and idles until killed; (stream) gives
every connection its own E events as fast as possible. A peer that joins a
cluster also takes `--broker redis://...` (N then counts the cluster's
subscribers), `--reuse-port 1` (workers sharing one port) and `--publisher 0`
(serve only).

Usage: bench/run.py [--profile quick|full] [--repeat N] [--only PEER,...]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import os
import queue
import resource
import shutil
import signal
import statistics
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import report
from report import Json

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "target" / "release"
PEER_SCRIPTS = ROOT / "bench" / "peers"
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
SERVER_CORE, LOADGEN_CORE, BOTH_CORES = "0", "1", "0,1"


@dataclass(frozen=True)
class Peer:
    name: str
    command: tuple[str, ...]
    about: str
    modes: frozenset[str] = frozenset({"broadcast", "stream"})
    # Peers that need minutes for the full event count publish fewer events in
    # burst runs (deliveries/s stays comparable) and run once in the quick profile.
    slow: bool = False
    # Files the peer needs besides its program (bench/setup.sh installs them).
    requires: tuple[str, ...] = ()
    # Takes --broker, --publisher and (where workers apply) --reuse-port.
    clusters: bool = False

    def missing(self) -> str | None:
        """Why this peer cannot run here, or None."""
        program = self.command[0]
        if "/" not in program and shutil.which(program) is None:
            return f"{program} not on PATH"
        for path in ((program,) if "/" in program else ()) + self.requires:
            if not Path(path).exists():
                return f"{path} not found (make bench builds and installs the peers)"
        return None


PEERS = [
    Peer("ceiling", (str(BIN / "peer_ceiling"),),
         "the smallest encode-once server: one writer thread writes each batch to every socket in turn",
         modes=frozenset({"broadcast"})),
    Peer("tidings", (str(BIN / "peer_tidings"),), "tidings driven from Rust", clusters=True),
    Peer("tidings-c", (str(BIN / "peer_c"),), "tidings driven from C through its C ABI",
         modes=frozenset({"broadcast"})),
    Peer("tidings-python", (str(VENV_PYTHON), str(PEER_SCRIPTS / "python_peer.py"), "--impl", "tidings"),
         "tidings driven from Python (publisher and stream producers in Python)"),
    Peer("tidings-node", ("node", str(PEER_SCRIPTS / "node_peer.js")),
         "tidings driven from Node (publisher and stream producers in JavaScript)"),
    Peer("axum", (str(BIN / "peer_axum"),),
         "axum `Sse` over a tokio broadcast channel, a task per connection: the afternoon version"),
    Peer("nchan", ("python3", str(PEER_SCRIPTS / "nchan_peer.py")),
         "nginx + nchan (Debian), one worker, events published through nchan's HTTP publisher",
         modes=frozenset({"broadcast"}), slow=True,
         requires=("/usr/sbin/nginx", "/usr/lib/nginx/modules/ngx_nchan_module.so"), clusters=True),
    Peer("sse-starlette", (str(VENV_PYTHON), str(PEER_SCRIPTS / "python_peer.py"), "--impl", "sse-starlette"),
         "uvicorn + sse-starlette, the idiomatic broadcast (an asyncio queue per subscriber)", slow=True),
    Peer("fastapi", (str(VENV_PYTHON), str(PEER_SCRIPTS / "python_peer.py"), "--impl", "fastapi"),
         "uvicorn + FastAPI `StreamingResponse`, as in the classic demos, same broadcast", slow=True),
    Peer("fastapi-on-tidings", (str(VENV_PYTHON), str(PEER_SCRIPTS / "python_peer.py"), "--impl", "fastapi-on-tidings"),
         "the fastapi peer's app, unchanged, under `tidings run`'s ASGI server instead of uvicorn", slow=True),
    Peer("fastapi-channel", (str(VENV_PYTHON), str(PEER_SCRIPTS / "python_peer.py"), "--impl", "fastapi-channel"),
         "a FastAPI endpoint returning `ChannelResponse` (streams: tidings' `EventSourceResponse`): "
         "Python decides, Rust serves"),
]
FAST = ("ceiling", "tidings", "tidings-c", "tidings-python", "tidings-node", "axum")
RUST = ("ceiling", "tidings", "axum")
DRIVERS = ("tidings", "tidings-c", "tidings-python", "tidings-node")
TLS_PEERS = ("tidings",)  # the peers that take --tls-cert and --tls-key (and --hub)
STREAMS_PER_CONNECTION = 100  # HTTP/2: a page's EventSources share one connection


@dataclass(frozen=True)
class Fanout:
    """One channel, N subscribers, E events at a fixed rate (0: a burst)."""
    name: str
    subscribers: int
    events: int
    rate: float
    size: int
    peers: tuple[str, ...] | None = None
    both_cores: bool = False
    # h1, tls (HTTP/1.1 over TLS), h2 (over TLS, 100 streams a connection), or
    # hub / hub-template (HTTP/1.1 to the Mercure hub, selecting the channel's
    # topic exactly or by a URI template)
    transport: str = "h1"
    # Hub scenarios: this many more hub subscribers, each of a topic nobody
    # publishes to, only held (and the same runs without them after).
    quiet: int = 0
    kind: str = "fanout"


@dataclass(frozen=True)
class Sustained:
    """The highest fixed rate delivered completely with p99 <= 100 ms."""
    name: str
    subscribers: int
    size: int
    seconds: float
    refine: int
    top: float = 12_800  # the search stops here
    peers: tuple[str, ...] | None = None
    kind: str = "sustained"


@dataclass(frozen=True)
class Streams:
    """A producer per connection (the counter demo without its delay)."""
    name: str
    connections: int
    events: int
    size: int
    peers: tuple[str, ...] | None = None
    kind: str = "streams"


@dataclass(frozen=True)
class Idle:
    """N connected subscribers and no events: server memory per connection."""
    name: str
    connections: int
    peers: tuple[str, ...] | None = None
    transport: str = "h1"
    kind: str = "idle"


@dataclass(frozen=True)
class PublishCost:
    """Publish calls/s from the host language, back to back."""
    name: str
    subscribers: int
    events: int
    peers: tuple[str, ...] = DRIVERS
    kind: str = "publish"


@dataclass(frozen=True)
class Cluster:
    """N subscribers spread over `nodes` servers sharing a Redis broker, E
    events published on the first, beside one server serving them all alone
    (with and without the broker), on the same core."""
    name: str
    nodes: int
    subscribers: int
    events: int
    rate: float
    size: int
    peers: tuple[str, ...] | None = None
    kind: str = "cluster"


@dataclass(frozen=True)
class Workers:
    """`workers` processes sharing one port (SO_REUSEPORT) and a Redis broker,
    N subscribers from `loadgens` load generators: past one process's
    open-file limit."""
    name: str
    workers: int
    subscribers: int
    events: int
    rate: float
    size: int
    loadgens: int
    peers: tuple[str, ...] | None = ("tidings",)
    kind: str = "workers"


Scenario = Fanout | Sustained | Streams | Idle | PublishCost | Cluster | Workers
SLOW_EVENTS = 0.05  # share of a burst's events a slow peer publishes

PROFILES: dict[str, list[Scenario]] = {
    "quick": [
        Fanout("latency-1k-200eps", 1000, 400, 200, 100),
        Fanout("latency-1k-200eps-both-cores", 1000, 400, 200, 100, peers=RUST, both_cores=True),
        Sustained("sustained-1k-100B", 1000, 100, seconds=1.5, refine=2),
        Fanout("throughput-1k-100B", 1000, 4000, 0, 100),
        Fanout("throughput-10k-100B", 10_000, 400, 0, 100, peers=FAST + ("nchan",)),
        Fanout("throughput-1k-4KiB", 1000, 400, 0, 4096),
        Streams("streams-1k", 1000, 1000, 100),
        Idle("idle-10k", 10_000),
        Idle("idle-100k", 100_000, peers=RUST + ("nchan",)),
        # What TLS and HTTP/2 cost, beside the plain figures above.
        Fanout("throughput-1k-100B-tls", 1000, 4000, 0, 100, peers=TLS_PEERS, transport="tls"),
        Fanout("throughput-1k-100B-h2", 1000, 4000, 0, 100, peers=TLS_PEERS, transport="h2"),
        Idle("idle-10k-tls", 10_000, peers=TLS_PEERS, transport="tls"),
        Idle("idle-10k-h2", 10_000, peers=TLS_PEERS, transport="h2"),
        # What the Mercure hub's topic filter and hyper path cost.
        Fanout("throughput-1k-100B-hub", 1000, 4000, 0, 100, peers=TLS_PEERS, transport="hub"),
        Fanout("throughput-1k-100B-hub-template", 1000, 4000, 0, 100, peers=TLS_PEERS, transport="hub-template"),
        Idle("idle-10k-hub", 10_000, peers=TLS_PEERS, transport="hub"),
        Fanout("latency-1k-200eps-hub-9k-quiet", 1000, 400, 200, 100, peers=TLS_PEERS, transport="hub",
               quiet=9000),
        PublishCost("publish-0", 0, 200_000),
        PublishCost("publish-1k", 1000, 20_000),
        # 3k sockets at 20 events/s keep core 0 nearly busy here (~15 µs a
        # delivery when each event wakes every subscriber); at 5 the added
        # latency of Redis shows alone.
        Cluster("cluster-latency-3x1k-5eps", 3, 3000, 50, 5, 100),
        Cluster("cluster-latency-3x1k-20eps", 3, 3000, 100, 20, 100),
        Cluster("cluster-throughput-3x1k-100B", 3, 3000, 4000, 0, 100),
        Workers("workers-100k", 6, 100_000, 30, 5, 100, loadgens=6),
    ],
    # A minute-long pass over every scenario kind, for the bench's own tests.
    "smoke": [
        Fanout("latency-1k-200eps", 50, 40, 200, 100),
        Sustained("sustained-1k-100B", 50, 100, seconds=0.5, refine=0, top=400),
        Fanout("throughput-1k-100B", 50, 400, 0, 100),
        Streams("streams-1k", 50, 50, 100),
        Idle("idle-10k", 200),
        Fanout("throughput-1k-100B-h2", 250, 100, 0, 100, peers=TLS_PEERS, transport="h2"),
        Idle("idle-10k-tls", 200, peers=TLS_PEERS, transport="tls"),
        Fanout("throughput-1k-100B-hub-template", 50, 100, 0, 100, peers=TLS_PEERS, transport="hub-template"),
        Fanout("latency-1k-200eps-hub-9k-quiet", 50, 40, 200, 100, peers=TLS_PEERS, transport="hub", quiet=100),
        PublishCost("publish-0", 0, 2000),
        Cluster("cluster-latency-3x1k-20eps", 3, 60, 20, 20, 100),
        Workers("workers-100k", 2, 200, 10, 20, 100, loadgens=2),
    ],
    "full": [
        Fanout("latency-1k-200eps", 1000, 2000, 200, 100),
        Fanout("latency-1k-200eps-both-cores", 1000, 2000, 200, 100, peers=FAST, both_cores=True),
        Fanout("latency-10k-200eps", 10_000, 1000, 200, 100),
        Sustained("sustained-1k-100B", 1000, 100, seconds=4, refine=3),
        Fanout("throughput-100-100B", 100, 20_000, 0, 100),
        Fanout("throughput-1k-100B", 1000, 20_000, 0, 100),
        Fanout("throughput-10k-100B", 10_000, 2000, 0, 100),
        Fanout("throughput-1k-4KiB", 1000, 2000, 0, 4096),
        Streams("streams-1k", 1000, 1000, 100),
        Idle("idle-10k", 10_000),
        Idle("idle-50k", 50_000),
        Idle("idle-100k", 100_000),
        Fanout("throughput-1k-100B-tls", 1000, 20_000, 0, 100, peers=TLS_PEERS, transport="tls"),
        Fanout("throughput-1k-100B-h2", 1000, 20_000, 0, 100, peers=TLS_PEERS, transport="h2"),
        Idle("idle-10k-tls", 10_000, peers=TLS_PEERS, transport="tls"),
        Idle("idle-10k-h2", 10_000, peers=TLS_PEERS, transport="h2"),
        Fanout("throughput-1k-100B-hub", 1000, 20_000, 0, 100, peers=TLS_PEERS, transport="hub"),
        Fanout("throughput-1k-100B-hub-template", 1000, 20_000, 0, 100, peers=TLS_PEERS, transport="hub-template"),
        Idle("idle-10k-hub", 10_000, peers=TLS_PEERS, transport="hub"),
        Fanout("latency-1k-200eps-hub-9k-quiet", 1000, 2000, 200, 100, peers=TLS_PEERS, transport="hub",
               quiet=9000),
        PublishCost("publish-0", 0, 1_000_000),
        PublishCost("publish-1k", 1000, 100_000),
        Cluster("cluster-latency-3x1k-5eps", 3, 3000, 100, 5, 100),
        Cluster("cluster-latency-3x1k-20eps", 3, 3000, 400, 20, 100),
        Cluster("cluster-throughput-3x1k-100B", 3, 3000, 20_000, 0, 100),
        Workers("workers-100k", 6, 100_000, 100, 5, 100, loadgens=6),
    ],
}


class Pki:
    """A CA and a certificate for 127.0.0.1 it signed, made with the openssl
    command line once per run, for the TLS and HTTP/2 scenarios."""

    _made: Pki | None = None

    def __init__(self) -> None:
        self.directory = tempfile.TemporaryDirectory(prefix="bench-pki-")
        path = Path(self.directory.name)
        self.ca, self.cert, self.key = path / "ca.pem", path / "server.pem", path / "server.key"

        def openssl(*args: str | Path) -> None:
            subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)

        curve = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes")
        openssl("req", "-x509", *curve, "-days", "2", "-subj", "/CN=bench CA", "-keyout", path / "ca.key",
                "-out", self.ca, "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign")
        (path / "san.ext").write_text("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
        openssl("req", *curve, "-subj", "/CN=127.0.0.1", "-keyout", self.key, "-out", path / "server.csr")
        openssl("x509", "-req", "-in", path / "server.csr", "-CA", self.ca, "-CAkey", path / "ca.key",
                "-CAcreateserial", "-days", "2", "-extfile", path / "san.ext", "-out", self.cert)

    @classmethod
    def shared(cls) -> Pki:
        if cls._made is None:
            cls._made = Pki()
        return cls._made


# What a hub scenario's subscribers ask the hub for: the peer's channel
# /sse is the topic /sse.
HUB_PATHS = {
    "hub": "/.well-known/mercure?topic=%2Fsse",
    "hub-template": "/.well-known/mercure?topic=%2F%7Bname%7D",
}


def transport_options(transport: str) -> dict[str, object]:
    """The peer's options for `transport`: a certificate over TLS, the
    hub for a hub scenario."""
    if transport == "h1":
        return {}
    if transport in HUB_PATHS:
        return {"hub": 1}
    pki = Pki.shared()
    return {"tls_cert": pki.cert, "tls_key": pki.key}


class RunningPeer:
    """A peer process in its own session, its stdout read on a thread."""

    def __init__(self, peer: Peer, cores: str, **options: object) -> None:
        command = ["taskset", "-c", cores, *peer.command]
        for name, value in options.items():
            command += [f"--{name.replace('_', '-')}", str(value)]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, start_new_session=True)
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        line = self.expect("port ", timeout=30)
        if line is None:
            self.kill()
            raise RuntimeError(f"{peer.name} did not start (exit {self.process.poll()})")
        self.port = int(line.split()[1])

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.strip())

    def expect(self, prefix: str, timeout: float) -> str | None:
        """The next stdout line starting with `prefix`, or None after `timeout`."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                return None
            if line.startswith(prefix):
                return line
        return None

    def published_per_s(self, timeout: float) -> float | None:
        line = self.expect("published ", timeout)
        if line is None:
            return None
        _, events, _, seconds = line.split()
        return int(events) / max(float(seconds), 1e-9)

    def kill(self) -> None:
        """Ends the peer's whole process group: SIGTERM first (so wrappers such
        as the nchan peer clean up), then SIGKILL whatever is left after 3 s."""
        with contextlib.suppress(ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=3)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


# Connections from one source address to one server port: Linux picks
# connect() ports from half of the ephemeral range (~14k here) first, and past
# it each connect searches the rest (16k connections took 10 s, 10k 0.6 s).
CONNECTIONS_PER_SOURCE = 10_000


QUIET_PATH = "/.well-known/mercure?topic=%2Fquiet%2F{n}"


def loadgen_command(ports: list[int], pids: list[int], connections: int, events: int, timeout: float,
                    cores: str, *, source_offset: int = 0, transport: str = "h1", quiet: int = 0) -> list[str]:
    sources = max(1, math.ceil(connections / CONNECTIONS_PER_SOURCE))
    command = ["taskset", "-c", cores, str(BIN / "loadgen"), "--port", ",".join(map(str, ports)),
               "--pid", ",".join(map(str, pids)), "--connections", str(connections), "--events", str(events),
               "--timeout", str(timeout), "--hold", "2", "--sources", str(sources),
               "--source-offset", str(source_offset)]
    if transport in HUB_PATHS:
        command += ["--path", HUB_PATHS[transport]]
        if quiet:
            command += ["--quiet", str(quiet), "--quiet-path", QUIET_PATH]
    elif transport != "h1":
        command += ["--transport", transport, "--tls-ca", str(Pki.shared().ca),
                    "--streams-per-connection", str(STREAMS_PER_CONNECTION)]
    return command


def loadgen(ports: list[int], pids: list[int], connections: int, events: int, timeout: float, cores: str,
            transport: str = "h1", quiet: int = 0) -> Json:
    command = loadgen_command(ports, pids, connections, events, timeout, cores, transport=transport, quiet=quiet)
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout + 60, check=True)
    parsed: Json = json.loads(result.stdout)
    return parsed


def cpu_ms(pid: int) -> float:
    """A process's CPU time so far (user + system), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return float(line.split()[1])
    return 0.0


def open_sockets(pid: int) -> int:
    """How many sockets a process holds (its fds that are sockets)."""
    def target(fd: Path) -> str:
        try:
            return os.readlink(fd)
        except FileNotFoundError:  # closed while the directory was read
            return ""

    return sum(1 for fd in Path(f"/proc/{pid}/fd").iterdir() if target(fd).startswith("socket:"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Redis:
    """A redis-server of the run's own, on a free port of 127.0.0.1, without
    persistence, pinned to the servers' core (it is part of the server side)."""

    def __init__(self, cores: str) -> None:
        self.directory = tempfile.TemporaryDirectory(prefix="bench-redis-")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            ["taskset", "-c", cores, "redis-server", "--bind", "127.0.0.1", "--port", str(self.port),
             "--save", "", "--appendonly", "no", "--dir", self.directory.name],
            stdout=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 10
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"redis-server did not start (exit {self.process.poll()})")
            time.sleep(0.02)

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as connection:
                connection.sendall(b"PING\r\n")
                return connection.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def cpu_ms(self) -> float:
        return cpu_ms(self.process.pid)

    def close(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()
        self.process.wait()
        self.directory.cleanup()

    def __enter__(self) -> Redis:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def run_fanout(peer: Peer, subscribers: int, events: int, rate: float, size: int, *, timeout: float,
               both_cores: bool = False, mode: str = "broadcast", payloads: str = "live",
               transport: str = "h1", quiet: int = 0) -> Json:
    server_cores, client_cores = (BOTH_CORES, BOTH_CORES) if both_cores else (SERVER_CORE, LOADGEN_CORE)
    running = RunningPeer(peer, server_cores, subscribers=subscribers + quiet, events=events, rate=rate,
                          size=size, mode=mode, threads=2 if both_cores else 1, payloads=payloads,
                          **transport_options(transport))
    try:
        result = loadgen([running.port], [running.process.pid], subscribers, events, timeout, client_cores,
                         transport, quiet)
        if mode == "broadcast":
            result["publish_calls_per_s"] = running.published_per_s(timeout=1)
        return result
    finally:
        running.kill()


def scaled(peer: Peer, events: int) -> int:
    return max(20, round(events * SLOW_EVENTS)) if peer.slow else events


def fanout(peer: Peer, scenario: Fanout, repeat: int) -> Json:
    events = scaled(peer, scenario.events) if not scenario.rate else scenario.events
    timeout = (events / scenario.rate + 20) if scenario.rate else 60
    def measure(transport: str, quiet: int = scenario.quiet) -> list[Json]:
        return [run_fanout(peer, scenario.subscribers, events, scenario.rate, scenario.size, timeout=timeout,
                           both_cores=scenario.both_cores, transport=transport, quiet=quiet)
                for _ in range(repeat)]

    runs = measure(scenario.transport)
    if scenario.quiet:
        # The same subscribers without the quiet ones: what those cost.
        alone = measure(scenario.transport, 0)
        return {"events": events, "runs": runs, "metrics": summarize(runs),
                "alone": {"runs": alone, "metrics": summarize(alone)}}
    return {"events": events, "runs": runs, "metrics": summarize(runs), **plain_baseline(scenario, measure)}


def plain_baseline(scenario: Fanout | Idle, measure: Callable[[str], list[Json]]) -> Json:
    """For a TLS, HTTP/2 or hub scenario, the same runs over plain HTTP/1.1
    (at the channel's path) right after, so that what the transport costs is
    a ratio within one run."""
    if scenario.transport == "h1":
        return {}
    runs = measure("h1")
    return {"plain": {"runs": runs, "metrics": summarize(runs)}}


def streams(peer: Peer, scenario: Streams, repeat: int) -> Json:
    events = scaled(peer, scenario.events)
    runs = [run_fanout(peer, scenario.connections, events, 0, scenario.size, timeout=60, mode="stream")
            for _ in range(repeat)]
    return {"events": events, "runs": runs, "metrics": summarize(runs)}


def idle(peer: Peer, scenario: Idle, repeat: int) -> Json:
    def measure(transport: str) -> list[Json]:
        runs = []
        for _ in range(repeat):
            running = RunningPeer(peer, SERVER_CORE, subscribers=scenario.connections, events=0, rate=0,
                                  size=100, mode="broadcast", threads=1, **transport_options(transport))
            try:
                runs.append(loadgen([running.port], [running.process.pid], scenario.connections, 0, 90,
                                    LOADGEN_CORE, transport))
            finally:
                running.kill()
        return runs

    runs = measure(scenario.transport)
    return {"runs": runs, "metrics": summarize(runs), **plain_baseline(scenario, measure)}


def sustained(peer: Peer, scenario: Sustained, repeat: int) -> Json:
    """Doubles (or halves) the rate from 200 ev/s to the edge, then bisects."""
    steps: list[Json] = []

    def holds(rate: float) -> bool:
        events = max(20, round(rate * scenario.seconds))
        # A run that needs three times its length has missed anyway.
        run = run_fanout(peer, scenario.subscribers, events, rate, scenario.size, timeout=3 * events / rate + 3)
        ok = bool(run["complete_streams"] == scenario.subscribers and run["gaps"] == 0
                  and run["latency_ms"]["p99"] <= 100)
        steps.append({"rate": rate, "held": ok, "p99_ms": run["latency_ms"]["p99"],
                      "complete_streams": run["complete_streams"], "deliveries_per_s": run["deliveries_per_s"],
                      "loadgen_cpu_ms": run["loadgen_cpu_ms"], "seconds": run["seconds"]})
        print(f"    {rate:8.1f} ev/s: {'held' if ok else 'missed'} (p99 {run['latency_ms']['p99']:.1f} ms)",
              file=sys.stderr, flush=True)
        return ok

    best: float = 0.0
    worst: float | None = None  # the lowest rate seen to miss
    rate = 200.0
    if holds(rate):
        best = rate
        while rate < scenario.top and holds(rate * 2):
            rate *= 2
            best = rate
        worst = rate * 2 if rate < scenario.top else None
    else:
        worst = rate
        while rate > 6.25:
            rate /= 2
            if holds(rate):
                best = rate
                break
            worst = rate
    for _ in range(scenario.refine if worst is not None else 0):
        assert worst is not None
        middle = round((best + worst) / 2)
        if holds(middle):
            best = middle
        else:
            worst = middle
    return {"steps": steps, "rate": best, "deliveries_per_s": best * scenario.subscribers}


def publish_cost(peer: Peer, scenario: PublishCost, repeat: int) -> Json:
    """Payloads are built before the clock starts: the calls alone are timed."""
    rates = []
    for _ in range(repeat):
        if scenario.subscribers:
            run = run_fanout(peer, scenario.subscribers, scenario.events, 0, 100, timeout=60, payloads="prebuilt")
            rates.append(run["publish_calls_per_s"] or 0.0)
            continue
        running = RunningPeer(peer, SERVER_CORE, subscribers=0, events=scenario.events, rate=0, size=100,
                              mode="broadcast", threads=1, payloads="prebuilt")
        try:
            rates.append(running.published_per_s(timeout=120) or 0.0)
        finally:
            running.kill()
    return {"calls_per_s": rates, "metrics": {"calls_per_s": spread(rates)}}


def kill_all(processes: list[RunningPeer] | list[subprocess.Popen[str]]) -> None:
    for process in processes:
        process.kill()


def run_cluster(peer: Peer, nodes: int, subscribers: int, events: int, rate: float, size: int, *,
                broker: bool, timeout: float) -> Json:
    """`subscribers` spread over `nodes` servers (a Redis broker of its own
    joins them when `broker`), `events` published on the first one."""
    with contextlib.ExitStack() as stack:
        redis = stack.enter_context(Redis(SERVER_CORE)) if broker else None
        running: list[RunningPeer] = []
        stack.callback(kill_all, running)
        for index in range(nodes):
            # Every node makes its channel alike (from the same arguments); one publishes.
            options: dict[str, object] = {
                "subscribers": subscribers, "events": events, "rate": rate, "size": size, "mode": "broadcast",
                "threads": 1, "payloads": "live"}
            if redis is not None:
                options |= {"broker": redis.url, "publisher": int(index == 0)}
            running.append(RunningPeer(peer, SERVER_CORE, **options))
        redis_before = redis.cpu_ms() if redis is not None else 0.0
        result = loadgen([node.port for node in running], [node.process.pid for node in running], subscribers,
                         events, timeout, LOADGEN_CORE)
        result["publish_calls_per_s"] = running[0].published_per_s(timeout=1)
        if redis is not None:
            result["redis_cpu_us_per_event"] = (redis.cpu_ms() - redis_before) * 1000 / max(1, events)
        return result


def cluster_setups(scenario: Cluster) -> dict[str, tuple[int, bool]]:
    """Setup name → (nodes, broker)."""
    return {"one node": (1, False), "one node + Redis": (1, True),
            f"{scenario.nodes} nodes + Redis": (scenario.nodes, True)}


def cluster(peer: Peer, scenario: Cluster, repeat: int) -> Json:
    events = scaled(peer, scenario.events) if not scenario.rate else scenario.events
    timeout = (events / scenario.rate + 30) if scenario.rate else 90
    setups = {}
    for setup, (nodes, broker) in cluster_setups(scenario).items():
        runs = [run_cluster(peer, nodes, scenario.subscribers, events, scenario.rate, scenario.size, broker=broker,
                            timeout=timeout) for _ in range(repeat)]
        setups[setup] = {"nodes": nodes, "broker": broker, "runs": runs, "metrics": summarize(runs)}
    return {"events": events, "setups": setups}


def run_workers(peer: Peer, workers: int, subscribers: int, events: int, rate: float, size: int, *,
                loadgens: int, timeout: float) -> Json:
    """`workers` servers on one port and one broker; `loadgens` load
    generators side by side, each from its own source addresses, share the
    subscribers. Memory is read when the first worker (the publisher) counts
    them all in the cluster, before it publishes."""
    with contextlib.ExitStack() as stack:
        redis = stack.enter_context(Redis(SERVER_CORE))
        running: list[RunningPeer] = []
        stack.callback(kill_all, running)
        # Every worker makes its channel alike (from the same arguments); the first publishes.
        shared = {"subscribers": subscribers, "events": events, "rate": rate, "size": size, "mode": "broadcast",
                  "threads": 1, "payloads": "live", "broker": redis.url, "reuse_port": 1}
        running.append(RunningPeer(peer, SERVER_CORE, port=0, publisher=1, **shared))
        port = running[0].port
        for _ in range(workers - 1):
            running.append(RunningPeer(peer, SERVER_CORE, port=port, publisher=0, **shared))
        pids = [node.process.pid for node in running]
        time.sleep(0.5)  # each worker's connections to Redis are made
        rss_before = sum(rss_kib(pid) for pid in pids)
        sockets_before = [open_sockets(pid) for pid in pids]
        shares = [subscribers // loadgens + (1 if n < subscribers % loadgens else 0) for n in range(loadgens)]
        sources_each = max(1, math.ceil(max(shares) / CONNECTIONS_PER_SOURCE))
        clients = [subprocess.Popen(loadgen_command([port], pids, share, events, timeout, LOADGEN_CORE,
                                                    source_offset=n * sources_each),
                                    stdout=subprocess.PIPE, text=True)
                   for n, share in enumerate(shares)]
        stack.callback(kill_all, clients)  # those still running
        if running[0].expect("subscribers ", timeout=timeout) is None:
            raise RuntimeError(f"the cluster never counted {subscribers:,} subscribers "
                               f"(connections per worker: {[open_sockets(pid) for pid in pids]})")
        # Read at once: the events (and the load generators' exits) follow.
        rss_full = sum(rss_kib(pid) for pid in pids)
        cpu_before, redis_before = sum(cpu_ms(pid) for pid in pids), redis.cpu_ms()
        per_worker = [open_sockets(pid) - before for pid, before in zip(pids, sockets_before)]
        reports = [json.loads(client.communicate(timeout=timeout + 60)[0]) for client in clients]
        cpu_after, redis_after = sum(cpu_ms(pid) for pid in pids), redis.cpu_ms()
    received = sum(r["events_received"] for r in reports)
    answered = sum(r["answered"] for r in reports)
    seconds = max(r["seconds"] for r in reports)
    return {
        "connections": subscribers, "answered": answered,
        "complete_streams": sum(r["complete_streams"] for r in reports),
        "events_received": received, "gaps": sum(r["gaps"] for r in reports),
        "seconds": seconds, "deliveries_per_s": received / seconds if seconds else 0.0,
        # Each load generator's percentiles; the worst stands for the whole.
        "latency_ms": {p: max(r["latency_ms"][p] for r in reports) for p in ("p50", "p99", "p999", "max")},
        "server_rss_kib_before": rss_before, "server_rss_kib_after": rss_full,
        "rss_kib_per_connection": (rss_full - rss_before) / answered if answered else 0.0,
        "connections_per_worker": per_worker,
        "server_cpu_us_per_delivery": (cpu_after - cpu_before) * 1000 / received if received else 0.0,
        "redis_cpu_us_per_event": (redis_after - redis_before) * 1000 / max(1, events),
        "loadgen_cpu_ms": sum(r["loadgen_cpu_ms"] for r in reports),
    }


def workers(peer: Peer, scenario: Workers, repeat: int) -> Json:
    timeout = 120 + scenario.events / scenario.rate
    runs = [run_workers(peer, scenario.workers, scenario.subscribers, scenario.events, scenario.rate, scenario.size,
                        loadgens=scenario.loadgens, timeout=timeout) for _ in range(repeat)]
    return {"events": scenario.events, "runs": runs, "metrics": summarize(runs)}


def spread(values: list[float]) -> Json:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)} if values else {}


METRICS: dict[str, Callable[[Json], float]] = {
    "deliveries_per_s": lambda r: r.get("deliveries_per_s", 0.0),
    "p50_ms": lambda r: r.get("latency_ms", {}).get("p50", 0.0),
    "p99_ms": lambda r: r.get("latency_ms", {}).get("p99", 0.0),
    "p999_ms": lambda r: r.get("latency_ms", {}).get("p999", 0.0),
    "cpu_us_per_delivery": lambda r: r.get("server_cpu_us_per_delivery", 0.0),
    "loadgen_cpu_ms": lambda r: r.get("loadgen_cpu_ms", 0.0),
    "seconds": lambda r: r.get("seconds", 0.0),
    "complete": lambda r: float(r.get("complete_streams", 0)) / max(1, r.get("connections", 1)),
    "gaps": lambda r: float(r.get("gaps", 0)),
    "rss_kib_per_connection": lambda r: r.get("rss_kib_per_connection", 0.0),
    "rss_mib": lambda r: (r.get("server_rss_kib_after") or 0.0) / 1024,
    "answered": lambda r: float(r.get("answered", 0)),
    "redis_cpu_us_per_event": lambda r: r.get("redis_cpu_us_per_event", 0.0),
}


def summarize(runs: list[Json]) -> Json:
    return {name: spread([get(run) for run in runs]) for name, get in METRICS.items()}


RUNNERS: dict[str, Callable[[Peer, Any, int], Json]] = {
    "fanout": fanout, "sustained": sustained, "streams": streams, "idle": idle, "publish": publish_cost,
    "cluster": cluster, "workers": workers,
}


def raise_fd_limit(wanted: int = 262_144) -> int:
    """Gives the peers and the load generator (who inherit it) room for 100k
    connections if this process may; returns the open-file limit they get."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), max(hard, wanted)))
    except (ValueError, PermissionError):  # raising the hard limit needs CAP_SYS_RESOURCE
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def too_many(scenario: Scenario, fd_limit: int) -> str | None:
    """Why this machine cannot run `scenario`, or None."""
    if isinstance(scenario, (Cluster, Workers)) and shutil.which("redis-server") is None:
        return "needs redis-server (bench/setup.sh installs it)"
    connections = getattr(scenario, "connections", getattr(scenario, "subscribers", 0))
    if isinstance(scenario, Workers):  # per process: the busiest worker or load generator
        connections = math.ceil(connections / min(scenario.workers, scenario.loadgens) * 1.05)
    if connections + 100 > fd_limit:
        return (f"needs {connections:,} sockets in one process; this machine's open-file limit is "
                f"{fd_limit:,} and cannot be raised (no CAP_SYS_RESOURCE)")
    return None


def save(results: Json, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")


def applicable(peer: Peer, scenario: Scenario) -> bool:
    if scenario.peers is not None and peer.name not in scenario.peers:
        return False
    if scenario.kind in ("cluster", "workers") and not peer.clusters:
        return False
    return scenario.kind != "streams" or "stream" in peer.modes


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_argument("--profile", choices=sorted(PROFILES), default="quick")
    cli.add_argument("--repeat", type=int, default=3)
    cli.add_argument("--only", help="comma-separated peers to run (default: all)")
    cli.add_argument("--scenarios", help="comma-separated scenarios to run (default: the profile's)")
    cli.add_argument("--out", type=Path, help="write the results, page and plots here instead of "
                     "bench/results/ and docs/")
    args = cli.parse_args()
    fd_limit = raise_fd_limit()
    chosen = set(args.only.split(",")) if args.only else None
    peers, skipped = [], {}
    for peer in PEERS:
        if chosen is not None and peer.name not in chosen:
            continue
        if (why := peer.missing()) is not None:
            skipped[peer.name] = why
            print(f"skipping {peer.name}: {why}", file=sys.stderr)
        else:
            peers.append(peer)
    scenarios = [s for s in PROFILES[args.profile] if not args.scenarios or s.name in args.scenarios.split(",")]
    started = time.monotonic()
    out = (args.out or ROOT / "bench" / "results") / f"{args.profile}.json"
    results: Json = {
        "profile": args.profile, "repeat": args.repeat,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": report.machine(), "versions": report.versions(ROOT),
        "peers": {peer.name: {"about": peer.about, "slow": peer.slow} for peer in peers},
        "skipped": skipped, "scenarios": {},
    }
    for scenario in scenarios:
        if (why := too_many(scenario, fd_limit)) is not None:
            print(f"skipping {scenario.name}: {why}", file=sys.stderr)
            results["skipped"][scenario.name] = why
            continue
        entry = {"kind": scenario.kind, **{k: v for k, v in vars(scenario).items() if k not in ("name", "peers")},
                 "run": results["date"], "peers": {}}
        results["scenarios"][scenario.name] = entry
        for peer in peers:
            if not applicable(peer, scenario):
                continue
            repeat = 1 if (peer.slow and args.profile == "quick") or scenario.kind in ("sustained", "workers") \
                else args.repeat
            elapsed = (time.monotonic() - started) / 60
            print(f"{elapsed:5.1f} min  {scenario.name:30} {peer.name:15} ×{repeat}", file=sys.stderr, flush=True)
            try:
                entry["peers"][peer.name] = RUNNERS[scenario.kind](peer, scenario, repeat)
            except (RuntimeError, subprocess.SubprocessError, json.JSONDecodeError, KeyError) as error:
                print(f"    failed: {error}", file=sys.stderr)
                entry["peers"][peer.name] = {"error": str(error)}
        save(results, out)  # after every scenario, so an interrupted run keeps what it measured
    results["minutes"] = round((time.monotonic() - started) / 60, 1)
    save(results, out)
    docs = args.out or ROOT / "docs"
    report.write(results, docs)
    print(f"wrote {out}, {docs / 'benchmarks.md'} and its plots in {results['minutes']} min", file=sys.stderr)


if __name__ == "__main__":
    main()
