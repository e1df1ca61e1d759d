"""Interoperability with an independent implementation of the Confluent formats: events that
`confluent-kafka`'s AvroSerializer writes to Kafka (against the same registry, no Dispytch
headers) are handled by a Dispytch handler, and events Dispytch emits are read by its
AvroDeserializer. Its clients set the subject name strategy and a timeout: see
../shared/BROKERS.md, the Apicurio caveat."""

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
from dispytch.schemas import Avro, SchemaRegistry, listener_codecs
from tests.kafka.conftest import NewTopicFactory
from tests.kafka.kafka_helpers import group_name, read_topic

confluent_kafka = pytest.importorskip("confluent_kafka")
from confluent_kafka.schema_registry import SchemaRegistryClient  # noqa: E402
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer  # noqa: E402
from confluent_kafka.serialization import MessageField, SerializationContext  # noqa: E402

pytestmark = pytest.mark.kafka
CLIENT_CONF = {"subject.name.strategy.type": "TOPIC"}  # skips the call that may hang


def confluent_client(registry_url: str) -> Any:
    return SchemaRegistryClient({"url": registry_url, "timeout": 10})


class Shipment(BaseModel):
    parcel: str
    grams: int
    sent_at: datetime.datetime
    express: bool = False


def produce_with_confluent(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap})
    for value in values:
        producer.produce(topic, value=value)
    assert producer.flush(20) == 0, "confluent-kafka could not deliver every record"


async def test_records_from_confluent_kafkas_avro_serializer_reach_a_dispytch_handler(
    bootstrap: str, new_topic: NewTopicFactory, registry_url: str, unique: Callable[[str], str]
) -> None:
    topic = await new_topic(prefix="interop-in")
    record_name = unique("Shipment")
    schema = {
        "type": "record",
        "name": record_name,
        "namespace": "com.example.logistics",
        "fields": [
            {"name": "parcel", "type": "string"},
            {"name": "grams", "type": "int"},
            {"name": "sent_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        ],
    }
    serializer = AvroSerializer(
        confluent_client(registry_url), json.dumps(schema), conf=CLIENT_CONF
    )
    sent_at = datetime.datetime(2026, 12, 2, 3, 0, tzinfo=datetime.timezone.utc)
    context = SerializationContext(topic, MessageField.VALUE)
    values = await asyncio.to_thread(
        lambda: [
            serializer({"parcel": f"p{n}", "grams": n * 100, "sent_at": sent_at}, context)
            for n in range(5)
        ]
    )
    await asyncio.to_thread(produce_with_confluent, bootstrap, topic, values)

    listener = EventListener(
        KafkaConsumer.create(bootstrap, group_name(), commit_interval=0.1),
        codecs=listener_codecs(
            SchemaRegistry(registry_url),
            event_types={f"com.example.logistics.{record_name}": "shipment_sent"},
        ),
    )
    handled: list[Event[Shipment]] = []
    done = asyncio.Event()

    @listener.handler(topic=topic, event="shipment_sent")
    async def on_shipment(event: Event[Shipment]) -> None:
        handled.append(event)
        if len(handled) == 5:
            done.set()

    async with listener:
        await asyncio.wait_for(done.wait(), 30)
    assert sorted(e.body.parcel for e in handled) == [f"p{n}" for n in range(5)]
    assert {e.body.sent_at for e in handled} == {sent_at}
    assert all(e.type == "shipment_sent" and e.body.express is False for e in handled)


async def test_events_dispytch_emits_are_read_by_confluent_kafkas_avro_deserializer(
    bootstrap: str, new_topic: NewTopicFactory, registry_url: str, unique: Callable[[str], str]
) -> None:
    topic = await new_topic(prefix="interop-out")
    registry = SchemaRegistry(registry_url, auto_register=True)

    class ShipmentSent(EventBase, Shipment):
        __topic__ = topic
        __event_type__ = "shipment_sent"
        __codec__ = Avro(registry, name=unique("Shipment"), namespace="com.example.logistics")

    sent_at = datetime.datetime(2026, 12, 2, 3, 0, 0, 250000, tzinfo=datetime.timezone.utc)
    emitter = EventEmitter(KafkaProducer.create(bootstrap))
    async with emitter:
        await emitter.emit_many(
            [ShipmentSent(parcel=f"p{n}", grams=n, sent_at=sent_at, express=True) for n in range(3)]
        )
    records = await read_topic(bootstrap, topic, 3)
    deserializer = AvroDeserializer(confluent_client(registry_url), conf=CLIENT_CONF)
    context = SerializationContext(topic, MessageField.VALUE)
    read = await asyncio.to_thread(
        lambda: [deserializer(value, context) for value, _, _ in records]
    )
    assert read == [
        {"parcel": f"p{n}", "grams": n, "sent_at": sent_at, "express": True} for n in range(3)
    ]
