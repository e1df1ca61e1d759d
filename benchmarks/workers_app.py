"""The service `benchmarks/run_workers.py` runs: a Kafka listener whose handler appends the
event id to `BENCH_RECORDS` (`{pid}` becomes the worker's pid), without fsync."""

from __future__ import annotations

import os

from dispytch import Event, EventListener
from dispytch.kafka import KafkaConsumer


def make_listener() -> EventListener:
    env = os.environ
    listener = EventListener(KafkaConsumer.create(env["BENCH_BOOTSTRAP"], env["BENCH_GROUP"]))
    records = open(  # noqa: SIM115 - open for the worker's lifetime
        env["BENCH_RECORDS"].replace("{pid}", str(os.getpid())), "a", buffering=1
    )

    @listener.handler(topic=env["BENCH_TOPIC"], event="tick")
    async def handle(event: Event) -> None:
        records.write(event.id + "\n")

    return listener
