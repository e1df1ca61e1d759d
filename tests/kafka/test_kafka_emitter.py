"""The emitter on the real Kafka: topic values, event loops, emit_many outcomes, close."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from aiokafka import AIOKafkaProducer

from dispytch import EventBase, EventEmitter
from dispytch.errors import (
    EmitError,
    EmitTimeoutError,
    MessageTooLargeError,
    ProducerError,
    TopicFormatError,
)
from dispytch.kafka import KafkaProducer

from .kafka_helpers import read_topic

pytestmark = pytest.mark.kafka


def visit_class(prefix: str) -> type[EventBase]:
    class Visit(EventBase):
        __topic__ = prefix + ".{city}"
        __event_type__ = "visit"
        city: str

    return Visit


async def test_topic_values_that_no_wildcard_matches_are_refused(bootstrap: str) -> None:
    prefix = f"visits-{uuid.uuid4().hex[:12]}"
    visit = visit_class(prefix)
    emitter = EventEmitter(KafkaProducer.create(bootstrap), timeout=20)
    try:
        for bad in ["", "a.b"]:  # "<prefix>." and "<prefix>.a.b": no "<prefix>.*" handler
            with pytest.raises(TopicFormatError):
                await emitter.emit(visit(city=bad))
        await emitter.emit(visit(city="oslo"))  # the broker creates the topic
    finally:
        await emitter.close()
    ((value, _, _),) = await read_topic(bootstrap, prefix + ".oslo", 1)
    assert value is not None
    assert b'"city":"oslo"' in value


class Ping(EventBase):
    __topic__ = "unset"
    __event_type__ = "ping"
    n: int


def ping_class(topic: str) -> type[Ping]:
    return type("TopicPing", (Ping,), {"__topic__": topic})


def test_an_emitter_with_its_own_client_works_in_a_second_event_loop(bootstrap: str) -> None:
    topic = f"loops-{uuid.uuid4().hex[:12]}"
    ping = ping_class(topic)
    emitter = EventEmitter(KafkaProducer.create(bootstrap), timeout=20)
    asyncio.run(emitter.emit(ping(n=1)))
    asyncio.run(emitter.emit(ping(n=2)))  # before: EmitTimeoutError after the whole timeout
    asyncio.run(emitter.emit_many([ping(n=3)]))
    asyncio.run(emitter.close())  # before: "Event loop is closed"
    records = asyncio.run(read_topic(bootstrap, topic, 3))
    assert sorted(json.loads(value or b"")["body"]["n"] for value, _, _ in records) == [1, 2, 3]


def test_a_wrapped_client_from_another_loop_is_refused_at_once(bootstrap: str) -> None:
    topic = f"loops-{uuid.uuid4().hex[:12]}"
    ping = ping_class(topic)

    async def first_loop() -> EventEmitter:
        client = AIOKafkaProducer(bootstrap_servers=bootstrap)
        await client.start()
        emitter = EventEmitter(KafkaProducer(client), timeout=20)
        await emitter.emit(ping(n=1))
        return emitter

    emitter = asyncio.run(first_loop())
    with pytest.raises(ProducerError, match="another event loop") as caught:
        asyncio.run(emitter.emit(ping(n=2)))
    assert not isinstance(caught.value, EmitTimeoutError)
    with pytest.raises(ProducerError, match="another event loop"):
        asyncio.run(emitter.emit_many([ping(n=3)]))

    calls: list[EventBase] = []
    emitter.on_timeout(calls.append)
    with pytest.raises(ProducerError, match="another event loop"):
        asyncio.run(emitter.emit(ping(n=4)))
    assert calls == []  # not taken for a broker that did not answer
    asyncio.run(emitter.close())  # its loop is gone: nothing to stop, no "Event loop is closed"


class Sized(EventBase):
    __topic__ = "unset"
    __event_type__ = "sized"
    text: str


async def test_a_partial_emit_many_says_which_events_were_confirmed(bootstrap: str) -> None:
    topic = f"partial-{uuid.uuid4().hex[:12]}"
    sized = type("TopicSized", (Sized,), {"__topic__": topic})
    small, big, after = sized(text="a"), sized(text="x" * 2_000_000), sized(text="b")
    emitter = EventEmitter(KafkaProducer.create(bootstrap), timeout=20)
    try:
        with pytest.raises(MessageTooLargeError) as caught:  # refused by the client: > 1 MB
            await emitter.emit_many([small, big, after])
    finally:
        await emitter.close()
    assert caught.value.confirmed == (small,)  # its ack was awaited before raising
    assert caught.value.unconfirmed == (big, after)
    records = await read_topic(bootstrap, topic, 1)
    assert [json.loads(value or b"")["body"]["text"] for value, _, _ in records] == ["a"]


async def test_emit_after_close_is_refused_with_a_clear_error(bootstrap: str) -> None:
    topic = f"closed-{uuid.uuid4().hex[:12]}"
    ping = ping_class(topic)
    emitter = EventEmitter(KafkaProducer.create(bootstrap), timeout=20)
    await emitter.emit(ping(n=1))
    await emitter.close()
    with pytest.raises(EmitError, match="closed"):  # before: a new client, sent anyway
        await emitter.emit(ping(n=2))
    with pytest.raises(EmitError, match="closed"):
        await emitter.emit_many([ping(n=3)])
    records = await read_topic(bootstrap, topic, 1)
    assert [json.loads(value or b"")["body"]["n"] for value, _, _ in records] == [1]
