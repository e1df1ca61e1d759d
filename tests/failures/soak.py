"""The soak test: scenario 1 at length, run by hand (scripts/soak), not in CI.

A stream of many events (200,000 by default) is emitted while a worker process handling it is
SIGKILLed every few seconds and started again, for several minutes; then the last worker runs
until the stream is done and the group caught up (see caught_up.py), and is stopped with
SIGTERM. The summary tells how many events were handled, how many were lost and how many were
left unsettled (both must be 0: the exit status is 1 otherwise) and how many were handled more
than once.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from pathlib import Path

from .caught_up import wait_caught_up
from .events import tick_id, ticks
from .processes import Records, Worker, stop_gracefully
from .streams import Stream, broker_problem, stream_for

DEFAULT_KILL_EVERY = {"kafka": (8.0, 15.0), "rabbitmq": (2.0, 6.0)}


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/soak", description=__doc__.splitlines()[0])
    parser.add_argument("backend", choices=["kafka", "rabbitmq"])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--minutes", type=float, default=5.0, help="how long to keep killing")
    parser.add_argument(
        "--kill-every",
        type=float,
        nargs=2,
        metavar=("MIN", "MAX"),
        help="seconds between kills, drawn at random (default: 8 15 on Kafka, whose group "
        "needs ~6 s to drop a killed member; 2 6 on RabbitMQ)",
    )
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds each handler takes")
    parser.add_argument("--seed", type=int, default=random.randrange(1 << 30))
    parser.add_argument("--finish-timeout", type=float, default=600.0)
    parser.add_argument("--keep", action="store_true", help="keep the topic/queues afterwards")
    return parser.parse_args(argv)


async def emit(stream: Stream, count: int) -> None:
    async with stream.emitter(timeout=60) as emitter:
        for start in range(0, count, 1000):
            await emitter.emit_many(ticks(stream.topic, range(start, min(start + 1000, count))))


async def soak(args: argparse.Namespace, folder: Path) -> int:
    rng = random.Random(args.seed)
    low, high = args.kill_every or DEFAULT_KILL_EVERY[args.backend]
    stream = stream_for(args.backend)
    await stream.prepare(args.partitions)
    records = Records(folder / "handled.log")
    worker_args = [*stream.worker_args(), "--records", str(records.path)]
    if args.delay:
        worker_args += ["--delay", str(args.delay)]
    log = folder / "worker.log"
    print(f"soak: {args.backend}, {args.events} events, topic {stream.topic}, seed {args.seed}")
    print(f"soak: records and worker log in {folder}")
    began = time.monotonic()
    emitting = asyncio.create_task(emit(stream, args.events))
    worker = await Worker(worker_args, log).start()
    kills = 0
    try:
        while time.monotonic() - began < args.minutes * 60:
            await asyncio.sleep(rng.uniform(low, high))
            if records.refresh().unique >= args.events:
                break  # the worker that finished the stream is the one stopped by SIGTERM
            await worker.kill()
            kills += 1
            records.refresh()
            print(
                f"soak: {time.monotonic() - began:7.1f}s  kill {kills:3d}  "
                f"handled {records.unique:7d}  duplicates {records.duplicates:6d}",
                flush=True,
            )
            worker = await Worker(worker_args, log).start()
        await emitting
        deadline = time.monotonic() + args.finish_timeout
        while records.refresh().unique < args.events and time.monotonic() < deadline:
            if not worker.alive:
                print(worker.log_tail(), file=sys.stderr)
                break
            await asyncio.sleep(0.5)
        catch_up: object = "not reached"
        if worker.alive and records.unique >= args.events:
            try:
                catch_up = await wait_caught_up(
                    stream, max(deadline - time.monotonic(), 1.0), [worker], records
                )
            except AssertionError as error:
                print(f"soak: {error}", file=sys.stderr)
        status = await stop_gracefully(records, worker, 60) if worker.alive else -1
        unsettled = await stream.unsettled()
    finally:
        emitting.cancel()
        await asyncio.gather(emitting, return_exceptions=True)
        await worker.kill()
        if not args.keep:
            await stream.cleanup()
    records.refresh()
    lost = sum(1 for seq in range(args.events) if tick_id(seq) not in records.done)
    duration = time.monotonic() - began
    print("soak: ---- summary")
    print(f"soak: backend     {args.backend}")
    print(f"soak: events      {args.events}")
    print(f"soak: handled     {records.unique}")
    print(f"soak: lost        {lost}  (0 expected)")
    print(f"soak: unsettled   {unsettled}  (0 expected; at every id recorded: {catch_up})")
    per_kill = records.duplicates / max(kills, 1)
    print(f"soak: duplicates  {records.duplicates}  ({per_kill:.0f} per kill)")
    print(f"soak: kills       {kills} (SIGKILL), last worker stopped by SIGTERM: exit {status}")
    print(f"soak: duration    {duration:.1f}s ({records.unique / duration:.0f} events/s overall)")
    return 0 if lost == 0 and unsettled == 0 and status == 0 else 1


def main() -> None:
    args = parse(sys.argv[1:])
    problem = broker_problem(args.backend)
    if problem is not None:
        sys.exit(f"soak: {problem}")
    with tempfile.TemporaryDirectory(prefix="dispytch-soak-") as folder:
        sys.exit(asyncio.run(soak(args, Path(folder))))


if __name__ == "__main__":
    main()
