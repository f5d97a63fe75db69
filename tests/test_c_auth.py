"""A private channel from C (tests/c/auth_server.c, `config.jwt_secret` and
`options.private_channel`): the auth matrix with tokens made by PyJWT, from
the header, a cookie and the query."""

from __future__ import annotations

from pathlib import Path

import httpx_sse
import pytest

from cabi import build
from helpers import ROOT, client, jwt_token, serving, token_carried

SECRET = "a secret only the C token tests know"


def token(channels: list[str], expires_in: float = 60, key: str = SECRET) -> str:
    return jwt_token(channels, key, expires_in)


@pytest.mark.parametrize("how", ["header", "cookie", "query"])
def test_a_c_server_keeps_its_private_channel_to_granted_tokens(tmp_path: Path, how: str) -> None:
    binary = build(ROOT / "tests/c/auth_server.c", tmp_path / "auth_server")
    with serving([str(binary), SECRET]) as running, client() as http:
        url = f"{running.url}/private/news"
        cases = [
            (None, 401),
            (token(["*"], key="not the secret, though just as long as it"), 401),
            (token(["/private/news"], expires_in=-60), 401),
            (token(["/private/other"]), 403),
        ]
        for value, status in cases:
            response = http.get(url, **token_carried(how, value))
            assert response.status_code == status, (value, response.text)
            assert response.headers["www-authenticate"].startswith("Bearer")
        with httpx_sse.connect_sse(http, "GET", url, **token_carried(how, token(["/private/*"]))) as source:
            assert source.response.status_code == 200
            assert next(source.iter_sse()).data == "for members, from C"


def test_a_c_authorize_hook_decides_now_or_from_another_thread(tmp_path: Path) -> None:
    binary = build(ROOT / "tests/c/auth_server.c", tmp_path / "auth_server")
    with serving([str(binary), SECRET]) as running, client() as http:
        url = f"{running.url}/room"
        later = http.get(url, params={"user": "bob"})
        assert (later.status_code, later.text) == (402, "pay first\n")
        assert http.get(url, params={"user": "eve"}).status_code == 500, "freed unanswered"
        with httpx_sse.connect_sse(http, "GET", url, params={"user": "ada"}) as source:
            assert source.response.status_code == 200
            assert next(source.iter_sse()).data == "welcome to the room"
    assert "unexpected" not in running.log(), running.log()
