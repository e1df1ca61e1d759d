"""One `dispytch run` worker against two, on a 4-partition Kafka topic: events per second.

    .venv/bin/python -m benchmarks.run_workers [--events 20000] [--rounds 1]

For each worker count: a fresh topic is filled with the events first, then
`dispytch run benchmarks.workers_app:make_listener --workers N` starts with a new consumer
group; throughput counts from the first handled event to the last (so group joins are left
out, a rebalance while the second worker joins is not). Prints a table. Each handler appends
a line to a file: the cost measured is the framework's (fetch, decode, route, commit).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from dispytch import EventBase, EventEmitter
from dispytch.kafka import KafkaProducer

BOOTSTRAP = os.environ.get("DISPYTCH_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
PARTITIONS = 4
REPO = Path(__file__).resolve().parents[1]


class Tick(EventBase):
    __topic__ = "{stream}"
    __event_type__ = "tick"
    __key__ = "key"

    stream: str
    key: str
    seq: int


async def fill(topic: str, events: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    finally:
        await admin.close()
    # the messages as the emitter builds them, sent straight through aiokafka in big batches
    # (filling the topic is not what is measured)
    emitter = EventEmitter(KafkaProducer.create(BOOTSTRAP))
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, linger_ms=20, acks=1)
    await producer.start()
    try:
        for start in range(0, events, 5000):
            sent = []
            for seq in range(start, min(start + 5000, events)):
                message = emitter.to_message(
                    Tick(id=f"t{seq}", stream=topic, key=f"k{seq % 64}", seq=seq)
                )
                headers = [(name, value.encode()) for name, value in message.headers.items()]
                sent.append(await producer.send(
                    topic, message.value, key=message.key, headers=headers
                ))
            await asyncio.gather(*sent)
    finally:
        await producer.stop()


async def drop(topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:
        await admin.delete_topics([topic])
    finally:
        await admin.close()


def handled(folder: Path) -> tuple[int, int]:
    """(lines, distinct ids) over every worker's records file."""
    ids: list[str] = []
    for path in folder.glob("records-*.log"):
        ids += path.read_text().split()
    return len(ids), len(set(ids))


async def measure(workers: int, events: int, timeout: float) -> dict[str, float]:
    topic = f"bench-workers-{uuid.uuid4().hex[:8]}"
    await fill(topic, events)
    folder = Path(tempfile.mkdtemp(prefix="dispytch-bench-"))
    env = {
        **os.environ,
        "BENCH_BOOTSTRAP": BOOTSTRAP, "BENCH_TOPIC": topic, "BENCH_GROUP": f"{topic}-g",
        "BENCH_RECORDS": str(folder / "records-{pid}.log"),
    }
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "dispytch.cli", "run", "benchmarks.workers_app:make_listener",
        "--workers", str(workers), "--log-level", "warning",
        cwd=REPO, env=env, stdin=asyncio.subprocess.DEVNULL,
    )
    first = last = 0.0
    try:
        while True:
            lines, distinct = handled(folder)
            now = time.monotonic()
            if lines and not first:
                first = now
            if distinct >= events:
                last = now
                break
            if now - started > timeout:
                raise SystemExit(f"{workers} worker(s): {distinct}/{events} after {timeout}s")
            await asyncio.sleep(0.05)
    finally:
        process.send_signal(signal.SIGTERM)
        status = await asyncio.wait_for(process.wait(), 90)
        await drop(topic)
    lines, distinct = handled(folder)
    return {
        "workers": workers, "events": events, "seconds": last - first,
        "rate": events / (last - first), "startup": first - started,
        "duplicates": lines - distinct, "status": status,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args()
    rows = []
    for _ in range(args.rounds):
        for workers in (1, 2):
            rows.append(await measure(workers, args.events, args.timeout))
    print(f"\nKafka, {PARTITIONS} partitions, {args.events} events, {os.cpu_count()} cores")
    print(f"{'workers':>7} {'events/s':>10} {'seconds':>8} {'to first':>9} "
          f"{'dupes':>6} {'exit':>5}")
    for row in rows:
        print(f"{row['workers']:>7} {row['rate']:>10,.0f} {row['seconds']:>8.2f} "
              f"{row['startup']:>8.1f}s {row['duplicates']:>6} {row['status']:>5}")


if __name__ == "__main__":
    asyncio.run(main())
