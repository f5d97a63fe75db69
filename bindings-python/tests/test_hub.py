"""The Mercure hub from Python: ``tidings hub`` run as a program, publishers
posting forms with tokens made by PyJWT, and a Mercure publishing library
(mercure-publisher from PyPI) used unchanged; subscribers reading with
httpx-sse and Chromium's EventSource; its
settings from flags, the environment and ``--config tidings.toml``; a
Python server's channels as hub topics; two hubs sharing a Redis."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

import httpx_sse
import jwt
import pytest

import tidings
from helpers import PATIENCE, ROOT, chromium, client, first_events, redis_server, serving

KEY = "the hub tests' key, at least 32 bytes long"
HUB = "/.well-known/mercure"


def token(key: str = KEY, **mercure: list[str]) -> str:
    claims = {"exp": int(time.time() + 600), "mercure": mercure}
    return jwt.encode(claims, key, algorithm="HS256")


def hub_command(*flags: str) -> list[str]:
    return [sys.executable, "-m", "tidings", "hub", "--listen", "127.0.0.1:0", *flags]


def publish(base: str, fields: list[tuple[str, str]], key: str = KEY) -> str:
    """POSTs an update as a Mercure publisher does; the id the hub answers."""
    with client() as http:
        response = http.post(
            f"{base}{HUB}",
            content=urllib.parse.urlencode(fields),
            headers={
                "authorization": f"Bearer {token(key, publish=['*'])}",
                "content-type": "application/x-www-form-urlencoded",
            },
        )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


def hub_url(base: str, *topics: str, **extra: str) -> str:
    query = urllib.parse.urlencode([("topic", topic) for topic in topics] + list(extra.items()))
    return f"{base}{HUB}?{query}"


def test_tidings_hub_delivers_updates_by_topic() -> None:
    with serving(hub_command("--jwt-key", KEY, "--cors", "*")) as hub:
        ids = [
            publish(hub.url, [("topic", "https://example.com/books/1"), ("data", "one"), ("type", "book")]),
            publish(hub.url, [("topic", "https://example.com/authors/1"), ("data", "author")]),
            publish(hub.url, [("topic", "https://example.com/books/2"), ("data", "two"), ("id", "urn:book:2")]),
        ]
        assert ids[0].startswith("urn:uuid:") and ids[2] == "urn:book:2"
        url = hub_url(hub.url, "https://example.com/books/{id}", lastEventID="earliest")
        with client() as http, httpx_sse.connect_sse(http, "GET", url) as source:
            assert source.response.headers["last-event-id"] == "earliest"
            assert source.response.headers["access-control-allow-origin"] == "*"
            received = []
            for event in source.iter_sse():
                received.append((event.id, event.event, event.data))
                if len(received) == 2:
                    break
        assert received == [(ids[0], "book", "one"), (ids[2], "message", "two")]
        # Resuming after the first update skips it.
        resumed = first_events(hub_url(hub.url, "https://example.com/books/{id}"), 1, **{"last-event-id": ids[0]})
        assert [event.data for event in resumed] == ["two"]


def test_a_mercure_publishing_library_works_unchanged() -> None:
    from mercure_publisher import MercureConfig, MercurePublisher, MercurePublishError

    with serving(hub_command("--jwt-key", KEY)) as hub:
        topics = ["/books/{id}", "/shelves/{id}"]
        config = MercureConfig(hub_url=f"{hub.url}{HUB}", publisher_jwt_key=KEY, publish_topics=topics)
        with MercurePublisher(config) as publisher:
            given = publisher.publish("/books/1", {"title": "Dune"}, id="urn:book:1", type="book", retry=1500)
            generated = publisher.publish(["/books/2", "/shelves/2"], "two", private=True)
            with pytest.raises(MercurePublishError) as refused:
                publisher.publish("/authors/1", "not granted")
            assert refused.value.status_code == 403
        assert given == "urn:book:1" and generated.startswith("urn:uuid:")
        url = hub_url(hub.url, "/books/{id}", lastEventID="earliest")
        received = first_events(url, 1)
        assert [(e.id, e.event, e.data, e.retry) for e in received] == [
            ("urn:book:1", "book", '{"title": "Dune"}', 1500)
        ]
        member = {"authorization": f"Bearer {token(subscribe=['/shelves/{id}'])}"}
        assert [e.data for e in first_events(url, 2, **member)] == ['{"title": "Dune"}', "two"]


def test_private_updates_and_no_anonymous_from_a_config_file(tmp_path: Path) -> None:
    config = tmp_path / "tidings.toml"
    config.write_text(f'[hub]\nlisten = "127.0.0.1:0"\njwt_key = "{KEY}"\nanonymous = false\n')
    with serving([sys.executable, "-m", "tidings", "hub", "--config", str(config)]) as hub, client() as http:
        publish(hub.url, [("topic", "/inbox/1"), ("data", "secret"), ("private", "on")])
        publish(hub.url, [("topic", "/inbox/1"), ("data", "public")])
        url = hub_url(hub.url, "/inbox/{id}", lastEventID="earliest")
        assert http.get(url).status_code == 401, "anonymous = false"
        for granted, expected in [(["/inbox/1"], ["secret", "public"]), (["/inbox/2"], ["public"])]:
            cookie = {"cookie": f"mercureAuthorization={token(subscribe=granted)}"}
            received = first_events(url, len(expected), **cookie)
            assert [event.data for event in received] == expected, granted
        bearer = {"authorization": f"Bearer {token(subscribe=['*'])}"}
        assert [e.data for e in first_events(url, 2, **bearer)] == ["secret", "public"]


def test_keys_come_from_the_environment() -> None:
    env = {**os.environ, "TIDINGS_HUB_PUBLISHER_JWT_KEY": KEY}
    with serving(hub_command(), env=env) as hub, client() as http:
        publish(hub.url, [("topic", "/t"), ("data", "x")])
        refused = http.post(f"{hub.url}{HUB}", data={"topic": "/t"}, headers={"authorization": "Bearer x.y.z"})
        assert refused.status_code == 401


@pytest.mark.parametrize(
    ("flags", "config", "message"),
    [
        (["--listen", "nowhere"], None, "HOST:PORT"),
        (["--jwt-key", "short"], None, "at least 32 bytes"),
        (["--jwt-key", KEY, "--jwt-algorithm", "RS256"], None, "public key"),
        (["--no-anonymous"], None, "anonymous"),
        ([], '[hub]\nlisten = "127.0.0.1:0"\ncolour = "blue"\n', "unknown hub setting 'colour'"),
        ([], "[hub]\nhistory = 'many'\n", "hub.history must be an integer"),
        ([], "[hub\n", "not valid TOML"),
    ],
)
def test_bad_settings_exit_with_a_message(tmp_path: Path, flags: list[str], config: str | None, message: str) -> None:
    command = [sys.executable, "-m", "tidings", "hub", *flags]
    if config is not None:
        path = tmp_path / "tidings.toml"
        path.write_text(config)
        command += ["--config", str(path)]
    else:
        command += ["--listen", "127.0.0.1:0"] if "--listen" not in flags else []
    done = subprocess.run(command, capture_output=True, text=True, timeout=PATIENCE, cwd=ROOT)
    assert done.returncode == 1, done
    assert message in done.stderr, done.stderr


def test_a_python_servers_channels_are_hub_topics() -> None:
    with pytest.raises(tidings.ConfigError, match="hub=True"):
        tidings.Server(port=0, hub_path="/hub")
    server = tidings.Server(port=0, hub=True, hub_publisher_key=KEY)
    scores = server.channel("/scores")
    server.start()
    try:
        scores.publish({"home": 1}, event="goal")
        received = first_events(hub_url(server.url or "", "/scores", lastEventID="earliest"), 1)
        assert [(e.event, e.data) for e in received] == [("goal", '{"home":1}')]

        got: list[str] = []
        reader = threading.Thread(target=lambda: got.extend(e.data for e in first_events(f"{server.url}/scores", 1)))
        reader.start()
        deadline = time.monotonic() + PATIENCE
        while scores.subscribers == 0:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        publish(server.url or "", [("topic", "/scores"), ("data", "from a publisher")])
        reader.join(PATIENCE)
        assert got == ["from a publisher"]
    finally:
        server.stop()


def test_chromium_eventsource_follows_the_hub() -> None:
    with serving(hub_command("--jwt-key", KEY, "--cors", "*")) as hub, chromium() as browser:
        page = browser.new_page()
        url = hub_url(hub.url, "/rooms/{room}", "/news")
        page.evaluate(
            """url => {
                window.received = [];
                window.source = new EventSource(url);
                source.onmessage = event => received.push([event.lastEventId, event.data]);
                return new Promise(resolve => { source.onopen = resolve; });
            }""",
            url,
        )
        ids = [
            publish(hub.url, [("topic", "/rooms/1"), ("data", "in room 1")]),
            publish(hub.url, [("topic", "/elsewhere"), ("data", "not for this page")]),
            publish(hub.url, [("topic", "/news"), ("data", "headline")]),
        ]
        page.wait_for_function("window.received.length === 2", timeout=PATIENCE * 1000)
        received: Any = page.evaluate("window.received")
        assert received == [[ids[0], "in room 1"], [ids[2], "headline"]]
        page.close()


def test_two_hubs_on_one_redis_act_as_one(tmp_path: Path) -> None:
    with redis_server(tmp_path) as redis:
        broker = ["--jwt-key", KEY, "--broker", redis.url]
        with serving(hub_command(*broker)) as first, serving(hub_command(*broker)) as second:
            id_ = publish(first.url, [("topic", "/shared"), ("data", "published on the first")])
            received = first_events(hub_url(second.url, "/shared", lastEventID="earliest"), 1)
            assert [(e.id, e.data) for e in received] == [(id_, "published on the first")]
