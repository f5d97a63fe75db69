"""A Mercure hub from C (tests/c/hub_server.c, `config.hub_path` and
`config.hub_publisher_key`): a form published with a PyJWT token reaches
the hub's subscribers and the C server's channel of that topic, and what C
publishes on the channel reaches the hub's subscribers."""

from __future__ import annotations

import threading
import urllib.parse
from pathlib import Path

import jwt

from cabi import build
from helpers import PATIENCE, ROOT, client, first_events, serving

KEY = "the C hub test's publishers' key, 32+ bytes"
HUB = "/.well-known/mercure"


def test_a_c_servers_channel_is_a_hub_topic(tmp_path: Path) -> None:
    binary = build(ROOT / "tests/c/hub_server.c", tmp_path / "hub_server")
    with serving([str(binary), KEY]) as running, client() as http:
        token = jwt.encode({"mercure": {"publish": ["/scores"]}}, KEY, algorithm="HS256")
        form = urllib.parse.urlencode({"topic": "/scores", "data": "from a publisher"})
        headers = {"authorization": f"Bearer {token}", "content-type": "application/x-www-form-urlencoded"}
        published = http.post(f"{running.url}{HUB}", content=form, headers=headers)
        assert published.status_code == 200, published.text
        refused = http.post(f"{running.url}{HUB}", content="topic=%2Fother", headers=headers)
        assert refused.status_code == 403, "the token grants /scores only"

        hub_url = f"{running.url}{HUB}?topic=%2Fscores&lastEventID=earliest"
        received: list[tuple[str, str, str]] = []
        reader = threading.Thread(
            target=lambda: received.extend((e.id, e.event, e.data) for e in first_events(hub_url, 2))
        )
        reader.start()
        # The channel subscriber makes the C program publish on /scores.
        from_c = first_events(f"{running.url}/scores", 1)
        assert [(e.event, e.data) for e in from_c] == [("score", "from C")]
        reader.join(PATIENCE)
        assert [(event, data) for _, event, data in received] == [
            ("message", "from a publisher"),
            ("score", "from C"),
        ]
        assert received[0][0] == published.text
