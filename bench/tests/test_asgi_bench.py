"""The ASGI benchmark's servers answer its apps, and its page renders every
section: a figure from a server that answered errors would be worse than
none. Real servers on 127.0.0.1; no timing is asserted."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

import asgi


@pytest.mark.parametrize("server", asgi.SERVERS, ids=lambda s: s.name)
@pytest.mark.parametrize("app", asgi.BENCH_APPS, ids=lambda a: a.target)
def test_every_server_answers_every_app(server: asgi.Server, app: asgi.App) -> None:
    assert server.missing() is None, server.missing()
    with asgi.serving(server, app.target) as port, httpx.Client(trust_env=False, timeout=10) as http:
        for _ in range(3):  # keep-alive, as wrk uses it
            answer = http.get(f"http://127.0.0.1:{port}/")
            assert answer.status_code == 200
            assert answer.text in ('Hello, world!', '{"message":"Hello World"}')


def test_the_page_states_every_ratio_and_goal(tmp_path: Path) -> None:
    figures = {"median": 100.0, "min": 90.0, "max": 110.0, "p99_ms": 1.5, "errors": 0.0}
    data = {
        "date": "2026-12-01", "machine": "test", "python": "3", "duration_s": 1, "repeat": 1, "connections": 64,
        "results": {app.name: {server.name: figures for server in asgi.SERVERS} for app in asgi.BENCH_APPS},
    }
    assert asgi.draw(data, tmp_path)
    assert (tmp_path / asgi.PLOT).stat().st_size > 0
    page = asgi.render(data, plot=True)
    assert f"({asgi.PLOT})" in page
    for app in asgi.BENCH_APPS:
        assert f"## {app.name}" in page
    assert page.count("tidings ÷ granian: **1.00×**") == len(asgi.BENCH_APPS)
    assert "goal ≥ 1.2× granian: **not met**" in page
    assert "goal ≥ 1.0× granian: **met**" in page
