"""Numbers: the Starlette EventSourceResponse demo, written for uvicorn.

    tidings run numbers_app:app      # or: uvicorn numbers_app:app

(Not `numbers.py`: that name would shadow the standard library's `numbers`.)

`GET /` and `GET /numbers` stream `data: 1` to `data: 5`, 0.9 s apart
(DEMO_DELAY overrides), then end.
"""

import asyncio
import os

from sse_starlette.sse import EventSourceResponse
from starlette.applications import Starlette
from starlette.routing import Route

DELAY = float(os.environ.get("DEMO_DELAY", "0.9"))


async def numbers(minimum: int, maximum: int):
    for number in range(minimum, maximum + 1):
        await asyncio.sleep(DELAY)
        yield {"data": number}


async def sse(request):
    return EventSourceResponse(numbers(1, 5))


app = Starlette(routes=[Route("/", endpoint=sse), Route("/numbers", endpoint=sse)])
