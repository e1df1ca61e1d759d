"""CPU instructions per event of one benchmark's timed region, counted by valgrind's callgrind.

Wall-clock ratios move by tens of percent from round to round on a loaded machine; the number
of instructions a side executes does not (it still varies a little with how often the event
loop wakes up while it waits for the broker). This runs one side of one benchmark of
`kafka_throughput.py`, `rabbitmq_throughput.py` or `memory_throughput.py` under callgrind,
counting only the region the benchmark times (a small C helper, compiled here with `cc`,
zeroes the counters where the benchmark starts its clock and dumps them where it stops it).

    .venv/bin/python benchmarks/instructions.py kafka emit_many dispytch [--events 2000]

scenario: kafka|rabbitmq emit|emit_many dispytch|user|hand (user: Dispytch on a client the
caller made, the 0.10 style), memory consume dispytch|hand|middleware3, or memory
emit|emit_many dispytch (the in-memory broker's producer, nothing subscribed). Needs valgrind
and a C compiler; prints the instructions per event.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
HELPER_SOURCE = """#include <valgrind/callgrind.h>
void region_start(void) { CALLGRIND_ZERO_STATS; }
void region_end(void) { CALLGRIND_DUMP_STATS; }
"""


def measured_clock(helper: ctypes.CDLL) -> Any:
    """A `time.perf_counter` whose first call starts the counted region, its second ends it
    (each benchmark reads the clock exactly there)."""
    clock = time.perf_counter
    calls = 0

    def perf_counter() -> float:
        nonlocal calls
        calls += 1
        if calls == 1:
            helper.region_start()
        elif calls == 2:
            helper.region_end()
        return clock()

    return perf_counter


async def run_side(backend: str, what: str, side: str, events: int, helper: ctypes.CDLL) -> None:
    sys.path.insert(0, str(HERE))
    batched = what == "emit_many"
    if backend == "memory" and what != "consume":
        await memory_emit(events, batched, helper)
    elif backend == "memory":
        import memory_throughput as memory

        payloads = memory.make_payloads(events)
        middleware = 3 if side == "middleware3" else 0
        await memory.hand_written(payloads[:500])  # warm up, uncounted
        await memory.through_dispytch(payloads[:500], middleware=middleware)
        time.perf_counter = measured_clock(helper)
        if side == "hand":
            await memory.hand_written(payloads)
        else:
            await memory.through_dispytch(payloads, chunk=max(events, 1), middleware=middleware)
    elif backend == "kafka":
        import kafka_throughput as kafka

        topic = await kafka.create_topic(kafka.PARTITIONS)
        if side == "hand":
            await kafka.publish_by_hand(topic, 50, batched)  # warm up: metadata, connections
            time.perf_counter = measured_clock(helper)
            await kafka.publish_by_hand(topic, events, batched)
        else:
            client = "user" if side == "user" else "owned"
            await kafka.publish_dispytch(topic, 50, batched, client)
            time.perf_counter = measured_clock(helper)
            await kafka.publish_dispytch(topic, events, batched, client)
    else:
        import aio_pika
        import rabbitmq_throughput as rabbitmq

        connection = await aio_pika.connect(rabbitmq.URL)
        broker = rabbitmq.Broker(connection)
        await broker.setup(0)
        try:
            if side == "hand":
                await rabbitmq.publish_raw(broker, 50, batched)
                time.perf_counter = measured_clock(helper)
                await rabbitmq.publish_raw(broker, events, batched)
            else:
                client = "user" if side == "user" else "owned"
                await rabbitmq.publish_dispytch(broker, 50, batched, client)
                time.perf_counter = measured_clock(helper)
                await rabbitmq.publish_dispytch(broker, events, batched, client)
        finally:
            await broker.teardown()
            await connection.close()


async def memory_emit(count: int, batched: bool, helper: ctypes.CDLL) -> None:
    """`emit`/`emit_many` of the Kafka benchmark's events to the in-memory broker's producer
    (nothing subscribed: the cost of the emit path and the producer)."""
    import kafka_throughput as kafka

    from dispytch import EventEmitter, InMemoryBroker

    batch = kafka.events("memory-emit", count)
    async with EventEmitter(InMemoryBroker().producer()) as emitter:
        await emitter.emit_many(batch[:100])  # warm up, uncounted
        time.perf_counter = measured_clock(helper)
        time.perf_counter()
        if batched:
            await emitter.emit_many(batch)
        else:
            for event in batch:
                await emitter.emit(event)
        time.perf_counter()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("backend", choices=["kafka", "rabbitmq", "memory"])
    parser.add_argument("what", choices=["emit", "emit_many", "consume"])
    parser.add_argument("side", choices=["dispytch", "user", "hand", "middleware3"])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--helper", help=argparse.SUPPRESS)  # set when run under valgrind
    args = parser.parse_args()
    if args.helper:
        helper = ctypes.CDLL(args.helper)
        asyncio.run(run_side(args.backend, args.what, args.side, args.events, helper))
        return
    with tempfile.TemporaryDirectory() as folder:
        source, library = Path(folder, "region.c"), Path(folder, "region.so")
        source.write_text(HELPER_SOURCE)
        subprocess.run(["cc", "-shared", "-fPIC", "-o", library, source], check=True)
        output = Path(folder, "callgrind.out")
        valgrind = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={output}"]
        subprocess.run(
            [*valgrind, sys.executable, __file__, *sys.argv[1:], "--helper", str(library)],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=os.environ,
        )
        dumps = sorted(Path(folder).glob("callgrind.out.*"))
        if not dumps:
            sys.exit("the benchmark never reached its timed region")
        found = re.search(r"^summary: (\d+)", dumps[0].read_text(), re.MULTILINE)
        assert found is not None
        total = int(found.group(1))
    print(f"{args.backend} {args.what} {args.side}: {total / args.events:,.0f} instructions/event")


if __name__ == "__main__":
    main()
