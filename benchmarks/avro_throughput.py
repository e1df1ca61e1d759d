"""Avro throughput: Dispytch's Avro codec against a hand-written loop with the same library
(fastavro), side by side in one run, on the in-memory broker; and bytes per event against JSON.

Consume: both sides read the same framed messages (magic byte, schema id, Avro record), look the
schema up by id in a dict, decode with fastavro's schemaless reader and validate the record into
the benchmark's pydantic model, then await the handler. Dispytch also goes through the in-memory
broker (receive, choose the codec by content type, route, ack).

Emit: both sides dump the event's values, write them with fastavro's schemaless writer, frame
them and hand the message to the same in-memory producer; Dispytch also fills the topic, builds
the envelope's headers and goes through `EventEmitter.emit`.

Registry requests are counted before and after the timed rounds: the steady state makes none.
Needs the schema registry (scripts/brokers start schema-registry):

    eval "$(scripts/brokers env)"
    .venv/bin/python benchmarks/avro_throughput.py [--events 20000] [--rounds 5]

Figures (three runs, --events 20000 --rounds 7, a shared 2-core machine at load 7): consume
ratio 0.63, 0.61, 0.56; emit ratio 0.65, 0.57, 0.80; 69 bytes of value per event in Avro
against 258 in the JSON envelope (see docs/schemas.md, Performance).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import statistics
import time
import uuid

import fastavro
from workload import EVENT_TYPE, UserRegistered, user

from dispytch import Event, EventBase, EventEmitter, EventListener, InMemoryBroker
from dispytch.backends.base import OutgoingMessage
from dispytch.schemas import Avro, SchemaRegistry, listener_codecs
from dispytch.serialization.codec import JSONCodec

URL = os.environ.get("DISPYTCH_SCHEMA_REGISTRY_URL", "http://127.0.0.1:8081/apis/ccompat/v7")
TOPIC = f"avro-bench-{uuid.uuid4().hex[:8]}"
CHUNK = 5_000
WRITER = SchemaRegistry(URL, auto_register=True)


class Registered(EventBase, UserRegistered):
    __topic__ = TOPIC
    __event_type__ = EVENT_TYPE
    __codec__ = Avro(WRITER, name=f"UserRegistered_{uuid.uuid4().hex[:8]}")


def events(count: int) -> list[Registered]:
    return [Registered(user=user(n), timestamp=n) for n in range(count)]


class Counter:
    def __init__(self) -> None:
        self.handled = 0
        self.target = 0
        self.done = asyncio.Event()

    def count(self) -> None:
        self.handled += 1
        if self.handled >= self.target:
            self.done.set()


async def consume_by_hand(messages: list[OutgoingMessage], schemas: dict[int, object]) -> float:
    validate = UserRegistered.model_validate
    reader = fastavro.schemaless_reader
    counter = Counter()

    async def handle(body: UserRegistered) -> None:
        counter.handled += 1

    start = time.perf_counter()
    for message in messages:
        value = message.value
        if value[0] != 0:
            raise ValueError("not framed")
        schema = schemas[int.from_bytes(value[1:5], "big")]
        if message.headers["dispytch-event-type"] == EVENT_TYPE:
            await handle(validate(reader(io.BytesIO(value[5:]), schema)))
    return time.perf_counter() - start


async def consume_through_dispytch(
    messages: list[OutgoingMessage], reader: SchemaRegistry
) -> float:
    broker = InMemoryBroker()
    counter = Counter()
    listener = EventListener(
        broker.consumer("bench"), codecs=listener_codecs(reader), max_concurrency=100
    )

    @listener.handler(topic=TOPIC, event=EVENT_TYPE)
    async def on_user(event: Event[UserRegistered]) -> None:
        counter.count()

    elapsed = 0.0
    async with listener:
        for first in range(0, len(messages), CHUNK):
            part = messages[first : first + CHUNK]
            counter.done.clear()
            counter.target = counter.handled + len(part)
            for message in part:
                broker.publish(message)
            start = time.perf_counter()
            await counter.done.wait()
            elapsed += time.perf_counter() - start
    return elapsed


async def emit_by_hand(batch: list[Registered], schema: object, schema_id: int) -> float:
    producer = InMemoryBroker().producer()
    await producer.start()
    writer = fastavro.schemaless_writer
    prefix = b"\x00" + schema_id.to_bytes(4, "big")
    start = time.perf_counter()
    for event in batch:
        out = io.BytesIO()
        writer(out, schema, event.model_dump())
        headers = {
            "content-type": "application/vnd.confluent.avro",
            "dispytch-event-id": event.id,
            "dispytch-event-type": EVENT_TYPE,
            "dispytch-event-timestamp": str(int(time.time() * 1000)),
        }
        await producer.send(OutgoingMessage(TOPIC, prefix + out.getvalue(), None, headers))
    elapsed = time.perf_counter() - start
    await producer.close()
    return elapsed


async def emit_through_dispytch(batch: list[Registered]) -> float:
    emitter = EventEmitter(InMemoryBroker().producer())
    async with emitter:
        start = time.perf_counter()
        for event in batch:
            await emitter.emit(event)
        return time.perf_counter() - start


def row(name: str, rates: list[float]) -> str:
    median = statistics.median(rates)
    return f"{name:<36}{median:>12,.0f}{min(rates):>12,.0f}{max(rates):>12,.0f}"


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    batch = events(args.events)
    emitter = EventEmitter(InMemoryBroker().producer())
    await emitter.emit(batch[0])  # registers the schema: to_message needs no await from now on
    messages = [emitter.to_message(event) for event in batch]
    schema_id = int.from_bytes(messages[0].value[1:5], "big")
    schema_text = (await WRITER.schema(schema_id)).text
    schema = fastavro.parse_schema(json.loads(schema_text))
    reader = SchemaRegistry(URL)
    await consume_through_dispytch(messages[:1000], reader)  # warm up: the reader fetches the id
    await consume_by_hand(messages[:1000], {schema_id: schema})
    requests_before = (WRITER.requests, reader.requests)

    results: dict[str, list[float]] = {k: [] for k in ("cref", "cdsp", "eref", "edsp")}
    for _ in range(args.rounds):
        results["cref"].append(args.events / await consume_by_hand(messages, {schema_id: schema}))
        results["cdsp"].append(args.events / await consume_through_dispytch(messages, reader))
        results["eref"].append(args.events / await emit_by_hand(batch, schema, schema_id))
        results["edsp"].append(args.events / await emit_through_dispytch(batch))
    requests_after = (WRITER.requests, reader.requests)

    print(f"{args.events} events x {args.rounds} rounds (alternating), events/s")
    print(f"{'path':<36}{'median':>12}{'min':>12}{'max':>12}")
    print(row("consume: hand-written fastavro loop", results["cref"]))
    print(row("consume: dispytch Avro (in-memory)", results["cdsp"]))
    ratio = statistics.median(d / r for d, r in zip(results["cdsp"], results["cref"], strict=True))
    print(f"{'consume ratio (median of rounds)':<36}{ratio:>12.2f}")
    print(row("emit: hand-written fastavro loop", results["eref"]))
    print(row("emit: dispytch Avro (in-memory)", results["edsp"]))
    ratio = statistics.median(d / r for d, r in zip(results["edsp"], results["eref"], strict=True))
    print(f"{'emit ratio (median of rounds)':<36}{ratio:>12.2f}")

    json_emitter = EventEmitter(InMemoryBroker().producer(), codec=JSONCodec())
    json_messages = [json_emitter.to_message(type("J", (Registered,), {"__codec__": None})(
        user=e.user, timestamp=e.timestamp)) for e in batch[:1000]]  # fmt: skip
    avro_value = statistics.mean(len(m.value) for m in messages[:1000])
    json_value = statistics.mean(len(m.value) for m in json_messages)
    avro_headers = statistics.mean(
        sum(len(k) + len(v) for k, v in m.headers.items()) for m in messages[:1000]
    )
    json_headers = statistics.mean(
        sum(len(k) + len(v) for k, v in m.headers.items()) for m in json_messages
    )
    print("\nbytes per event (mean of 1000)       value     headers (names + values)")
    print(f"{'Avro (Confluent framing)':<36}{avro_value:>6.0f}{avro_headers:>12.0f}")
    print(f"{'JSON envelope':<36}{json_value:>6.0f}{json_headers:>12.0f}")
    print(f"\nregistry requests (writer, reader): {requests_before} before the timed rounds, "
          f"{requests_after} after")  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
