"""The peer protocol (see bench/run.py), shared by the Python peers: the
command line, the payload that carries its own send time, the broadcast
schedule and the lines a peer prints (`port <P>`, `subscribers <N>` once they
arrived, then `published <E> in <seconds>`).

It mirrors bench/src/lib.rs (the Rust peers' side) so that every peer is
driven and measured the same way. Standard library only: the nchan peer
runs on any python3.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import time
from collections.abc import Callable, Iterator

SUBSCRIBER_WAIT_S = 120.0
SUBSCRIBER_POLL_S = 0.01
# Lets the last connections settle before the clock starts.
SETTLE_S = 0.3


def whole(text: str) -> int:
    """A non-negative integer, also when written as a float ("200.0")."""
    value = float(text)
    if value < 0 or not value.is_integer():
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text}")
    return int(value)


def parser(description: str) -> argparse.ArgumentParser:
    """The protocol's arguments; a peer adds its own before parsing."""
    cli = argparse.ArgumentParser(description=description)
    cli.add_argument("--port", type=whole, default=0, help="0 picks a free port")
    cli.add_argument("--subscribers", type=whole, default=1, help="broadcast starts once this many are connected")
    cli.add_argument("--events", type=whole, default=1000, help="events per broadcast or per stream")
    cli.add_argument("--rate", type=float, default=0.0, help="broadcast events per second; 0 = as fast as possible")
    cli.add_argument("--size", type=whole, default=100, help="bytes of data per event")
    cli.add_argument("--mode", choices=("broadcast", "stream"), default="broadcast")
    cli.add_argument("--threads", type=whole, default=1, help="threads (or processes) the server may use")
    cli.add_argument("--payloads", choices=("live", "prebuilt"), default="live",
                     help="prebuilt: build every payload before the clock starts (publish cost alone; "
                     "the send times they carry are then meaningless)")
    return cli


def announce(port: int) -> None:
    """Tells the harness where to connect, as soon as connections are accepted."""
    print(f"port {port}", flush=True)


def raise_fd_limit() -> None:
    """Allows as many open connections as the hard limit does."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def payload(seq: int, size: int) -> str:
    """`<seq> <send time in Unix ns>`, padded with `x` to `size` bytes."""
    data = f"{seq} {time.time_ns()}"
    if len(data) + 1 < size:
        data += " " + "x" * (size - len(data) - 1)
    return data


def arrival_pauses(subscribers: Callable[[], int], target: int) -> Iterator[float]:
    """The pauses to sleep while waiting for `target` subscribers, then the settling pause."""
    deadline = time.monotonic() + SUBSCRIBER_WAIT_S
    while (connected := subscribers()) < target:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{connected} of {target} subscribers after {SUBSCRIBER_WAIT_S:g} s")
        yield SUBSCRIBER_POLL_S
    print(f"subscribers {connected}", flush=True)
    yield SETTLE_S


def due_in(start: float, seq: int, rate: float) -> float:
    """Seconds until event `seq` is due: `seq / rate` after `start`, so the
    schedule never drifts; rate 0: now."""
    return start + seq / rate - time.monotonic() if rate > 0 else 0.0


def report_published(events: int, start: float) -> None:
    """`published <events> in <seconds>`: the harness derives publish calls/s from it."""
    print(f"published {events} in {time.monotonic() - start:.6f}", flush=True)


def payloads(args: argparse.Namespace) -> Callable[[int], str]:
    """Event `seq`'s data: built now, or looked up when --payloads prebuilt."""
    if args.payloads == "live":
        return lambda seq: payload(seq, args.size)
    built = [payload(seq, args.size) for seq in range(args.events)]
    return built.__getitem__


def publish_on_schedule(args: argparse.Namespace, subscribers: Callable[[], int], publish: Callable[[str], object]) -> None:
    """Waits for the subscribers, then calls `publish(data)` for every event on time."""
    data = payloads(args)
    for pause in arrival_pauses(subscribers, args.subscribers):
        time.sleep(pause)
    start = time.monotonic()
    for seq in range(args.events):
        delay = due_in(start, seq, args.rate)
        if delay > 0:
            time.sleep(delay)
        publish(data(seq))
    report_published(args.events, start)


async def publish_on_schedule_async(
    args: argparse.Namespace, subscribers: Callable[[], int], publish: Callable[[str], object]
) -> None:
    """The same on an asyncio loop; yields to the loop before every event (also
    at rate 0), so the subscribers' writes interleave with publishing."""
    data = payloads(args)
    for pause in arrival_pauses(subscribers, args.subscribers):
        await asyncio.sleep(pause)
    start = time.monotonic()
    for seq in range(args.events):
        await asyncio.sleep(max(0.0, due_in(start, seq, args.rate)))
        publish(data(seq))
    report_published(args.events, start)
