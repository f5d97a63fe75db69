"""Private channels from Python: the auth matrix (no token, bad signature,
expired, wrong channel, right channel) from the header, a cookie and the
query, with tokens made by PyJWT; RS256 from a PEM file and ES256 from a
JWKS; a subscription ended when its token expires; and the settings'
errors."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx_sse
import pytest

import tidings
from helpers import PATIENCE, ROOT, client, jwt_token, token_carried

SECRET = "a secret only the Python token tests know"
FIXTURES = ROOT / "core" / "tests" / "fixtures" / "jwt"


def token(channels: list[str], expires_in: float = 60, key: Any = SECRET, algorithm: str = "HS256", **header: Any) -> str:
    return jwt_token(channels, key, expires_in, algorithm, **header)


def wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + PATIENCE
    while not condition():
        assert time.monotonic() < deadline, "not in time"
        time.sleep(0.01)


@pytest.fixture
def server() -> Iterator[tidings.Server]:
    server = tidings.Server(port=0, jwt_key=SECRET, metrics_path="/metrics")
    server.channel("/private/news", private=True)
    server.channel("/public")
    server.start()
    yield server
    server.stop()


@pytest.mark.parametrize("how", ["header", "cookie", "query"])
def test_the_auth_matrix(server: tidings.Server, how: str) -> None:
    url = f"{server.url}/private/news"
    forged = token(["*"], key="not the secret, though just as long as it")
    cases = [
        (None, 401, 'Bearer realm="tidings"'),
        (forged, 401, "bad signature"),
        (token(["/private/news"], expires_in=-120), 401, "expired"),
        (token(["/private/other"]), 403, "insufficient_scope"),
    ]
    with client() as http:
        for value, status, challenge in cases:
            response = http.get(url, **token_carried(how, value))
            assert response.status_code == status, (value, response.text)
            assert challenge in response.headers["www-authenticate"]
        channel = server.channel("/private/wire", private=True)
        granted = token(["/private/*"])
        with httpx_sse.connect_sse(http, "GET", f"{server.url}/private/wire", **token_carried(how, granted)) as source:
            assert source.response.status_code == 200
            wait_until(lambda: channel.subscribers == 1)
            channel.publish("for members")
            assert next(source.iter_sse()).data == "for members"


def test_a_public_channel_takes_anyone_but_refuses_a_bad_token(server: tidings.Server) -> None:
    with client() as http:
        with http.stream("GET", f"{server.url}/public") as anonymous:
            assert anonymous.status_code == 200
        expired = http.get(f"{server.url}/public", params={"access_token": token([], expires_in=-120)})
        assert expired.status_code == 401
        metrics = http.get(f"{server.url}/metrics").text
    assert 'tidings_subscriptions_refused_total{reason="invalid_token"} 1' in metrics


def test_rs256_from_a_pem_file_and_es256_from_a_jwks() -> None:
    rsa = tidings.Server(port=0, jwt_key_file=FIXTURES / "rsa-public.pem", jwt_algorithm="RS256")
    rsa.channel("/private/news", private=True)
    es = tidings.Server(port=0, jwt_jwks_file=str(FIXTURES / "jwks.json"), jwt_algorithm="ES256")
    es.channel("/private/news", private=True)
    rsa.start()
    es.start()
    try:
        rsa_key = (FIXTURES / "rsa-private.pem").read_text()
        ec_key = (FIXTURES / "ec-private.pem").read_text()
        with client() as http:
            def status(server: tidings.Server, value: str) -> int:
                with http.stream("GET", f"{server.url}/private/news", params={"access_token": value}) as response:
                    return response.status_code

            assert status(rsa, token(["/private/news"], key=rsa_key, algorithm="RS256")) == 200
            assert status(rsa, token(["/private/news"], key=ec_key, algorithm="ES256")) == 401
            assert status(es, token(["/private/news"], key=ec_key, algorithm="ES256", kid="ec-1")) == 200
            assert status(es, token(["/private/news"], key=ec_key, algorithm="ES256", kid="elsewhere")) == 401
    finally:
        rsa.stop()
        es.stop()


def test_a_subscription_ends_when_its_token_expires() -> None:
    server = tidings.Server(port=0, jwt_key=SECRET, jwt_leeway=0)
    channel = server.channel("/private/news", private=True)
    server.start()
    try:
        short = token(["/private/news"], expires_in=2)
        started = time.monotonic()
        with client() as http, httpx_sse.connect_sse(
            http, "GET", f"{server.url}/private/news", params={"access_token": short}
        ) as source:
            received = [event.data for event in source.iter_sse()]
        assert received == []
        assert time.monotonic() - started < 2 + PATIENCE
        wait_until(lambda: channel.subscribers == 0)
    finally:
        server.stop()


def test_settings_that_cannot_work_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(tidings.ConfigError, match="no JWT key"):
        tidings.Server().channel("/private", private=True)
    with pytest.raises(tidings.ConfigError, match="one key"):
        tidings.Server(jwt_key=SECRET, jwt_key_file=FIXTURES / "rsa-public.pem")
    with pytest.raises(tidings.ConfigError, match="unknown algorithm"):
        tidings.Server(jwt_key=SECRET, jwt_algorithm="HS1")
    with pytest.raises(tidings.ConfigError, match="at least 32 bytes"):
        tidings.Server(jwt_key="short")
    with pytest.raises(tidings.ConfigError, match="not a secret"):
        tidings.Server(jwt_key=SECRET, jwt_algorithm="RS256")
    broken = tmp_path / "jwks.json"
    broken.write_text("{}")
    with pytest.raises(tidings.ConfigError, match="not a JWKS"):
        tidings.Server(jwt_jwks_file=broken, jwt_algorithm="ES256")
    with pytest.raises(TypeError, match="str or bytes"):
        tidings.Server(jwt_key=42)  # type: ignore[arg-type]


def test_an_authorize_check_decides_from_the_request() -> None:
    server = tidings.Server(port=0, metrics_path="/metrics")
    room = server.channel("/room")
    asked: list[str] = []

    @server.authorize(room)
    async def may_join(request: tidings.Request) -> bool | None:
        user = request.query.get("user")
        asked.append(user or "")
        if user == "eve":
            raise tidings.HTTPError(402, "pay first")
        if user == "mallory":
            raise RuntimeError("a bug in the check")
        if user == "ada":
            return None
        return user == "bob"

    server.start()
    try:
        with client() as http:
            answers = {user: http.get(f"{server.url}/room", params={"user": user}) for user in ["eve", "mallory", "carol"]}
            assert answers["eve"].status_code == 402
            assert answers["eve"].text == "pay first\n"
            assert answers["mallory"].status_code == 500
            assert answers["carol"].status_code == 403
            for user in ["ada", "bob"]:
                with httpx_sse.connect_sse(http, "GET", f"{server.url}/room", params={"user": user}) as source:
                    assert source.response.status_code == 200
                    wait_until(lambda: room.subscribers == 1)
                    room.publish(f"hello {user}")
                    assert next(source.iter_sse()).data == f"hello {user}"
                wait_until(lambda: room.subscribers == 0)
            metrics = http.get(f"{server.url}/metrics").text
        assert sorted(asked) == ["ada", "bob", "carol", "eve", "mallory"]
        assert 'tidings_subscriptions_refused_total{reason="denied"} 3' in metrics
    finally:
        server.stop()


PAGE = """<!doctype html><title>members</title><ul id="news"></ul><script>
const params = new URLSearchParams(location.search)
const source = new EventSource('/private/news' + (params.has('token') ? '?access_token=' + params.get('token') : ''))
source.onmessage = (event) => { const li = document.createElement('li'); li.textContent = event.data; news.append(li) }
source.onerror = () => { document.body.dataset.state = source.readyState === 2 ? 'closed' : 'retrying' }
</script>"""


def test_chromium_eventsource_with_a_token_in_the_query_or_a_cookie(browser: Any) -> None:
    server = tidings.Server(port=0, jwt_key=SECRET)
    channel = server.channel("/private/news", private=True)

    @server.route("/")
    def page(request: tidings.Request) -> str:
        return PAGE

    server.start()
    try:
        granted = token(["/private/news"])
        # No token: the 401 is fatal to EventSource, which closes for good.
        refused = browser.new_page()
        refused.goto(f"{server.url}/")
        refused.wait_for_function("document.body.dataset.state === 'closed'")
        refused.close()
        # The token in the query, then in a cookie the page's origin holds.
        context = browser.new_context()
        context.add_cookies([{"name": "tidings_token", "value": granted, "url": server.url}])
        pages = [browser.new_page(), context.new_page()]
        pages[0].goto(f"{server.url}/?token={granted}")
        pages[1].goto(f"{server.url}/")
        wait_until(lambda: channel.subscribers == 2)
        channel.publish("for members only")
        for member in pages:
            member.wait_for_function("document.querySelectorAll('#news li').length === 1")
            assert member.locator("#news li").text_content() == "for members only"
            member.close()
        context.close()
    finally:
        server.stop()
