"""The metrics route, read by Prometheus' own text parsers (the
``prometheus_client`` package): from ``Server(metrics_path=...)`` and from
``tidings run --metrics-path``."""

from __future__ import annotations

import os
import sys
from typing import Any

import httpx_sse
import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_prometheus

import tidings
from helpers import ROOT, client, serving


def samples(text: str, parse: Any = parse_prometheus) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition, by name and sorted labels."""
    found = {}
    for family in parse(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_a_scrape_parses_and_counts_what_was_delivered() -> None:
    server = tidings.Server(port=0, metrics_path="/metrics")
    channel = server.channel("/c")
    server.start()
    try:
        with client() as http, httpx_sse.connect_sse(http, "GET", f"{server.url}/c") as source:
            for n in range(5):
                channel.publish(str(n))
            received = []
            for event in source.iter_sse():
                received.append(event.data)
                if len(received) == 5:
                    break
            response = http.get(f"{server.url}/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
        found = samples(response.text)
        assert found[("tidings_events_published_total", ())] == 5
        assert found[("tidings_events_delivered_total", ())] == 5
        assert found[("tidings_channel_events_published_total", (("channel", "/c"),))] == 5
        assert found[("tidings_written_bytes_total", ())] > 0
        writes = found[("tidings_delivery_latency_seconds_count", ())]
        assert 1 <= writes <= 5
        assert found[("tidings_delivery_latency_seconds_bucket", (("le", "+Inf"),))] == writes
        refused = {
            labels: value for (name, labels), value in found.items() if name == "tidings_connections_refused_total"
        }
        assert refused == {(("limit", "max_connections"),): 0, (("limit", "max_connections_per_ip"),): 0}
    finally:
        server.stop()


def test_openmetrics_is_served_to_a_scraper_that_asks_and_parses_strictly() -> None:
    server = tidings.Server(port=0, metrics_path="/internal/metrics")
    server.channel("/c")
    server.start()
    try:
        with client() as http:
            response = http.get(
                f"{server.url}/internal/metrics",
                headers={"accept": "application/openmetrics-text; version=1.0.0"},
            )
        assert response.headers["content-type"].startswith("application/openmetrics-text")
        # The OpenMetrics parser rejects what the format forbids (a missing
        # # EOF, a counter without _total, a unit that is not a suffix).
        found = samples(response.text, parse_openmetrics)
        assert found[("tidings_channel_subscribers", (("channel", "/c"),))] == 0
        assert found[("tidings_connections_open", ())] == 1
    finally:
        server.stop()


def test_a_bad_metrics_path_is_a_config_error() -> None:
    with pytest.raises(tidings.ConfigError, match="metrics_path"):
        tidings.Server(metrics_path="metrics")
    server = tidings.Server(metrics_path="/metrics")
    with pytest.raises(tidings.ConfigError, match="/metrics"):
        server.channel("/metrics")


def test_tidings_run_serves_metrics_for_a_fastapi_app() -> None:
    app_dir = ROOT / "examples" / "fastapi"
    command = [
        sys.executable, "-m", "tidings", "run", "livescore_channel:app",
        "--app-dir", str(app_dir), "--port", "0", "--metrics-path", "/metrics",
    ]  # fmt: skip
    env = {**os.environ, "DEMO_INTERVAL": "0.01"}
    with serving(command, env=env) as running, client() as http:
        response = http.get(f"{running.url}/metrics")
        assert response.status_code == 200
        found = samples(response.text)
        assert ("tidings_channel_subscribers", (("channel", "/internal/livescore"),)) in found
