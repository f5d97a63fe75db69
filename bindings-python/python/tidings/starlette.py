"""Starlette and FastAPI responses whose connection the engine serves.

    from tidings.starlette import ChannelResponse, EventSourceResponse

    @app.get("/scores")
    async def scores(user: User = Depends(authenticated)):
        return ChannelResponse(score_channel)   # served by Rust from here on

``ChannelResponse`` and ``EventSourceResponse`` need Starlette (FastAPI
brings it); :func:`served_by_tidings` does not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._asgi import served_by_tidings

if TYPE_CHECKING:
    from ._responses import ChannelResponse, EventSourceResponse

__all__ = ["ChannelResponse", "EventSourceResponse", "served_by_tidings"]


def __getattr__(name: str) -> Any:
    if name in ("ChannelResponse", "EventSourceResponse"):
        try:
            from . import _responses
        except ImportError as error:  # pragma: no cover - starlette missing
            raise ImportError(f"tidings.starlette.{name} needs Starlette: pip install starlette (or fastapi)") from error
        return getattr(_responses, name)
    raise AttributeError(f"module 'tidings.starlette' has no attribute {name!r}")
