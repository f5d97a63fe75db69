"""Every benchmark peer follows the peer protocol and the harness reports what
it measured: a figure from a peer that drops or reorders events, or a page
that silently lost a table, would be worse than no figure.

Real peers, the real load generator, 127.0.0.1, small counts; no timing is
asserted. Run by `make test-bench` (after bench/setup.sh built and installed
the peers).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import run

PEERS = {peer.name: peer for peer in run.PEERS}
STREAMING = [name for name, peer in PEERS.items() if "stream" in peer.modes]
CLUSTERING = [name for name, peer in PEERS.items() if peer.clusters]


@pytest.fixture(params=list(PEERS))
def peer(request: pytest.FixtureRequest) -> run.Peer:
    found = PEERS[request.param]
    assert found.missing() is None, found.missing()
    return found


def test_a_broadcast_reaches_every_subscriber_in_order_at_a_fixed_rate(peer: run.Peer) -> None:
    result = run.run_fanout(peer, 20, 30, 200, 100, timeout=30)
    assert result["answered"] == 20
    assert result["complete_streams"] == 20, result
    assert result["events_received"] == 600
    assert result["gaps"] == 0
    # The send time each event carries was read back: latencies are real.
    assert 0 < result["latency_ms"]["p50"] <= result["latency_ms"]["max"] < 30_000
    assert result["publish_calls_per_s"] > 0
    assert result["server_cpu_ms"] >= 0 and result["server_rss_kib"] > 0


def test_a_burst_of_large_events_arrives_whole(peer: run.Peer) -> None:
    result = run.run_fanout(peer, 10, 50, 0, 4096, timeout=30)
    assert result["complete_streams"] == 10, result
    assert result["gaps"] == 0
    # 4 KiB of data per event, plus framing: nothing was truncated.
    assert result["bytes"] >= 10 * 50 * 4096


@pytest.mark.parametrize("name", STREAMING)
def test_each_stream_connection_gets_its_own_sequence(name: str) -> None:
    result = run.run_fanout(PEERS[name], 20, 40, 0, 100, timeout=30, mode="stream")
    assert result["complete_streams"] == 20, result
    assert result["events_received"] == 800
    assert result["gaps"] == 0


def test_idle_connections_are_answered_and_measured(peer: run.Peer) -> None:
    entry = run.idle(peer, run.Idle("idle", 300), repeat=1)
    [result] = entry["runs"]
    assert result["answered"] == 300, result
    assert result["server_rss_kib_after"] >= result["server_rss_kib_before"] > 0


@pytest.mark.parametrize("name", CLUSTERING)
def test_a_cluster_delivers_what_one_node_publishes_to_the_subscribers_of_every_node(name: str) -> None:
    # Two thirds of the subscribers are on nodes that only Redis connects to the publisher.
    result = run.run_cluster(PEERS[name], 3, 30, 40, 200, 100, broker=True, timeout=30)
    assert result["answered"] == 30
    assert result["complete_streams"] == 30, result
    assert result["events_received"] == 1200
    assert result["gaps"] == 0
    assert result["redis_cpu_us_per_event"] >= 0


def test_workers_share_one_port_and_every_subscriber_gets_every_event() -> None:
    result = run.run_workers(PEERS["tidings"], 3, 300, 10, 20, 100, loadgens=2, timeout=60)
    assert result["answered"] == 300
    assert result["complete_streams"] == 300, result
    assert result["gaps"] == 0
    # The kernel spread the connections over every worker, and the count was
    # read while they were all open (a worker may have opened a socket of its
    # own meanwhile).
    assert 300 <= sum(result["connections_per_worker"]) <= 300 + 3
    assert all(count > 0 for count in result["connections_per_worker"]), result["connections_per_worker"]
    assert result["rss_kib_per_connection"] > 0


def test_the_smoke_profile_writes_results_a_page_and_plots(tmp_path: Path) -> None:
    harness = Path(run.__file__)
    subprocess.run([sys.executable, str(harness), "--profile", "smoke", "--repeat", "1", "--out", str(tmp_path)],
                   check=True, timeout=600)
    results = json.loads((tmp_path / "smoke.json").read_text())
    assert not results["skipped"]
    for name, scenario in results["scenarios"].items():
        failed = {peer: entry["error"] for peer, entry in scenario["peers"].items() if "error" in entry}
        assert not failed, (name, failed)
        assert "tidings" in scenario["peers"]
    page = (tmp_path / "benchmarks.md").read_text()
    for name in results["scenarios"]:
        assert f"## {name}" in page
    assert "## Targets" in page and "| ceiling |" in page and "| nchan |" in page
    assert "| tidings | 3 nodes + Redis |" in page and "| nchan | 3 nodes + Redis |" in page
    # TLS and HTTP/2 runs come with plain HTTP/1.1 runs of the same peer beside them.
    assert "HTTP/2 over TLS" in page and "| tidings (plain HTTP/1.1, same run) |" in page
    for plot in ("bench-throughput.png", "bench-latency-cdf.png", "bench-rss.png"):
        assert (tmp_path / "img" / plot).read_bytes().startswith(b"\x89PNG")
