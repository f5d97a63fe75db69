"""Counter: the FastAPI + sse-starlette demo, written for uvicorn.

    tidings run counter:app          # or: uvicorn counter:app

Each client gets 20 `new_message` events, one a second (DEMO_DELAY
overrides), then `end_event`; the page at / shows them and closes.
"""

import asyncio
import os
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse
from sse_starlette.sse import EventSourceResponse

PAGES = Path(__file__).resolve().parents[1] / "pages"
DELAY = float(os.environ.get("DEMO_DELAY", "1"))

app = FastAPI()
app.add_middleware(CORSMiddleware, allow_origins=["*"], allow_methods=["*"], allow_headers=["*"])


@app.get("/")
async def page() -> FileResponse:
    return FileResponse(PAGES / "counter.html")


@app.get("/stream")
async def message_stream(request: Request) -> EventSourceResponse:
    async def event_generator():
        for n in range(1, 21):
            if await request.is_disconnected():
                break
            yield {"event": "new_message", "id": "message_id", "retry": 15000, "data": f"Counter value {n}"}
            await asyncio.sleep(DELAY)
        yield {"event": "end_event", "id": "message_id", "retry": 15000, "data": "End of the stream"}

    return EventSourceResponse(event_generator())
