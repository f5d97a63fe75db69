"""What every demo shares: its command line and running until Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path
from typing import Awaitable, Callable, Optional

import tidings

EXAMPLES = Path(__file__).resolve().parent.parent
PAGES = EXAMPLES / "pages"


def parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the flags every demo takes."""
    cli = argparse.ArgumentParser(description=description)
    cli.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    cli.add_argument("--port", type=int, default=8000, help="port to listen on; 0 picks one (default 8000)")
    cli.add_argument("--log-level", default="warning", help="logging level (default warning)")
    return cli


def serve(
    name: str,
    server: tidings.Server,
    args: argparse.Namespace,
    background: Optional[Callable[[], Awaitable[None]]] = None,
) -> None:
    """Serves until Ctrl-C, printing the URL to open once listening."""
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")

    async def main() -> None:
        async with server:
            print(f"{name}: open {server.url}/", flush=True)
            if background is not None:
                await background()
            await asyncio.Event().wait()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
