"""Numbers: `data: 1` … `data: 5`, 0.9 s apart, as unnamed events.

The Starlette EventSourceResponse demo: `GET /numbers` (and `GET /`) streams
the numbers, then ends; idle streams get a keep-alive comment.
"""

import asyncio

import tidings
from demo_cli import parser, serve


def build(args) -> tidings.Server:
    server = tidings.Server(args.host, args.port, cors="*", keepalive=args.keepalive)

    async def numbers(request):
        for n in range(1, 6):
            yield str(n)
            await asyncio.sleep(args.delay)

    server.stream("/numbers")(numbers)
    server.stream("/")(numbers)
    return server


if __name__ == "__main__":
    cli = parser(__doc__)
    cli.add_argument("--delay", type=float, default=0.9, help="seconds between numbers (default 0.9)")
    cli.add_argument("--keepalive", type=float, default=15.0, help="seconds between keep-alives (default 15)")
    args = cli.parse_args()
    serve("numbers", build(args), args)
