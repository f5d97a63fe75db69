"""Progress: a per-session progress bar fed by its own stream.

Each page load gets a new session id; `GET /progress?session_id=N` streams
`event: progress` with `{"progress": p}` for p = 0..99 at random intervals.
"""

import asyncio
import itertools
import random

import tidings
from demo_cli import PAGES, parser, serve


def build(args) -> tidings.Server:
    server = tidings.Server(args.host, args.port, cors="*")
    template = (PAGES / "progress.html").read_text(encoding="utf-8")
    sessions = itertools.count(1)

    @server.route("/")
    def page(request):
        return template.replace("{{session_id}}", str(next(sessions)))

    @server.stream("/progress")
    def progress(request):
        session_id = request.query.get("session_id", "")
        if not session_id.isdigit():
            raise tidings.HTTPError(400, "session_id must be an integer")
        return updates(session_id)

    async def updates(session_id):
        for p in range(100):
            yield {"event": "progress", "id": session_id, "data": {"progress": p}}
            await asyncio.sleep(random.uniform(args.min_delay, args.max_delay))

    return server


if __name__ == "__main__":
    cli = parser(__doc__)
    cli.add_argument("--min-delay", type=float, default=0.1, help="shortest pause in seconds (default 0.1)")
    cli.add_argument("--max-delay", type=float, default=2.0, help="longest pause in seconds (default 2)")
    args = cli.parse_args()
    serve("progress", build(args), args)
