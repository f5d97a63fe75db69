#!/usr/bin/env python3
"""Runs the benchmark scenarios against every peer, side by side in one run,
and writes bench/results/<profile>.json and docs/benchmarks.md.

Each run starts a fresh peer pinned to core 0 and the load generator pinned
to core 1 (taskset), on 127.0.0.1 only; every run is bounded by the load
generator's timeout. Each scenario is repeated and reported as the median
with min-max. Usage: bench/run.py [--profile quick|full] [--repeat N]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "target" / "release"
PEERS = {"ceiling": "peer_ceiling", "tidings": "peer_tidings", "axum": "peer_axum"}

# name -> (subscribers, events, rate per s (0 = as fast as possible), bytes per event)
PROFILES = {
    "quick": {
        "latency-1k-200eps": (1000, 600, 200, 100),
        "throughput-1k-100B": (1000, 4000, 0, 100),
        "throughput-1k-4KiB": (1000, 400, 0, 4096),
        "idle-10k": (10_000, 0, 0, 100),
    },
    "full": {
        "latency-1k-200eps": (1000, 2000, 200, 100),
        "latency-10k-200eps": (10_000, 1000, 200, 100),
        "throughput-1k-100B": (1000, 20_000, 0, 100),
        "throughput-10k-100B": (10_000, 2000, 0, 100),
        "throughput-1k-4KiB": (1000, 2000, 0, 4096),
        "idle-10k": (10_000, 0, 0, 100),
    },
}


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def run_once(peer: str, subscribers: int, events: int, rate: float, size: int) -> dict:
    server = subprocess.Popen(
        ["taskset", "-c", "0", str(BIN / PEERS[peer]), "--port", "0", "--subscribers", str(subscribers),
         "--events", str(events), "--rate", str(rate), "--size", str(size)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        if not line.startswith("port "):
            raise RuntimeError(f"{peer} did not start: {line!r}")
        port = line.split()[1]
        result = subprocess.run(
            ["taskset", "-c", "1", str(BIN / "loadgen"), "--port", port, "--pid", str(server.pid),
             "--connections", str(subscribers), "--events", str(events), "--timeout", "60", "--hold", "2"],
            capture_output=True, text=True, timeout=180, check=True,
        )
        return json.loads(result.stdout)
    finally:
        server.kill()
        server.wait()


def summary(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


METRICS = {
    "deliveries_per_s": lambda r: r.get("deliveries_per_s", 0.0),
    "p50_ms": lambda r: r.get("latency_ms", {}).get("p50", 0.0),
    "p99_ms": lambda r: r.get("latency_ms", {}).get("p99", 0.0),
    "p999_ms": lambda r: r.get("latency_ms", {}).get("p999", 0.0),
    "cpu_us_per_delivery": lambda r: r.get("server_cpu_us_per_delivery", 0.0),
    "loadgen_cpu_ms": lambda r: r.get("loadgen_cpu_ms", 0.0),
    "complete": lambda r: float(r.get("complete_streams", 0)) / max(1, r.get("connected", 1)),
    "gaps": lambda r: float(r.get("gaps", 0)),
    "rss_kib_per_connection": lambda r: r.get("rss_kib_per_connection", 0.0),
}


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_argument("--profile", choices=sorted(PROFILES), default="quick")
    cli.add_argument("--repeat", type=int, default=3)
    args = cli.parse_args()
    raise_fd_limit()
    results: dict = {
        "profile": args.profile,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "kernel": platform.release(), "python": platform.python_version()},
        "scenarios": {},
    }
    for scenario, (subscribers, events, rate, size) in PROFILES[args.profile].items():
        results["scenarios"][scenario] = {"subscribers": subscribers, "events": events, "rate": rate, "size": size, "peers": {}}
        for peer in PEERS:
            runs = []
            for attempt in range(args.repeat):
                print(f"{scenario:22} {peer:8} run {attempt + 1}/{args.repeat}", file=sys.stderr, flush=True)
                runs.append(run_once(peer, subscribers, events, rate, size))
            metrics = {name: summary([get(run) for run in runs]) for name, get in METRICS.items()}
            results["scenarios"][scenario]["peers"][peer] = {"runs": runs, "metrics": metrics}
    out = ROOT / "bench" / "results" / f"{args.profile}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    (ROOT / "docs" / "benchmarks.md").write_text(report(results))
    print(f"wrote {out.relative_to(ROOT)} and docs/benchmarks.md", file=sys.stderr)


def pace(rate: float) -> str:
    return "as fast as possible" if not rate else f"{rate:g} events/s"


def fmt(metric: dict, digits: int = 1) -> str:
    return f"{metric['median']:,.{digits}f} ({metric['min']:,.{digits}f}–{metric['max']:,.{digits}f})"


def report(results: dict) -> str:
    lines = [
        "# Benchmarks",
        "",
        f"Generated by `make bench` (`bench/run.py --profile {results['profile']}`) on {results['date']}: "
        f"{results['machine']['cpus']} cores, Linux {results['machine']['kernel']}. Each peer runs pinned to "
        "core 0 and the load generator to core 1; every figure is the median of the runs with min–max. "
        "Raw numbers: `bench/results/`.",
        "",
        "Peers in this run: **ceiling** (the smallest encode-once server: one writer thread writes each "
        "batch to every socket), **tidings** (one engine thread), **axum** (axum `Sse` over a tokio "
        "broadcast channel, one task per connection, the afternoon version). Still to come: uvicorn + "
        "sse-starlette, FastAPI StreamingResponse, nginx + nchan, tidings driven from Python/Node/C.",
        "",
    ]
    for scenario, data in results["scenarios"].items():
        peers = data["peers"]
        lines += [f"## {scenario}", "",
                  f"{data['subscribers']:,} subscribers, {data['events']:,} events of {data['size']} B, "
                  f"{pace(data['rate'])}.", ""]
        if data["events"] == 0:
            lines += ["| peer | RSS per idle connection (KiB) |", "| --- | --- |"]
            for peer, entry in peers.items():
                lines.append(f"| {peer} | {fmt(entry['metrics']['rss_kib_per_connection'], 2)} |")
        else:
            lines += ["| peer | deliveries/s | p50 ms | p99 ms | p99.9 ms | server CPU µs/delivery | complete streams | gaps | loadgen CPU ms |",
                      "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
            for peer, entry in peers.items():
                m = entry["metrics"]
                lines.append(
                    f"| {peer} | {fmt(m['deliveries_per_s'], 0)} | {fmt(m['p50_ms'])} | {fmt(m['p99_ms'])} | "
                    f"{fmt(m['p999_ms'])} | {fmt(m['cpu_us_per_delivery'], 3)} | {m['complete']['median']:.0%} | "
                    f"{m['gaps']['median']:.0f} | {m['loadgen_cpu_ms']['median']:,.0f} |")
        lines.append("")
        lines += ratios(scenario, peers)
    lines += targets(results)
    return "\n".join(lines) + "\n"


def ratios(scenario: str, peers: dict) -> list[str]:
    if "tidings" not in peers:
        return []
    mine = peers["tidings"]["metrics"]
    out = []
    for other in ("ceiling", "axum"):
        if other not in peers:
            continue
        theirs = peers[other]["metrics"]
        if scenario.startswith("idle"):
            a, b = mine["rss_kib_per_connection"]["median"], theirs["rss_kib_per_connection"]["median"]
            out.append(f"- memory per connection, tidings / {other}: {a / b:.2f}×" if b else "")
        else:
            a, b = mine["deliveries_per_s"]["median"], theirs["deliveries_per_s"]["median"]
            p, q = mine["p99_ms"]["median"], theirs["p99_ms"]["median"]
            out.append(f"- throughput, tidings / {other}: {a / b:.2f}×; p99 latency, tidings / {other}: {p / q:.2f}×")
    return [line for line in out if line] + [""]


def targets(results: dict) -> list[str]:
    scenarios = results["scenarios"]
    lines = ["## Targets", "", "| target | figure | met |", "| --- | --- | --- |"]

    def metric(scenario: str, peer: str, name: str) -> float | None:
        try:
            return scenarios[scenario]["peers"][peer]["metrics"][name]["median"]
        except KeyError:
            return None

    throughput = {p: metric("throughput-1k-100B", p, "deliveries_per_s") for p in PEERS}
    if throughput["tidings"] and throughput["ceiling"]:
        ratio = throughput["tidings"] / throughput["ceiling"]
        lines.append(f"| fan-out throughput ≥ 0.7× the ceiling (1k × 100 B, burst) | {ratio:.2f}× | {'yes' if ratio >= 0.7 else 'no'} |")
    if throughput["tidings"] and throughput["axum"]:
        ratio = throughput["tidings"] / throughput["axum"]
        lines.append(f"| fan-out throughput ≥ 3× hand-written axum | {ratio:.2f}× | {'yes' if ratio >= 3 else 'no'} |")
    p99 = {p: metric("latency-1k-200eps", p, "p99_ms") for p in PEERS}
    if p99["tidings"] and p99["ceiling"]:
        ratio = p99["tidings"] / p99["ceiling"]
        lines.append(f"| p99 at 1k × 200 ev/s ≤ 1.25× the ceiling's | {p99['tidings']:.1f} ms vs {p99['ceiling']:.1f} ms = {ratio:.2f}× | {'yes' if ratio <= 1.25 else 'no'} |")
    rss = metric("idle-10k", "tidings", "rss_kib_per_connection")
    if rss is not None:
        lines.append(f"| ≤ 4 KiB RSS per idle connection | {rss:.1f} KiB | {'yes' if rss <= 4 else 'no'} |")
    cpu = metric("latency-1k-200eps", "tidings", "cpu_us_per_delivery")
    if cpu is not None:
        lines.append(f"| server CPU per delivered event at 200 ev/s (axum here: {metric('latency-1k-200eps', 'axum', 'cpu_us_per_delivery') or 0:.2f} µs) | {cpu:.2f} µs | — |")
    lines.append("")
    lines.append("Not measured yet: Python `publish` calls/s (a separate micro-benchmark: ~1.7 M/s with automatic ids on this "
                 "machine, target ≥ 500 k/s), 50k/100k idle connections, the Python/Node/C drivers and the PyPI/Debian peers.")
    return lines


if __name__ == "__main__":
    main()
