"""The metrics route from C (tests/c/metrics_server.c, `config.metrics_path`),
read by Prometheus' own text parser."""

from __future__ import annotations

from pathlib import Path

import httpx_sse
from prometheus_client.parser import text_string_to_metric_families

from cabi import build
from helpers import ROOT, client, serving


def test_a_c_server_serves_its_counters_as_prometheus_text(tmp_path: Path) -> None:
    binary = build(ROOT / "tests/c/metrics_server.c", tmp_path / "metrics_server")
    with serving([str(binary)]) as running, client() as http:
        with httpx_sse.connect_sse(http, "GET", f"{running.url}/c") as source:
            received = []
            for event in source.iter_sse():
                received.append(event.data)
                if len(received) == 3:
                    break
        assert received == ["one", "two", "three"]
        response = http.get(f"{running.url}/metrics")
        assert response.status_code == 200
        values = {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.text)
            for sample in family.samples
        }
        assert values[("tidings_events_published_total", ())] == 3
        assert values[("tidings_channel_events_published_total", (("channel", "/c"),))] == 3
        assert values[("tidings_events_delivered_total", ())] == 3
