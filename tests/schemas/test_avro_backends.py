"""Avro end to end through the real schema registry, on the in-memory broker, Kafka and
RabbitMQ: every mapped type, the Confluent wire format, headers, foreign messages, reader
models of other versions, undecodable bytes."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Callable
from typing import Any

import fastavro
import pytest
from pydantic import BaseModel

from dispytch import Event, EventBase, EventEmitter, EventListener
from dispytch.reasons import DeadLetterReason
from dispytch.schemas import (
    AVRO_CONTENT_TYPE,
    EVENT_ID_HEADER,
    EVENT_TIMESTAMP_HEADER,
    EVENT_TYPE_HEADER,
    Avro,
    SchemaRegistry,
    listener_codecs,
)
from dispytch.testing.conformance import BackendHarness, Session
from dispytch.testing.harness import message

from .models import Profile, profile_event, sample_profile


async def _first(received: list[Any], count: int, timeout: float) -> None:
    async def wait() -> None:
        while len(received) < count:
            await asyncio.sleep(0.02)

    await asyncio.wait_for(wait(), timeout)


async def test_every_mapped_type_arrives_as_emitted_and_the_payload_is_the_record(
    harness: BackendHarness, registry_url: str
) -> None:
    registry = SchemaRegistry(registry_url, auto_register=True)
    topic = await harness.new_topic()
    event_class = profile_event(
        registry, topic, name=f"Profile_{topic.replace('-', '_').replace(':', '_')}"
    )
    event = sample_profile(event_class)
    session = Session(harness)
    received: list[Event[Profile]] = []
    try:
        listener = EventListener(
            await harness.consumer("g", [topic]),
            topic_delimiter=harness.delimiter,
            codecs=listener_codecs(SchemaRegistry(registry_url)),
        )

        @listener.handler(topic=topic, event="profile_saved")
        async def on_profile(event: Event[Profile]) -> None:
            received.append(event)

        producer = await session.producer()
        emitter = EventEmitter(producer)
        async with listener:
            await emitter.emit(event)
            await _first(received, 1, harness.receive_timeout)
        outgoing = emitter.to_message(event)  # the schema id is cached now: no await
    finally:
        await session.close()
    (got,) = received
    assert got.body == Profile.model_validate(event.model_dump())
    assert (got.id, got.type, got.topic) == (event.id, "profile_saved", topic)
    assert got.timestamp is not None
    assert got.timestamp > 1_700_000_000_000
    assert got.headers["content-type"] == AVRO_CONTENT_TYPE
    # the Confluent wire format, and the payload is exactly the record
    value = outgoing.value
    assert value[0] == 0
    schema_id = int.from_bytes(value[1:5], "big")
    writer = (await registry.schema(schema_id)).text
    record: Any = fastavro.schemaless_reader(
        io.BytesIO(value[5:]), fastavro.parse_schema(json.loads(writer))
    )
    assert (record["name"], record["color"]) == ("ada", "blue")
    assert "id" not in record
    assert set(outgoing.headers) >= {EVENT_ID_HEADER, EVENT_TYPE_HEADER, EVENT_TIMESTAMP_HEADER}


class PaymentV1(BaseModel):
    amount: int


class PaymentV2(BaseModel):
    amount: int
    currency: str = "EUR"
    note: str | None = None


class PaymentV3(BaseModel):
    amount: int
    currency: str = "EUR"
    note: str | None = None
    channel: str = "web"


async def test_handlers_with_an_older_or_newer_model_read_the_writers_records(
    harness: BackendHarness, registry_url: str, unique: Callable[[str], str]
) -> None:
    registry = SchemaRegistry(registry_url, auto_register=True)
    topic = await harness.new_topic()
    record = unique("Payment")

    class PaymentMade(EventBase, PaymentV2):
        __topic__ = topic
        __event_type__ = "payment_made"
        __codec__ = Avro(registry, name=record)

    class NewerReader(PaymentV3):  # the reader's schema: its record name is the writer's
        pass

    session = Session(harness)
    older: list[Event[PaymentV1]] = []
    newer: list[Event[PaymentV3]] = []
    resolved: list[Event[PaymentV3]] = []
    try:
        plain = EventListener(
            await harness.consumer("plain", [topic]),
            topic_delimiter=harness.delimiter,
            codecs=listener_codecs(SchemaRegistry(registry_url)),
        )
        # Avro schema resolution with the newer model as reader schema
        with_reader = EventListener(
            await harness.consumer("resolving", [topic]),
            topic_delimiter=harness.delimiter,
            codecs=listener_codecs(
                SchemaRegistry(registry_url), readers=[type(record, (PaymentV3,), {})]
            ),
        )

        @plain.handler(topic=topic, event="payment_made")
        async def old_service(event: Event[PaymentV1]) -> None:
            older.append(event)

        @plain.handler(topic=topic, event="payment_made")
        async def new_service(event: Event[PaymentV3]) -> None:
            newer.append(event)

        @with_reader.handler(topic=topic, event="payment_made")
        async def resolving_service(event: Event[PaymentV3]) -> None:
            resolved.append(event)

        emitter = EventEmitter(await session.producer())
        async with plain, with_reader:
            await emitter.emit(PaymentMade(amount=5, currency="NOK", note="rent"))
            await _first(older, 1, harness.receive_timeout)
            await _first(newer, 1, harness.receive_timeout)
            await _first(resolved, 1, harness.receive_timeout)
    finally:
        await session.close()
    assert older[0].body == PaymentV1(amount=5)
    assert newer[0].body == PaymentV3(amount=5, currency="NOK", note="rent", channel="web")
    assert resolved[0].body == newer[0].body


async def test_a_message_without_dispytch_headers_gets_its_type_from_the_record_name(
    harness: BackendHarness, registry_url: str, unique: Callable[[str], str]
) -> None:
    registry = SchemaRegistry(registry_url)
    topic = await harness.new_topic()
    name = unique("Signup")
    schema = {"type": "record", "name": name, "namespace": "com.example",
              "fields": [{"name": "email", "type": "string"}]}  # fmt: skip
    schema_id = await registry.register(unique("foreign") + "-value", "AVRO", json.dumps(schema))
    payload = io.BytesIO()
    fastavro.schemaless_writer(payload, fastavro.parse_schema(schema), {"email": "a@b.c"})
    framed = b"\x00" + schema_id.to_bytes(4, "big") + payload.getvalue()

    class Signup(BaseModel):
        email: str

    session = Session(harness)
    by_name: list[Event[Signup]] = []
    mapped: list[Event[Signup]] = []
    whole_topic: list[Event[Signup]] = []
    try:
        listener = EventListener(
            await harness.consumer("by-name", [topic]),
            topic_delimiter=harness.delimiter,
            codecs=listener_codecs(SchemaRegistry(registry_url)),
        )
        mapping = EventListener(
            await harness.consumer("mapped", [topic]),
            topic_delimiter=harness.delimiter,
            codecs=listener_codecs(
                SchemaRegistry(registry_url), event_types={f"com.example.{name}": "signed_up"}
            ),
        )

        @listener.handler(topic=topic, event=f"com.example.{name}")
        async def on_signup(event: Event[Signup]) -> None:
            by_name.append(event)

        @mapping.handler(topic=topic, event="signed_up")
        async def on_mapped(event: Event[Signup]) -> None:
            mapped.append(event)

        # a topic that carries one foreign type: its handler takes every event type there
        per_topic = EventListener(
            await harness.consumer("per-topic", [topic]),
            topic_delimiter=harness.delimiter,
            codecs=listener_codecs(SchemaRegistry(registry_url)),
        )

        @per_topic.handler(topic=topic, event="*")
        async def on_topic(event: Event[Signup]) -> None:
            whole_topic.append(event)

        producer = await session.producer()
        async with listener, mapping, per_topic:
            await producer.send(message(topic, framed))  # no headers at all
            await _first(by_name, 1, harness.receive_timeout)
            await _first(mapped, 1, harness.receive_timeout)
            await _first(whole_topic, 1, harness.receive_timeout)
    finally:
        await session.close()
    assert by_name[0].body == Signup(email="a@b.c") == mapped[0].body == whole_topic[0].body
    assert whole_topic[0].type == f"com.example.{name}"
    assert by_name[0].timestamp is None
    assert by_name[0].id


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (b"\x01\x00\x00\x00\x01abc", "magic byte is 1"),
        (b"\x00\x00", "too few"),
        ("valid-id+garbage", "does not decode"),
        ("valid-id+trailing", "left after the Avro record"),
    ],
)
async def test_bytes_that_can_never_decode_are_dead_lettered_with_the_reason(
    harness: BackendHarness,
    registry_url: str,
    unique: Callable[[str], str],
    value: object,
    why: str,
) -> None:
    registry = SchemaRegistry(registry_url)
    schema = {"type": "record", "name": unique("Tick"), "fields": [{"name": "n", "type": "string"}]}
    schema_id = await registry.register(unique("ticks") + "-value", "AVRO", json.dumps(schema))
    if value == "valid-id+garbage":  # a string whose length is far past the payload's end
        value = b"\x00" + schema_id.to_bytes(4, "big") + b"\xff\xff\xff\xff\x0f"
    elif value == "valid-id+trailing":
        value = b"\x00" + schema_id.to_bytes(4, "big") + b"\x02x" + b"extra"
    assert isinstance(value, bytes)
    topic = await harness.new_topic()
    session = Session(harness)
    handled: list[object] = []
    try:
        listener = EventListener(
            await harness.consumer("g", [topic]),
            topic_delimiter=harness.delimiter,
            codecs=listener_codecs(registry),
        )

        @listener.handler(topic=topic, event="tick")
        async def on_tick(event: Event[dict[str, int]]) -> None:
            handled.append(event)

        producer = await session.producer()
        async with listener:
            await producer.send(message(topic, value, None, **{"content-type": AVRO_CONTENT_TYPE}))
            letters = await harness.read_dead_letters(topic, 1, harness.receive_timeout)
    finally:
        await session.close()
    assert letters[0][0] == value
    reason = DeadLetterReason.from_headers(letters[0][1])
    assert reason is not None
    assert (reason.stage, reason.error_type) == ("decode", "UndecodableRecordError")
    assert why in reason.error_message
    assert not handled


class Note(EventBase):
    __topic__ = "unset"
    __event_type__ = "note"
    text: str


async def test_json_events_without_a_content_type_still_decode_next_to_schema_events(
    harness: BackendHarness, registry_url: str, unique: Callable[[str], str]
) -> None:
    """listener_codecs replaces the built-in JSON codec for messages without a content type:
    a 0.10-style JSON envelope without the header still reads as JSON."""
    registry = SchemaRegistry(registry_url, auto_register=True)
    topic = await harness.new_topic()
    avro_note = type(
        "AvroNote", (Note,), {"__topic__": topic, "__codec__": Avro(registry, name=unique("Note"))}
    )
    session = Session(harness)
    texts: list[str] = []
    try:
        listener = EventListener(
            await harness.consumer("g", [topic]),
            topic_delimiter=harness.delimiter,
            codecs=listener_codecs(SchemaRegistry(registry_url)),
        )

        @listener.handler(topic=topic, event="note")
        async def on_note(event: Event[Note]) -> None:
            texts.append(event.body.text)

        producer = await session.producer()
        envelope = {"id": "n1", "type": "note", "body": {"text": "json"}, "timestamp": 1}
        async with listener:
            await producer.send(message(topic, json.dumps(envelope).encode()))  # no headers
            await EventEmitter(producer).emit(avro_note(text="avro"))
            await _first(texts, 2, harness.receive_timeout)
    finally:
        await session.close()
    assert sorted(texts) == ["avro", "json"]
