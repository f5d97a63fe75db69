#!/usr/bin/env python3
"""The ASGI benchmark: the same apps under `tidings run`, uvicorn and
granian, side by side in one run, and docs/benchmarks-asgi.md from it.

Each server runs one process pinned to core 0 (the engine's threads and
the app's loop share it), wrk runs pinned to core 1 with 1 thread and 64
connections, on 127.0.0.1 only; each run is bounded by wrk's duration.
Every (app, server) pair is repeated, the servers taking turns round by
round so that a slower stretch of a shared machine hits them alike, and
reported as the median with min-max, with tidings ÷ peer ratios against
the issue's goals.

Usage: bench/asgi.py [--duration SECONDS] [--repeat N] [--out DIR] [--render-only]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parent.parent
APPS = ROOT / "bench" / "apps"
VENV_BIN = ROOT / ".venv" / "bin"
SERVER_CORE, LOADGEN_CORE = "0", "1"
CONNECTIONS = 64


@dataclass(frozen=True)
class Server:
    name: str
    about: str

    def command(self, target: str, port: int) -> list[str]:
        if self.name == "tidings":
            return [str(VENV_BIN / "tidings"), "run", target, "--port", str(port), "--log-level", "warning"]
        if self.name == "uvicorn":
            return [
                str(VENV_BIN / "uvicorn"), target, "--port", str(port), "--log-level", "warning",
                "--no-access-log", "--loop", "uvloop", "--http", "httptools", "--lifespan", "off",
            ]
        return [
            str(VENV_BIN / "granian"), "--interface", "asgi", target, "--port", str(port),
            "--workers", "1", "--log-level", "warning", "--no-ws",
        ]

    def missing(self) -> str | None:
        program = self.command("x:app", 0)[0]
        return None if Path(program).exists() else f"{program} not found (make bench installs it)"


SERVERS = [
    Server("tidings", "tidings run: the ASGI server in the engine (hyper, one asyncio loop)"),
    Server("uvicorn", "uvicorn with uvloop and httptools"),
    Server("granian", "granian, a Rust ASGI server (1 worker)"),
]


@dataclass(frozen=True)
class App:
    name: str
    target: str
    about: str
    goal: float  # tidings ÷ granian, as issue 12 sets it


BENCH_APPS = [
    App("raw ASGI hello", "hello:app", "A raw ASGI callable answering 13 bytes", 1.2),
    App("FastAPI JSON", "fastapi_json:app", "A FastAPI route returning a small JSON object", 1.0),
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def serving(server: Server, target: str) -> Iterator[int]:
    """Starts `server` on `target`, pinned to the server core; yields its port."""
    port = free_port()
    command = ["taskset", "-c", SERVER_CORE, *server.command(target, port)]
    process = subprocess.Popen(
        command, cwd=APPS, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None:
                    raise RuntimeError(f"{server.name} exited: {process.stderr.read() if process.stderr else ''}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{server.name} did not listen within 20 s")
                time.sleep(0.05)
        yield port
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        if process.stderr is not None:
            process.stderr.close()


def wrk(port: int, duration: float) -> dict[str, float]:
    """Requests/s and errors of one wrk run against `port`."""
    seconds = max(1, round(duration))
    out = subprocess.run(
        ["taskset", "-c", LOADGEN_CORE, "wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency",
         f"http://127.0.0.1:{port}/"],
        capture_output=True, text=True, timeout=seconds + 30, check=True,
    ).stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if rate is None:
        raise RuntimeError(f"wrk printed no rate: {out}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    return {
        "requests_per_s": float(rate.group(1)),
        "non_2xx": float(non_2xx.group(1)) if non_2xx else 0.0,
        "socket_errors": float(sum(int(n) for n in errors.groups())) if errors else 0.0,
        "p99_ms": float(p99.group(1)) * scale[p99.group(2)] if p99 else float("nan"),
    }


def measured_run(server: Server, target: str, duration: float) -> dict[str, float]:
    """One wrk run against a fresh `server`."""
    with serving(server, target) as port:
        wrk(port, 1)  # warm-up: imports, caches, connections
        return wrk(port, duration)


def measure(duration: float, repeat: int) -> dict[str, object]:
    results: dict[str, dict[str, object]] = {}
    servers = []
    for server in SERVERS:
        why = server.missing()
        if why is None:
            servers.append(server)
        else:
            print(f"skip {server.name}: {why}", file=sys.stderr)
    for app in BENCH_APPS:
        runs: dict[str, list[dict[str, float]]] = {server.name: [] for server in servers}
        for _ in range(repeat):
            for server in servers:  # one run each per round
                runs[server.name].append(measured_run(server, app.target, duration))
        for server in servers:
            rates = [run["requests_per_s"] for run in runs[server.name]]
            figures = {
                "median": statistics.median(rates),
                "min": min(rates),
                "max": max(rates),
                "p99_ms": statistics.median(run["p99_ms"] for run in runs[server.name]),
                "errors": sum(run["non_2xx"] + run["socket_errors"] for run in runs[server.name]),
            }
            results.setdefault(app.name, {})[server.name] = figures
            print(f"{app.name:16} {server.name:8} {figures['median']:>10.0f} req/s", file=sys.stderr)
    return {
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "duration_s": duration,
        "repeat": repeat,
        "connections": CONNECTIONS,
        "results": results,
    }


PLOT = "img/bench-asgi.png"


def draw(data: dict[str, object], docs: Path) -> bool:
    """Draws requests/s per app and server (error bars: min-max) into
    docs/img/; False if matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    results = data["results"]
    assert isinstance(results, dict)
    figure, axes = plt.subplots(1, len(BENCH_APPS), figsize=(9, 3.6))
    for axis, app in zip(axes, BENCH_APPS):
        row = results.get(app.name, {})
        names = [server.name for server in SERVERS if server.name in row]
        medians = [row[name]["median"] for name in names]
        below = [row[name]["median"] - row[name]["min"] for name in names]
        above = [row[name]["max"] - row[name]["median"] for name in names]
        axis.bar(names, medians, yerr=[below, above], capsize=4, color=["#2a7", "#888", "#48c"][: len(names)])
        axis.set_title(app.name)
        axis.set_ylabel("requests/s")
        axis.grid(True, axis="y", alpha=0.3)
    figure.tight_layout()
    (docs / PLOT).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(docs / PLOT, dpi=110)
    plt.close(figure)
    return True


def render(data: dict[str, object], plot: bool = False) -> str:
    results = data["results"]
    assert isinstance(results, dict)
    lines = [
        "# ASGI benchmarks",
        "",
        f"Measured {data['date']} on {data['machine']}, Python {data['python']}, by `bench/asgi.py` "
        f"(`make bench`): each server pinned to core 0, wrk (1 thread, {data['connections']} connections) "
        f"on core 1, {data['duration_s']} s per run, median of {data['repeat']} with min-max.",
        "",
    ]
    for server in SERVERS:
        lines.append(f"- **{server.name}**: {server.about}")
    lines.append("")
    if plot:
        lines += [f"![requests/s per server]({PLOT})", ""]
    for app in BENCH_APPS:
        row = results.get(app.name, {})
        lines += [f"## {app.name}", "", app.about + ".", ""]
        lines += ["| server | requests/s | min-max | p99 | errors |", "| --- | --- | --- | --- | --- |"]
        for server in SERVERS:
            figures = row.get(server.name)
            if figures is None:
                lines.append(f"| {server.name} | not run | | | |")
                continue
            lines.append(
                f"| {server.name} | {figures['median']:,.0f} | {figures['min']:,.0f}–{figures['max']:,.0f} "
                f"| {figures['p99_ms']:.2f} ms | {figures['errors']:.0f} |"
            )
        ours = row.get("tidings")
        lines.append("")
        for peer in ("uvicorn", "granian"):
            theirs = row.get(peer)
            if ours and theirs:
                ratio = ours["median"] / theirs["median"]
                lines.append(f"- tidings ÷ {peer}: **{ratio:.2f}×**")
        if ours and row.get("granian"):
            ratio = ours["median"] / row["granian"]["median"]
            verdict = "met" if ratio >= app.goal else "not met"
            lines.append(f"- goal ≥ {app.goal:.1f}× granian: **{verdict}**")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_argument("--duration", type=float, default=8.0, help="seconds per wrk run (default 8)")
    cli.add_argument("--repeat", type=int, default=3, help="runs per (app, server) pair (default 3)")
    cli.add_argument("--out", type=Path, default=ROOT, help="where bench/results and docs go (default: the repo)")
    cli.add_argument("--render-only", action="store_true", help="redraw the page from bench/results/asgi.json")
    args = cli.parse_args()
    results_dir = args.out / "bench" / "results"
    docs_dir = args.out / "docs"
    if args.render_only:
        data = json.loads((results_dir / "asgi.json").read_text())
    else:
        for tool in ("wrk", "taskset"):
            if shutil.which(tool) is None:
                sys.exit(f"bench/asgi.py needs {tool} (bench/setup.sh installs it)")
        data = measure(args.duration, args.repeat)
        results_dir.mkdir(parents=True, exist_ok=True)
        (results_dir / "asgi.json").write_text(json.dumps(data, indent=2) + "\n")
    docs_dir.mkdir(parents=True, exist_ok=True)
    plotted = draw(data, docs_dir)
    (docs_dir / "benchmarks-asgi.md").write_text(render(data, plot=plotted) + "\n")
    print(f"wrote {docs_dir / 'benchmarks-asgi.md'}", file=sys.stderr)


if __name__ == "__main__":
    main()
