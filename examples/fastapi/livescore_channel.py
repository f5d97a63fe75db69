"""Livescore with the fan-out in Rust: livescore.py's app, one change.

    tidings run livescore_channel:app

The endpoint returns a ChannelResponse after FastAPI ran its dependencies
(here: an optional token check); from then on the engine serves the client
as a subscriber of the channel: each update is encoded once for every
client, resumed by Last-Event-ID, kept alive, all in Rust. Under uvicorn it
still works, streaming from Python.
"""

import asyncio
import contextlib
import itertools
import json
import os
from pathlib import Path

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse

import tidings
from tidings.starlette import ChannelResponse

EXAMPLES = Path(__file__).resolve().parents[1]
INTERVAL = float(os.environ.get("DEMO_INTERVAL", "2"))
# Set DEMO_TOKEN to require `?token=...` (EventSource cannot send headers).
TOKEN = os.environ.get("DEMO_TOKEN")

scores = tidings.channel("/internal/livescore", history=100)


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI):
    updates = json.loads((EXAMPLES / "data" / "match.json").read_text(encoding="utf-8"))

    async def replay() -> None:
        for update in itertools.cycle(updates):
            scores.publish(update, event="goal" if update["event"]["type"] == "goal" else None)
            await asyncio.sleep(INTERVAL)

    task = asyncio.create_task(replay())
    yield
    task.cancel()


app = FastAPI(lifespan=lifespan)
app.add_middleware(CORSMiddleware, allow_origins=["*"], allow_methods=["*"], allow_headers=["*"])


def authorized(request: Request) -> None:
    if TOKEN is not None and request.query_params.get("token") != TOKEN:
        raise HTTPException(status_code=401, detail="a valid token is required")


@app.get("/")
async def page() -> FileResponse:
    return FileResponse(EXAMPLES / "pages" / "livescore.html")


@app.get("/livescore", dependencies=[Depends(authorized)])
async def livescore() -> ChannelResponse:
    return ChannelResponse(scores)
