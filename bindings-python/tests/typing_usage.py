"""Typed use of the public API; `mypy --strict` checks this file in `make test`."""

from __future__ import annotations

import asyncio
from typing import AsyncIterator, Iterator

import tidings

server = tidings.Server("127.0.0.1", 0, cors=["http://app.test"], keepalive=None)
scores: tidings.Channel = server.channel("/livescore", history=100)
event_id: str | None = scores.publish({"home": 1}, event="goal", retry=5000)
count: int = scores.subscribers


@server.stream("/stream")
async def counter(request: tidings.Request) -> AsyncIterator[dict[str, object]]:
    last: str | None = request.last_event_id
    for n in range(3):
        yield {"event": "new_message", "id": last or "0", "data": f"Counter value {n}"}
        await asyncio.sleep(0)


@server.stream("/sync")
def numbers(request: tidings.Request) -> Iterator[tidings.Event]:
    if "n" not in request.query:
        raise tidings.HTTPError(400, "n is required")
    yield tidings.Event(request.query["n"], event="number")


members = tidings.Server(port=0, jwt_key="a secret of at least thirty-two bytes", metrics_path="/metrics")
orders: tidings.Channel = members.channel("/private/orders", private=True)


@members.authorize(orders)
async def may_read_orders(request: tidings.Request) -> bool:
    return request.query.get("shop") == "open"


@server.route("/")
def index(request: tidings.Request) -> tidings.Response:
    return tidings.Response("<h1>hi</h1>", status=200)


async def main() -> None:
    async with server:
        url: str | None = server.url
        stats = server.stats()
        print(url, stats["events_published"])


try:
    scores.publish("x", event="bad\nname")
except tidings.InvalidEventError as error:
    message: str = str(error)
