"""Protobuf through the real registry: an event class bound to a generated message class, the
Confluent message indexes, on the in-memory broker, Kafka and RabbitMQ; names from `.proto`
source; interoperability with confluent-kafka's ProtobufSerializer/Deserializer on Kafka."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import BaseModel

from dispytch import Event, EventBase, EventEmitter, EventListener
from dispytch.kafka import KafkaConsumer, KafkaProducer
from dispytch.schemas import (
    PROTOBUF_CONTENT_TYPE,
    Protobuf,
    SchemaDefinitionError,
    SchemaRegistry,
    listener_codecs,
)
from dispytch.schemas.protobuf_wire import decode_indexes, encode_indexes, message_name
from dispytch.testing.conformance import BackendHarness, Session
from tests.kafka.conftest import NewTopicFactory
from tests.kafka.kafka_helpers import group_name, read_topic

from .protobuf_messages import order_messages


class Order(BaseModel):
    order_id: int
    item: str
    quantity: int = 1
    tags: list[str] = []


async def _until(condition: Callable[[], bool], timeout: float) -> None:
    async def wait() -> None:
        while not condition():
            await asyncio.sleep(0.02)

    await asyncio.wait_for(wait(), timeout)


async def test_protobuf_events_arrive_with_the_message_indexes(
    harness: BackendHarness, registry_url: str
) -> None:
    _, order_message = order_messages()
    registry = SchemaRegistry(registry_url, auto_register=True)
    topic = await harness.new_topic()

    class OrderPlaced(EventBase, Order):
        __topic__ = topic
        __event_type__ = "order_placed"
        __codec__ = Protobuf(registry, order_message)

    event = OrderPlaced(order_id=7, item="book", quantity=0, tags=["gift"])
    session = Session(harness)
    received: list[Event[Order]] = []
    try:
        listener = EventListener(
            await harness.consumer("g", [topic]),
            topic_delimiter=harness.delimiter,
            codecs=listener_codecs(SchemaRegistry(registry_url), messages=[order_message]),
        )

        @listener.handler(topic=topic, event="order_placed")
        async def on_order(event: Event[Order]) -> None:
            received.append(event)

        emitter = EventEmitter(await session.producer())
        async with listener:
            await emitter.emit(event)
            await _until(lambda: len(received) == 1, harness.receive_timeout)
        outgoing = emitter.to_message(event)
    finally:
        await session.close()
    assert received[0].body == Order(order_id=7, item="book", quantity=0, tags=["gift"])
    assert received[0].id == event.id
    assert outgoing.headers["content-type"] == PROTOBUF_CONTENT_TYPE
    assert outgoing.value[5:7] == b"\x02\x02"  # one index, 1 (zig-zag): OrderPlaced
    parsed = order_message.FromString(outgoing.value[7:])
    assert (parsed.order_id, parsed.item, list(parsed.tags)) == (7, "book", ["gift"])
    registered = await registry.schema(int.from_bytes(outgoing.value[1:5], "big"))
    assert registered.schema_type == "PROTOBUF"


def test_a_model_field_the_message_lacks_fails_when_the_class_is_defined() -> None:
    _, order_message = order_messages()
    with pytest.raises(SchemaDefinitionError, match="field 'colour' of Painted"):

        class Painted(EventBase, Order):
            __topic__ = "t"
            __event_type__ = "painted"
            __codec__ = Protobuf(SchemaRegistry("http://127.0.0.1:1"), order_message)
            colour: str


def test_message_indexes_and_names_from_proto_source() -> None:
    for indexes in ([0], [1], [2, 0, 3]):
        raw = encode_indexes(indexes) + b"rest"
        assert decode_indexes(raw) == (indexes, len(raw) - 4)
    source = """
        syntax = "proto3";
        package com.example.shop;  // the package
        import "google/protobuf/timestamp.proto";
        enum Kind { A = 0; B = 1; }
        /* a comment with message Fake { } in it */
        message First { string a = 1; message Inner { int32 x = 1; } }
        message Second {
          enum Colour { RED = 0; }
          message Line { string sku = 1; }
          message Other { oneof o { string s = 1; } message Deep {} }
          Line line = 1;
        }
        service Shop { rpc Buy (First) returns (Second); }
    """
    assert message_name(source, [0]) == "com.example.shop.First"
    assert message_name(source, [0, 0]) == "com.example.shop.First.Inner"
    assert message_name(source, [1, 1]) == "com.example.shop.Second.Other"
    assert message_name(source, [1, 1, 0]) == "com.example.shop.Second.Other.Deep"


confluent_kafka = pytest.importorskip("confluent_kafka")
from confluent_kafka.schema_registry import SchemaRegistryClient  # noqa: E402
from confluent_kafka.schema_registry.protobuf import (  # noqa: E402
    ProtobufDeserializer,
    ProtobufSerializer,
)
from confluent_kafka.serialization import MessageField, SerializationContext  # noqa: E402

CLIENT_CONF = {"subject.name.strategy.type": "TOPIC", "use.deprecated.format": False}


@pytest.mark.kafka
async def test_protobuf_interop_with_confluent_kafka_both_ways(
    bootstrap: str, new_topic: NewTopicFactory, registry_url: str
) -> None:
    _, order_message = order_messages()
    client = SchemaRegistryClient({"url": registry_url, "timeout": 10})
    inbound = await new_topic(prefix="interop-pb-in")
    serializer = ProtobufSerializer(order_message, client, conf=CLIENT_CONF)
    context = SerializationContext(inbound, MessageField.VALUE)
    values = await asyncio.to_thread(
        lambda: [
            serializer(order_message(order_id=n, item=f"i{n}", quantity=n), context)
            for n in range(3)
        ]
    )

    def produce() -> None:
        producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap})
        for value in values:
            producer.produce(inbound, value=value)
        assert producer.flush(20) == 0

    await asyncio.to_thread(produce)
    full_name = order_message.DESCRIPTOR.full_name
    listener = EventListener(
        KafkaConsumer.create(bootstrap, group_name(), commit_interval=0.1),
        codecs=listener_codecs(
            SchemaRegistry(registry_url),
            messages=[order_message],
            event_types={full_name: "order_placed"},
        ),
    )
    handled: list[Event[Order]] = []

    @listener.handler(topic=inbound, event="order_placed")
    async def on_order(event: Event[Order]) -> None:
        handled.append(event)

    async with listener:
        await _until(lambda: len(handled) == 3, 30)
    assert sorted(e.body.order_id for e in handled) == [0, 1, 2]
    assert {e.body.item for e in handled} == {"i0", "i1", "i2"}

    outbound = await new_topic(prefix="interop-pb-out")
    registry = SchemaRegistry(registry_url, auto_register=True)

    class OrderPlaced(EventBase, Order):
        __topic__ = outbound
        __event_type__ = "order_placed"
        __codec__ = Protobuf(registry, order_message)

    async with EventEmitter(KafkaProducer.create(bootstrap)) as emitter:
        await emitter.emit(OrderPlaced(order_id=9, item="lamp", quantity=2, tags=["a"]))
    ((value, _, _),) = await read_topic(bootstrap, outbound, 1)
    deserializer = ProtobufDeserializer(order_message, conf={"use.deprecated.format": False})
    read: Any = await asyncio.to_thread(
        deserializer, value, SerializationContext(outbound, MessageField.VALUE)
    )
    assert (read.order_id, read.item, read.quantity, list(read.tags)) == (9, "lamp", 2, ["a"])
