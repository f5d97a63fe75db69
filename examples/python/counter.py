"""Counter: 20 `new_message` events a second apart, then `end_event`.

The FastAPI + sse-starlette demo, with tidings as the transport. Open the
printed URL: the page lists the values and closes the stream at the end.
"""

import asyncio

import tidings
from demo_cli import PAGES, parser, serve


def build(args) -> tidings.Server:
    server = tidings.Server(args.host, args.port, cors="*")

    @server.stream("/stream")
    async def counter(request):
        for n in range(1, 21):
            yield {"event": "new_message", "id": "message_id", "retry": 15000, "data": f"Counter value {n}"}
            await asyncio.sleep(args.delay)
        yield {"event": "end_event", "id": "message_id", "retry": 15000, "data": "End of the stream"}

    server.page("/", PAGES / "counter.html")
    return server


if __name__ == "__main__":
    cli = parser(__doc__)
    cli.add_argument("--delay", type=float, default=1.0, help="seconds between events (default 1)")
    args = cli.parse_args()
    serve("counter", build(args), args)
