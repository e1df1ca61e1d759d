"""One, two and three `dispytch run` workers in one consumer group on a 6-partition topic of
the three-node Kafka cluster: events per second, how the partitions and events are shared, and
where the CPU goes.

    scripts/brokers start kafka-cluster && eval "$(scripts/brokers env)"
    .venv/bin/python -m benchmarks.scale_out [--events 30000] [--rounds 1]
    scripts/brokers stop kafka-cluster

As in `benchmarks/run_workers.py` (whose service, `benchmarks/workers_app.py`, runs here): for
each worker count a fresh topic (replication factor 3) is filled first, then
`dispytch run --workers N` starts with a new group; the rate counts from the first handled event
to the last. The CPU seconds of the workers (the supervisor's process tree) and of the three
Kafka nodes over that span say what the two cores were busy with.
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
from collections import Counter
from pathlib import Path

import psutil
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from benchmarks.run_workers import REPO, Tick
from dispytch import EventEmitter
from dispytch.kafka import KafkaProducer

BOOTSTRAP = os.environ.get(
    "DISPYTCH_KAFKA_CLUSTER_BOOTSTRAP_SERVERS", "127.0.0.1:19092,127.0.0.1:19093,127.0.0.1:19094"
)
PARTITIONS = 6


async def fill(topic: str, events: int) -> dict[str, int]:
    """Create the topic and fill it; each event id's partition."""
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, PARTITIONS, 3)])
    finally:
        await admin.close()
    emitter = EventEmitter(KafkaProducer.create(BOOTSTRAP))
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, linger_ms=20, acks="all")
    await producer.start()
    partition_of: dict[str, int] = {}
    try:
        for start in range(0, events, 5000):
            sent = []
            for seq in range(start, min(start + 5000, events)):
                event = Tick(id=f"t{seq}", stream=topic, key=f"k{seq % 64}", seq=seq)
                message = emitter.to_message(event)
                headers = [(name, value.encode()) for name, value in message.headers.items()]
                sent.append(
                    await producer.send(topic, message.value, key=message.key, headers=headers)
                )
            stored = await asyncio.gather(*sent)
            for seq, metadata in zip(range(start, start + len(stored)), stored, strict=True):
                partition_of[f"t{seq}"] = metadata.partition
    finally:
        await producer.stop()
    return partition_of


def kafka_nodes() -> list[psutil.Process]:
    """The cluster's JVMs (by their server.properties under kafka-cluster/)."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or ())
        if "kafka.Kafka" in cmdline and "kafka-cluster/node" in cmdline:
            found.append(process)
    return found


def cpu_seconds(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def machine_busy() -> float:
    """CPU seconds the whole machine spent busy so far (every process, every core)."""
    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


def tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def per_worker(folder: Path) -> dict[str, list[str]]:
    return {path.name: path.read_text().split() for path in folder.glob("records-*.log")}


async def measure(workers: int, events: int, timeout: float) -> dict[str, object]:
    topic = f"bench-scale-{uuid.uuid4().hex[:8]}"
    partition_of = await fill(topic, events)
    folder = Path(tempfile.mkdtemp(prefix="dispytch-scale-"))
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
    brokers = kafka_nodes()
    first = last = 0.0
    cpu_first: tuple[float, float, float] = (0.0, 0.0, 0.0)
    try:
        while True:
            records = per_worker(folder)
            handled = {event for ids in records.values() for event in ids}
            now = time.monotonic()
            if handled and not first:
                first = now
                cpu_first = (
                    cpu_seconds(tree(process.pid)), cpu_seconds(brokers), machine_busy()
                )
            if len(handled) >= events:
                last = now
                break
            if now - started > timeout:
                raise SystemExit(f"{workers} worker(s): {len(handled)}/{events} after {timeout}s")
            await asyncio.sleep(0.05)
        cpu_workers = cpu_seconds(tree(process.pid)) - cpu_first[0]
        cpu_brokers = cpu_seconds(brokers) - cpu_first[1]
        cpu_machine = machine_busy() - cpu_first[2]
    finally:
        process.send_signal(signal.SIGTERM)
        status = await asyncio.wait_for(process.wait(), 90)
    records = per_worker(folder)
    shares = []
    for ids in sorted(records.values(), key=len, reverse=True):
        partitions = Counter(partition_of[event] for event in ids)
        shares.append(f"{len(ids)} events from p{','.join(map(str, sorted(partitions)))}")
    seconds = last - first
    return {
        "workers": workers, "rate": events / seconds, "seconds": seconds,
        "cpu_workers": cpu_workers / seconds, "cpu_brokers": cpu_brokers / seconds,
        "cpu_machine": cpu_machine / seconds,
        "shares": "; ".join(shares), "status": status,
        "duplicates": sum(map(len, records.values())) - events,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=30000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args()
    rows = []
    for _ in range(args.rounds):
        for workers in (1, 2, 3):
            rows.append(await measure(workers, args.events, args.timeout))
    print(f"\nKafka cluster (3 nodes), {PARTITIONS} partitions, replication factor 3, "
          f"{args.events} events, {os.cpu_count()} cores")
    print("cores busy (CPU seconds per second of the span): the workers (supervisor included), "
          "the three Kafka nodes, the whole machine (other users too)")
    print(f"{'workers':>7} {'events/s':>9} {'seconds':>8} {'workers':>8} {'kafka':>6} "
          f"{'machine':>8} {'dupes':>6} {'exit':>5}  events and partitions per worker")
    for row in rows:
        print(f"{row['workers']:>7} {row['rate']:>9,.0f} {row['seconds']:>8.2f} "
              f"{row['cpu_workers']:>8.2f} {row['cpu_brokers']:>6.2f} {row['cpu_machine']:>8.2f} "
              f"{row['duplicates']:>6} "
              f"{row['status']:>5}  {row['shares']}")


if __name__ == "__main__":
    asyncio.run(main())
