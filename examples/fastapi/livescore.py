"""Livescore: the FastAPI StreamingResponse demo, written for uvicorn.

    tidings run livescore:app        # or: uvicorn livescore:app

A background task replays a mock match, one update every 2 s
(DEMO_INTERVAL overrides); every client of /livescore gets the same
updates, and one that reconnects with Last-Event-ID gets what it missed.
Each client is a Python generator here; livescore_channel.py is the same
app with the fan-out in Rust.
"""

import asyncio
import contextlib
import itertools
import json
import os
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, StreamingResponse

EXAMPLES = Path(__file__).resolve().parents[1]
INTERVAL = float(os.environ.get("DEMO_INTERVAL", "2"))
HISTORY = 100


class Match:
    """The updates so far (the last HISTORY of them), and a way to wait for the next."""

    def __init__(self) -> None:
        self.updates: list[tuple[int, bytes]] = []
        self.changed = asyncio.Condition()

    async def publish(self, seq: int, update: dict) -> None:
        kind = "goal" if update["event"]["type"] == "goal" else None
        frame = (f"event: {kind}\n" if kind else "") + f"id: {seq}\ndata: {json.dumps(update)}\n\n"
        async with self.changed:
            self.updates = [*self.updates[-HISTORY + 1 :], (seq, frame.encode())]
            self.changed.notify_all()

    async def follow(self, after: int | None):
        """Every update after `after` (or only new ones), then live ones."""
        cursor = after if after is not None else (self.updates[-1][0] if self.updates else -1)
        while True:
            async with self.changed:
                await self.changed.wait_for(lambda: self.updates and self.updates[-1][0] > cursor)
                fresh = [(seq, frame) for seq, frame in self.updates if seq > cursor]
            for seq, frame in fresh:
                cursor = seq
                yield frame


match = Match()


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI):
    updates = json.loads((EXAMPLES / "data" / "match.json").read_text(encoding="utf-8"))

    async def replay() -> None:
        for seq, update in enumerate(itertools.cycle(updates)):
            await match.publish(seq, update)
            await asyncio.sleep(INTERVAL)

    task = asyncio.create_task(replay())
    yield
    task.cancel()


app = FastAPI(lifespan=lifespan)
app.add_middleware(CORSMiddleware, allow_origins=["*"], allow_methods=["*"], allow_headers=["*"])


@app.get("/")
async def page() -> FileResponse:
    return FileResponse(EXAMPLES / "pages" / "livescore.html")


@app.get("/livescore")
async def livescore(request: Request) -> StreamingResponse:
    last = request.headers.get("last-event-id", "")
    after = int(last) if last.isdigit() else None
    return StreamingResponse(
        match.follow(after),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache"},
    )
