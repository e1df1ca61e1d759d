"""Codecs: chosen by content type on the way in, by event class or the emitter's default on the
way out; an unknown content type is dead-lettered; a codec may await, and its cache keeps the
steady state free of I/O."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

import pytest
from pydantic import BaseModel

from dispytch import Event, EventBase, EventEmitter, EventListener, InMemoryBroker
from dispytch.envelope import Envelope, read_envelope
from dispytch.errors import EventSerializationError
from dispytch.serialization import JSONDeserializer, JSONSerializer
from dispytch.serialization.codec import Encoded
from tests.core.helpers import envelope, publish_raw, read_dead_letters, wait_until

TOPIC = "codecs"


class Body(BaseModel):
    n: int


class Sent(EventBase):
    __topic__ = TOPIC
    __event_type__ = "sent"
    n: int


class ReversedJSON:
    """A toy format: the JSON envelope, bytes reversed."""

    content_type = "application/x-reversed"

    def encode(self, envelope: Mapping[str, Any], event: EventBase) -> Encoded:
        return json.dumps(envelope).encode()[::-1], {"x-codec": "reversed"}

    def decode(self, value: bytes, headers: Mapping[str, str]) -> Envelope:
        return read_envelope(json.loads(value[::-1]))


class Registry:
    """A schema registry stand-in: fetching a schema is I/O, counted."""

    def __init__(self) -> None:
        self.fetches = 0

    async def fetch(self, schema_id: str) -> str:
        self.fetches += 1
        await asyncio.sleep(0.001)
        return "n"


class SchemaCodec:
    """Awaits a schema by id the first time it sees the id (concurrent first uses share one
    fetch); from the cache afterwards, without an await."""

    content_type = "application/x-schema"

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.fields: dict[str, str] = {}
        self.fetching: dict[str, asyncio.Task[str]] = {}

    def encode(self, envelope: Mapping[str, Any], event: EventBase) -> Encoded | Any:
        field = self.fields.get("s1")
        if field is None:
            return self._encode_after_fetch(envelope)
        return self._encode(envelope, field)

    async def _encode_after_fetch(self, envelope: Mapping[str, Any]) -> Encoded:
        return self._encode(envelope, await self._field("s1"))

    def _encode(self, envelope: Mapping[str, Any], field: str) -> Encoded:
        value = [envelope["id"], envelope["type"], envelope["body"][field]]
        return json.dumps(value).encode(), {"schema-id": "s1"}

    def decode(self, value: bytes, headers: Mapping[str, str]) -> Envelope | Any:
        schema_id = headers["schema-id"]
        field = self.fields.get(schema_id)
        if field is None:
            return self._decode_after_fetch(value, schema_id)
        return self._decode(value, field)

    async def _decode_after_fetch(self, value: bytes, schema_id: str) -> Envelope:
        return self._decode(value, await self._field(schema_id))

    async def _field(self, schema_id: str) -> str:
        task = self.fetching.get(schema_id)
        if task is None:
            task = self.fetching[schema_id] = asyncio.ensure_future(self.registry.fetch(schema_id))
        try:
            self.fields[schema_id] = field = await asyncio.shield(task)
        finally:
            if task.done():
                self.fetching.pop(schema_id, None)
        return field

    def _decode(self, value: bytes, field: str) -> Envelope:
        event_id, event_type, n = json.loads(value)
        return event_id, event_type, {field: n}, None


def _listener(broker: InMemoryBroker, **options: Any) -> tuple[EventListener, list[int]]:
    listener = EventListener(broker.consumer("g"), **options)
    handled: list[int] = []

    @listener.handler(topic=TOPIC, event="sent")
    async def on_sent(event: Event[Body]) -> None:
        handled.append(event.body.n)

    return listener, handled


async def _settled(broker: InMemoryBroker) -> None:
    await wait_until(lambda: broker.pending("g") == 0, what="every message settled")


async def test_an_unknown_content_type_is_dead_lettered_not_read_as_json() -> None:
    broker = InMemoryBroker()
    listener, handled = _listener(broker)
    raw = envelope("sent", {"n": 1})
    async with listener:
        await publish_raw(broker, TOPIC, raw, headers={"content-type": "application/x-unknown"})
        await _settled(broker)
    assert handled == []
    [(value, _, reason)] = await read_dead_letters(broker, TOPIC, 1)
    assert value == raw
    assert (reason.stage, reason.error_type) == ("decode", "UnknownContentTypeError")
    assert "application/x-unknown" in reason.error_message


async def test_content_types_are_matched_by_media_type_and_without_a_header_json() -> None:
    broker = InMemoryBroker()
    listener, handled = _listener(broker)
    async with listener:
        for n, headers in enumerate(
            [{}, {"content-type": "application/json"}, {"content-type": "Application/JSON; x=1"}]
        ):
            await publish_raw(broker, TOPIC, envelope("sent", {"n": n}), headers=headers)
        await _settled(broker)
    assert sorted(handled) == [0, 1, 2]


async def test_a_codec_is_chosen_by_the_event_class_then_the_emitters_default() -> None:
    class Reversed(Sent):
        __codec__ = ReversedJSON()

    broker = InMemoryBroker()
    listener, handled = _listener(broker, codecs=[ReversedJSON()])
    plain = EventEmitter(broker.producer())
    reversing = EventEmitter(broker.producer(), codec=ReversedJSON())
    reversed_message = plain.to_message(Reversed(n=1))
    assert reversed_message.headers["content-type"] == "application/x-reversed"
    assert reversed_message.headers["x-codec"] == "reversed"
    assert plain.to_message(Sent(n=2)).headers["content-type"] == "application/json"
    assert reversing.to_message(Sent(n=3)).headers["content-type"] == "application/x-reversed"
    async with listener:
        await plain.emit(Reversed(n=1))
        await plain.emit(Sent(n=2))
        await reversing.emit(Sent(n=3), headers={"extra": "kept"})
        await _settled(broker)
    assert sorted(handled) == [1, 2, 3]


async def test_a_codec_that_awaits_does_its_io_once_then_serves_from_its_cache() -> None:
    registry = Registry()
    codec = SchemaCodec(registry)
    broker = InMemoryBroker()
    listener, handled = _listener(broker, codecs=[SchemaCodec(registry)])
    emitter = EventEmitter(broker.producer(), codec=codec)
    async with listener:
        await emitter.emit_many([Sent(n=n) for n in range(50)])
        await emitter.emit(Sent(n=50))
        await _settled(broker)
    assert sorted(handled) == list(range(51))
    assert registry.fetches == 2  # one for the emitter's codec, one for the listener's
    with pytest.raises(EventSerializationError, match="asynchronously"):
        EventEmitter(broker.producer(), codec=SchemaCodec(Registry())).to_message(Sent(n=1))


async def test_a_codec_that_fails_to_encode_raises_event_serialization_error() -> None:
    class Failing:
        content_type = "application/x-failing"

        def encode(self, envelope: Mapping[str, Any], event: EventBase) -> Any:
            async def fail() -> Encoded:
                raise ValueError("schema refused")

            return fail()

        def decode(self, value: bytes, headers: Mapping[str, str]) -> Envelope:
            raise NotImplementedError

    emitter = EventEmitter(InMemoryBroker().producer(), codec=Failing())
    with pytest.raises(EventSerializationError, match="schema refused"):
        await emitter.emit(Sent(n=1))


async def test_010_serializer_and_deserializer_still_work() -> None:
    """0.10's `deserializer=` reads every message, whatever its content-type header."""
    broker = InMemoryBroker()
    listener, handled = _listener(broker, deserializer=JSONDeserializer())
    emitter = EventEmitter(broker.producer(), serializer=JSONSerializer())
    async with listener:
        await emitter.emit(Sent(n=1))
        await publish_raw(
            broker, TOPIC, envelope("sent", {"n": 2}), headers={"content-type": "text/plain"}
        )
        await _settled(broker)
    assert sorted(handled) == [1, 2]
