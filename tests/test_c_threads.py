"""Publishing from several C threads while clients read: nothing lost,
each thread's order kept."""

from __future__ import annotations

import concurrent.futures
from pathlib import Path

import httpx_sse

from cabi import build
from helpers import ROOT, client, serving


def test_four_c_threads_publishing_lose_nothing(tmp_path: Path) -> None:
    readers = 20
    binary = build(ROOT / "tests/c/threaded_publish.c", tmp_path / "threaded")
    with serving([str(binary), str(readers)]) as running:
        def read_all() -> list[str]:
            with client() as http, httpx_sse.connect_sse(http, "GET", f"{running.url}/c") as source:
                data = []
                for event in source.iter_sse():
                    data.append(event.data)
                    if len(data) == 4 * 2500:
                        return data
            return data

        with concurrent.futures.ThreadPoolExecutor(readers) as pool:
            results = list(pool.map(lambda _: read_all(), range(readers)))
    for data in results:
        assert len(data) == 10_000
        last = [-1] * 4
        for item in data:
            thread, n = map(int, item.split(":"))
            assert n == last[thread] + 1
            last[thread] = n
