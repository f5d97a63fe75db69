"""Livescore: a mock match replayed on one broadcast channel.

Every subscriber sees the same updates at the same time; goals arrive as
`event: goal`, the rest as unnamed events, and a client that reconnects
with Last-Event-ID gets what it missed from history, then live updates.
"""

import asyncio
import itertools
import json

import tidings
from demo_cli import EXAMPLES, PAGES, parser, serve


def build(args):
    server = tidings.Server(args.host, args.port, cors="*")
    scores = server.channel("/livescore", history=100)
    server.page("/", PAGES / "livescore.html")
    match = json.loads((EXAMPLES / "data" / "match.json").read_text(encoding="utf-8"))

    async def replay():
        for update in itertools.cycle(match):
            scores.publish(update, event="goal" if update["event"]["type"] == "goal" else None)
            await asyncio.sleep(args.interval)

    return server, replay


if __name__ == "__main__":
    cli = parser(__doc__)
    cli.add_argument("--interval", type=float, default=2.0, help="seconds between updates (default 2)")
    args = cli.parse_args()
    server, replay = build(args)
    serve("livescore", server, args, background=replay)
