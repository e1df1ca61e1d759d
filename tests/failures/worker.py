"""A listener in a process of its own, which the failure tests kill, stop and restart.

    .venv/bin/python -m tests.failures.worker --backend kafka --topic T --group G --records F

It handles `tick` events on the topic and appends one line per handled event to the records
file (`D <event id>`; with `--record-start` also `S <event id>` when the handler begins), with
one write(2) on an O_APPEND descriptor and an fsync before the handler returns. A line in the
file therefore means the handler ran to its end before any kill could stop it from acking.
With `--linger S` the handler then waits S seconds before it returns: a kill in that time
finds the event recorded but not settled.
SIGTERM and SIGINT stop the listener gracefully (exit status 0) once it listens: the worker
writes `R <pid>` when the listener's signal handlers are in place (before that, SIGTERM
still has its default effect and ends the process at once).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from typing import Any

from dispytch import Event, EventListener

from .clients import consumer
from .events import TICK, Tick


class Recorder:
    def __init__(self, path: str, fsync: bool) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._fsync = fsync

    def __call__(self, tag: str, event_id: str) -> None:
        os.write(self._fd, f"{tag} {event_id}\n".encode())
        if self._fsync:
            os.fsync(self._fd)


def dump_tasks() -> None:
    """SIGUSR1: print where every task waits (the tests do it before giving up on a worker)."""
    lines = [f"--- tasks of worker {os.getpid()}"]
    for task in asyncio.all_tasks():
        lines.append(f"task {task.get_name()}:")
        awaited: Any = task.get_coro()
        while awaited is not None:  # follow the chain of awaits down to what it waits for
            frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None)
            if frame is None:
                lines.append(f"    waits for {awaited!r}"[:300])
                break
            lines.append(f"    {frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}")
            awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "gi_yieldfrom", None)
    print("\n".join(lines), file=sys.stderr, flush=True)


async def announce_ready(record: Recorder) -> None:
    """Write `R <pid>` once SIGTERM no longer kills the process but stops the listener."""
    while signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        await asyncio.sleep(0.01)
    record("R", str(os.getpid()))


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["kafka", "rabbitmq", "redis", "nats"], required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--exchange", help="RabbitMQ: the stream's exchange; NATS: its stream")
    parser.add_argument("--records", required=True, help="file that handled events go to")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds each handler takes")
    parser.add_argument("--max-concurrency", type=int, default=100)
    parser.add_argument("--shutdown-grace", type=float, default=30.0)
    parser.add_argument(
        "--linger",
        type=float,
        default=0.0,
        help="seconds each handler waits after recording its event as done (a kill then "
        "finds the event handled but not settled)",
    )
    parser.add_argument("--record-start", action="store_true")
    parser.add_argument("--no-fsync", action="store_true")
    return parser.parse_args(argv)


async def run(args: argparse.Namespace) -> None:
    listener = EventListener(
        consumer(args.backend, args.group, args.exchange),
        max_concurrency=args.max_concurrency,
        shutdown_grace=args.shutdown_grace,
        close_timeout=2.0,  # a broker that is down must not keep the worker from exiting
    )
    record = Recorder(args.records, fsync=not args.no_fsync)
    delay = args.delay
    record_start = args.record_start
    linger = args.linger

    @listener.handler(topic=args.topic, event=TICK)
    async def handle(event: Event[Tick]) -> None:
        if record_start:
            record("S", event.id)
        if delay:
            await asyncio.sleep(delay)
        record("D", event.id)
        if linger:
            await asyncio.sleep(linger)

    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, dump_tasks)
    announce = asyncio.create_task(announce_ready(record))
    try:
        await listener.listen(handle_signals=True)
    finally:
        announce.cancel()
    logging.getLogger("failures.worker").info("worker %d stopped gracefully", os.getpid())


def main() -> None:
    logging.basicConfig(
        stream=sys.stderr,
        level=os.environ.get("FAILURES_WORKER_LOG", "INFO"),
        format=f"%(asctime)s worker[{os.getpid()}] %(levelname)s %(name)s: %(message)s",
    )
    asyncio.run(run(parse(sys.argv[1:])))


if __name__ == "__main__":
    main()
