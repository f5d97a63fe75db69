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
publishes E events of S bytes whose data starts with `<seq> <send time ns>`
(built before the clock starts if prebuilt), then prints `published <E> in
<seconds>` and idles until killed; (stream) gives every connection its own E
events as fast as possible.

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
import subprocess
import sys
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
    Peer("tidings", (str(BIN / "peer_tidings"),), "tidings driven from Rust"),
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
         requires=("/usr/sbin/nginx", "/usr/lib/nginx/modules/ngx_nchan_module.so")),
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
    kind: str = "idle"


@dataclass(frozen=True)
class PublishCost:
    """Publish calls/s from the host language, back to back."""
    name: str
    subscribers: int
    events: int
    peers: tuple[str, ...] = DRIVERS
    kind: str = "publish"


Scenario = Fanout | Sustained | Streams | Idle | PublishCost
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
        PublishCost("publish-0", 0, 200_000),
        PublishCost("publish-1k", 1000, 20_000),
    ],
    # A minute-long pass over every scenario kind, for the bench's own tests.
    "smoke": [
        Fanout("latency-1k-200eps", 50, 40, 200, 100),
        Sustained("sustained-1k-100B", 50, 100, seconds=0.5, refine=0, top=400),
        Fanout("throughput-1k-100B", 50, 400, 0, 100),
        Streams("streams-1k", 50, 50, 100),
        Idle("idle-10k", 200),
        PublishCost("publish-0", 0, 2000),
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
        PublishCost("publish-0", 0, 1_000_000),
        PublishCost("publish-1k", 1000, 100_000),
    ],
}


class RunningPeer:
    """A peer process in its own session, its stdout read on a thread."""

    def __init__(self, peer: Peer, cores: str, **options: object) -> None:
        command = ["taskset", "-c", cores, *peer.command]
        for name, value in options.items():
            command += [f"--{name}", str(value)]
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


def loadgen(port: int, pid: int, connections: int, events: int, timeout: float, cores: str) -> Json:
    sources = max(1, math.ceil(connections / 25_000))  # ~28k ephemeral ports per source address
    command = ["taskset", "-c", cores, str(BIN / "loadgen"), "--port", str(port), "--pid", str(pid),
               "--connections", str(connections), "--events", str(events), "--timeout", str(timeout),
               "--hold", "2", "--sources", str(sources)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout + 60, check=True)
    parsed: Json = json.loads(result.stdout)
    return parsed


def run_fanout(peer: Peer, subscribers: int, events: int, rate: float, size: int, *, timeout: float,
               both_cores: bool = False, mode: str = "broadcast", payloads: str = "live") -> Json:
    server_cores, client_cores = (BOTH_CORES, BOTH_CORES) if both_cores else (SERVER_CORE, LOADGEN_CORE)
    running = RunningPeer(peer, server_cores, subscribers=subscribers, events=events, rate=rate, size=size,
                          mode=mode, threads=2 if both_cores else 1, payloads=payloads)
    try:
        result = loadgen(running.port, running.process.pid, subscribers, events, timeout, client_cores)
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
    runs = [run_fanout(peer, scenario.subscribers, events, scenario.rate, scenario.size, timeout=timeout,
                       both_cores=scenario.both_cores) for _ in range(repeat)]
    return {"events": events, "runs": runs, "metrics": summarize(runs)}


def streams(peer: Peer, scenario: Streams, repeat: int) -> Json:
    events = scaled(peer, scenario.events)
    runs = [run_fanout(peer, scenario.connections, events, 0, scenario.size, timeout=60, mode="stream")
            for _ in range(repeat)]
    return {"events": events, "runs": runs, "metrics": summarize(runs)}


def idle(peer: Peer, scenario: Idle, repeat: int) -> Json:
    runs = []
    for _ in range(repeat):
        running = RunningPeer(peer, SERVER_CORE, subscribers=scenario.connections, events=0, rate=0, size=100,
                              mode="broadcast", threads=1)
        try:
            runs.append(loadgen(running.port, running.process.pid, scenario.connections, 0, 90, LOADGEN_CORE))
        finally:
            running.kill()
    return {"runs": runs, "metrics": summarize(runs)}


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
}


def summarize(runs: list[Json]) -> Json:
    return {name: spread([get(run) for run in runs]) for name, get in METRICS.items()}


RUNNERS: dict[str, Callable[[Peer, Any, int], Json]] = {"fanout": fanout, "sustained": sustained, "streams": streams, "idle": idle, "publish": publish_cost}


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
    connections = getattr(scenario, "connections", getattr(scenario, "subscribers", 0))
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
                 "peers": {}}
        results["scenarios"][scenario.name] = entry
        for peer in peers:
            if not applicable(peer, scenario):
                continue
            repeat = 1 if (peer.slow and args.profile == "quick") or scenario.kind == "sustained" else args.repeat
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
