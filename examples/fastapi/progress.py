"""Progress: the progress-bar demo, written for uvicorn.

    tidings run progress:app         # or: uvicorn progress:app

`GET /` renders the page with a new session id; `GET /progress?session_id=N`
streams `event: progress` with `{"progress": p}` for p = 0..99 at random
intervals (DEMO_MIN_DELAY / DEMO_MAX_DELAY override).
"""

import asyncio
import itertools
import json
import os
import random
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from sse_starlette.sse import EventSourceResponse

PAGES = Path(__file__).resolve().parents[1] / "pages"
MIN_DELAY = float(os.environ.get("DEMO_MIN_DELAY", "0.1"))
MAX_DELAY = float(os.environ.get("DEMO_MAX_DELAY", "2"))

app = FastAPI()
template = (PAGES / "progress.html").read_text(encoding="utf-8")
sessions = itertools.count(1)


@app.get("/", response_class=HTMLResponse)
async def page() -> str:
    return template.replace("{{session_id}}", str(next(sessions)))


@app.get("/progress")
async def progress(session_id: str = "") -> Response:
    if not session_id.isdigit():
        return PlainTextResponse("session_id must be an integer\n", status_code=400)

    async def updates():
        for p in range(100):
            yield {"event": "progress", "id": session_id, "data": json.dumps({"progress": p})}
            await asyncio.sleep(random.uniform(MIN_DELAY, MAX_DELAY))

    return EventSourceResponse(updates())
