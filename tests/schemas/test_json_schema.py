"""JSON Schema through the real registry, on the in-memory broker, Kafka and RabbitMQ: the
model's own JSON schema registered as schemaType JSON, the payload is the model's JSON, a
foreign message's type is the schema's title; and interoperability with confluent-kafka's
JSONSerializer and JSONDeserializer on Kafka."""

from __future__ import annotations

import asyncio
import datetime
import json
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import BaseModel

from dispytch import Event, EventBase, EventEmitter, EventListener
from dispytch.kafka import KafkaConsumer, KafkaProducer
from dispytch.schemas import JSON_SCHEMA_CONTENT_TYPE, JSONSchema, SchemaRegistry, listener_codecs
from dispytch.testing.conformance import BackendHarness, Session
from tests.kafka.conftest import NewTopicFactory
from tests.kafka.kafka_helpers import group_name, read_topic


class Reading(BaseModel):
    sensor: str
    celsius: float
    taken: datetime.datetime
    tags: list[str] = []


async def _until(condition: Callable[[], bool], timeout: float) -> None:
    async def wait() -> None:
        while not condition():
            await asyncio.sleep(0.02)

    await asyncio.wait_for(wait(), timeout)


async def test_json_schema_events_arrive_and_the_payload_is_the_models_json(
    harness: BackendHarness, registry_url: str, unique: Callable[[str], str]
) -> None:
    registry = SchemaRegistry(registry_url, auto_register=True)
    topic = await harness.new_topic()

    class ReadingTaken(EventBase, Reading):
        __topic__ = topic
        __event_type__ = "reading_taken"
        __codec__ = JSONSchema(registry, title=unique("Reading"))

    taken = datetime.datetime(2026, 12, 2, 2, 30, tzinfo=datetime.timezone.utc)
    event = ReadingTaken(sensor="s1", celsius=21.5, taken=taken, tags=["lab"])
    session = Session(harness)
    received: list[Event[Reading]] = []
    try:
        listener = EventListener(
            await harness.consumer("g", [topic]),
            topic_delimiter=harness.delimiter,
            codecs=listener_codecs(SchemaRegistry(registry_url)),
        )

        @listener.handler(topic=topic, event="reading_taken")
        async def on_reading(event: Event[Reading]) -> None:
            received.append(event)

        emitter = EventEmitter(await session.producer())
        async with listener:
            await emitter.emit(event)
            await _until(lambda: len(received) == 1, harness.receive_timeout)
        outgoing = emitter.to_message(event)
    finally:
        await session.close()
    assert received[0].body == Reading(sensor="s1", celsius=21.5, taken=taken, tags=["lab"])
    assert (received[0].id, received[0].type) == (event.id, "reading_taken")
    assert outgoing.headers["content-type"] == JSON_SCHEMA_CONTENT_TYPE
    assert outgoing.value[0] == 0
    assert json.loads(outgoing.value[5:]) == json.loads(event.model_dump_json())
    registered = await registry.schema(int.from_bytes(outgoing.value[1:5], "big"))
    assert registered.schema_type == "JSON"
    assert "id" not in json.loads(registered.text)["properties"]


confluent_kafka = pytest.importorskip("confluent_kafka")
pytest.importorskip("jsonschema")
from confluent_kafka.schema_registry import SchemaRegistryClient  # noqa: E402
from confluent_kafka.schema_registry.json_schema import (  # noqa: E402
    JSONDeserializer,
    JSONSerializer,
)
from confluent_kafka.serialization import MessageField, SerializationContext  # noqa: E402

CLIENT_CONF = {"subject.name.strategy.type": "TOPIC"}  # see test_interop_kafka.py


@pytest.mark.kafka
async def test_json_schema_interop_with_confluent_kafka_both_ways(
    bootstrap: str, new_topic: NewTopicFactory, registry_url: str, unique: Callable[[str], str]
) -> None:
    client = SchemaRegistryClient({"url": registry_url, "timeout": 10})
    title = unique("Reading")
    # confluent-kafka writes; a Dispytch handler handles (its type by the schema's title)
    inbound = await new_topic(prefix="interop-json-in")
    schema = {
        "title": title,
        "type": "object",
        "properties": {"sensor": {"type": "string"}, "celsius": {"type": "number"},
                       "taken": {"type": "string", "format": "date-time"}},
        "required": ["sensor", "celsius", "taken"],
    }  # fmt: skip
    serializer = JSONSerializer(json.dumps(schema), client, conf=CLIENT_CONF)
    context = SerializationContext(inbound, MessageField.VALUE)
    values = await asyncio.to_thread(
        lambda: [
            serializer(
                {"sensor": f"s{n}", "celsius": n / 2, "taken": "2026-12-02T02:30:00Z"}, context
            )
            for n in range(3)
        ]
    )

    def produce() -> None:
        producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap})
        for value in values:
            producer.produce(inbound, value=value)
        assert producer.flush(20) == 0

    await asyncio.to_thread(produce)
    listener = EventListener(
        KafkaConsumer.create(bootstrap, group_name(), commit_interval=0.1),
        codecs=listener_codecs(SchemaRegistry(registry_url)),
    )
    handled: list[Event[Reading]] = []

    @listener.handler(topic=inbound, event=title)
    async def on_reading(event: Event[Reading]) -> None:
        handled.append(event)

    async with listener:
        await _until(lambda: len(handled) == 3, 30)
    assert sorted(e.body.sensor for e in handled) == ["s0", "s1", "s2"]

    # Dispytch emits; confluent-kafka's JSONDeserializer reads (and validates)
    outbound = await new_topic(prefix="interop-json-out")
    registry = SchemaRegistry(registry_url, auto_register=True)

    class ReadingTaken(EventBase, Reading):
        __topic__ = outbound
        __event_type__ = "reading_taken"
        __codec__ = JSONSchema(registry, title=title + "_out")

    taken = datetime.datetime(2026, 12, 2, 2, 30, tzinfo=datetime.timezone.utc)
    async with EventEmitter(KafkaProducer.create(bootstrap)) as emitter:
        await emitter.emit(ReadingTaken(sensor="s9", celsius=-4.0, taken=taken))
    ((value, _, _),) = await read_topic(bootstrap, outbound, 1)
    deserializer = JSONDeserializer(None, schema_registry_client=client, conf=CLIENT_CONF)
    read: Any = await asyncio.to_thread(
        deserializer, value, SerializationContext(outbound, MessageField.VALUE)
    )
    assert read == {"sensor": "s9", "celsius": -4.0, "taken": "2026-12-02T02:30:00Z", "tags": []}
