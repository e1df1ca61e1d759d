"""The emitter: topics, keys, backend config, the wire format, serializers and failures."""

import json
import time
import uuid
from collections.abc import Sequence
from enum import Enum
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel

from dispytch import Event, EventBase, EventEmitter, EventListener, InMemoryBroker
from dispytch.backends.base import OutgoingMessage, Producer
from dispytch.errors import (
    BackendError,
    BrokerUnavailableError,
    EmitError,
    EmitTimeoutError,
    EventSerializationError,
    ProducerError,
    ProducerUnavailableError,
    TopicFormatError,
)
from dispytch.serialization import MessagePackDeserializer, MessagePackSerializer
from tests.core.helpers import publish_raw, wait_until


class Address(BaseModel):
    city: str


class OrderPlaced(EventBase):
    __topic__ = "orders:{region}"
    __event_type__ = "order_placed"
    region: str
    amount: float
    address: Address


class Region(Enum):
    EU = "eu"


class RegionEvent(EventBase):
    __topic__ = "regions:{region}"
    __event_type__ = "r"
    region: Region


class BrokenTopic(EventBase):
    __topic__ = "orders:{missing}"
    __event_type__ = "broken"
    region: str


class Anything(EventBase):
    __topic__ = "any"
    __event_type__ = "anything"
    payload: Any


class Config:
    def __init__(self, label: str) -> None:
        self.label = label


class Configured(EventBase):
    __topic__ = "configured"
    __event_type__ = "configured"
    __backend_config__ = Config("class")


class Keyed(EventBase):
    __topic__ = "keyed"
    __event_type__ = "keyed"
    __key__: ClassVar[str | None] = "account"
    account: str | int | None


def emitter() -> EventEmitter:
    return EventEmitter(InMemoryBroker().producer())


def order() -> OrderPlaced:
    return OrderPlaced(region="eu", amount=9.5, address=Address(city="Oslo"))


def test_topic_placeholders_are_filled_from_the_event() -> None:
    assert emitter().to_message(order()).topic == "orders:eu"
    assert emitter().to_message(RegionEvent(region=Region.EU)).topic == "regions:eu"


async def test_topic_naming_a_missing_field_raises_and_sends_nothing() -> None:
    broker = InMemoryBroker()
    with pytest.raises(TopicFormatError, match="missing") as caught:
        await EventEmitter(broker.producer()).emit(BrokenTopic(region="eu"))
    assert isinstance(caught.value, EventSerializationError)
    assert "BrokenTopic" in str(caught.value)
    assert broker.backlog("orders:{missing}") == 0
    assert broker.backlog("orders:") == 0


async def test_unserializable_body_raises() -> None:
    broker = InMemoryBroker()
    with pytest.raises(EventSerializationError, match="Anything"):
        await EventEmitter(broker.producer()).emit(Anything(payload=object()))
    assert broker.backlog("any") == 0


def test_id_defaults_to_a_uuid4_and_is_the_envelope_id() -> None:
    first, second = order(), order()
    assert uuid.UUID(first.id).version == 4
    assert first.id != second.id
    assert json.loads(emitter().to_message(first).value)["id"] == first.id
    given = OrderPlaced(id="my-id", region="eu", amount=1, address=Address(city="x"))
    assert json.loads(emitter().to_message(given).value)["id"] == "my-id"


def test_wire_format() -> None:
    event = order()
    before = int(time.time() * 1000)
    message = emitter().to_message(event)
    after = int(time.time() * 1000)
    payload = json.loads(message.value)
    assert set(payload) == {"id", "type", "body", "timestamp"}
    assert payload["type"] == "order_placed"
    assert payload["body"] == {"region": "eu", "amount": 9.5, "address": {"city": "Oslo"}}
    assert type(payload["timestamp"]) is int
    assert before <= payload["timestamp"] <= after
    assert message.timestamp_ms == payload["timestamp"]
    assert message.headers["content-type"] == "application/json"
    assert message.key is None


async def test_hand_written_010_envelope_is_decoded() -> None:
    broker = InMemoryBroker()
    listener = EventListener(broker.consumer("g"))
    seen: list[Event[Any]] = []

    class Body(BaseModel):
        user: str

    @listener.handler(topic="users", event="user_registered")
    async def handler(event: Event[Body]) -> None:
        seen.append(event)

    raw = (
        b'{"id": "7b0c", "type": "user_registered", '
        b'"body": {"user": "ada"}, "timestamp": 1700000000123}'
    )
    async with listener:
        await publish_raw(broker, "users", raw)  # 0.10 sent no content-type header
        await wait_until(lambda: len(seen) == 1)
    [event] = seen
    assert (event.id, event.type, event.topic) == ("7b0c", "user_registered", "users")
    assert event.body == Body(user="ada")
    assert event.timestamp == 1700000000123
    assert event.attempt == 1


async def test_messagepack_round_trip() -> None:
    broker = InMemoryBroker()
    listener = EventListener(broker.consumer("g"))  # default deserializer
    seen: list[Any] = []

    @listener.handler(topic="orders:{region}", event="order_placed")
    async def handler(event: Event[dict[str, Any]], region: str) -> None:
        seen.append((event.id, region, event.body))

    msgpack_emitter = EventEmitter(broker.producer(), MessagePackSerializer())
    event = order()
    message = msgpack_emitter.to_message(event)
    assert message.headers["content-type"] == "application/msgpack"
    decoded = MessagePackDeserializer().deserialize(message.value)
    assert set(decoded) == {"id", "type", "body", "timestamp"}
    with pytest.raises(ValueError):
        json.loads(message.value)

    async with listener:
        await msgpack_emitter.emit(event)
        await wait_until(lambda: len(seen) == 1)
        await wait_until(lambda: broker.pending("g") == 0)
    assert seen == [(event.id, "eu", {"region": "eu", "amount": 9.5, "address": {"city": "Oslo"}})]
    assert broker.backlog("orders:eu.dlq") == 0


async def test_emit_many() -> None:
    broker = InMemoryBroker()
    listener = EventListener(broker.consumer("g"))
    seen: list[float] = []

    @listener.handler(topic="orders:*", event="order_placed")
    async def handler(event: Event[OrderPlaced]) -> None:
        seen.append(event.body.amount)

    events = [
        OrderPlaced(region=r, amount=a, address=Address(city="x"))
        for r, a in (("eu", 1), ("us", 2), ("eu", 3))
    ]
    async with listener:
        await EventEmitter(broker.producer()).emit_many(events)
        await wait_until(lambda: len(seen) == 3)
    assert sorted(seen) == [1, 2, 3]


async def test_emit_many_serializes_everything_before_sending() -> None:
    broker = InMemoryBroker()
    with pytest.raises(TopicFormatError):
        await EventEmitter(broker.producer()).emit_many([order(), BrokenTopic(region="eu")])
    assert broker.backlog("orders:eu") == 0


def test_backend_config_from_class_and_per_instance() -> None:
    event = Configured()
    assert emitter().to_message(event).config.label == "class"

    special = Configured()
    special.__backend_config__ = Config("instance")
    assert emitter().to_message(special).config.label == "instance"
    assert Configured.__backend_config__.label == "class"
    assert emitter().to_message(Configured()).config.label == "class"
    assert emitter().to_message(order()).config is None


def test_key_field_becomes_the_message_key() -> None:
    assert emitter().to_message(Keyed(account="acc-1")).key == b"acc-1"
    assert emitter().to_message(Keyed(account=42)).key == b"42"
    assert emitter().to_message(Keyed(account=None)).key is None


class FailingProducer(Producer):
    def __init__(self, error: Exception) -> None:
        self.error = error
        self.attempts: list[OutgoingMessage] = []
        self.timeouts: list[float | None] = []
        self.started = 0

    async def start(self) -> None:
        self.started += 1

    async def send(self, message: OutgoingMessage, *, timeout: float | None = None) -> None:
        self.attempts.append(message)
        self.timeouts.append(timeout)
        raise self.error

    async def send_many(
        self, messages: Sequence[OutgoingMessage], *, timeout: float | None = None
    ) -> None:
        for message in messages:
            await self.send(message, timeout=timeout)

    async def close(self) -> None: ...


async def test_producer_failure_propagates() -> None:
    producer = FailingProducer(ProducerError("broker said no"))
    with pytest.raises(ProducerError, match="broker said no"):
        await EventEmitter(producer).emit(order())
    assert len(producer.attempts) == 1
    assert producer.started == 1


async def test_timeout_raises_without_a_callback() -> None:
    producer = FailingProducer(EmitTimeoutError("no confirmation"))
    with pytest.raises(EmitTimeoutError):
        await EventEmitter(producer, timeout=0.5).emit(order())
    assert producer.timeouts == [0.5]


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_timeout_calls_the_registered_callback(kind: str) -> None:
    producer = FailingProducer(EmitTimeoutError("no confirmation"))
    emitter = EventEmitter(producer)
    timed_out: list[EventBase] = []

    if kind == "sync":

        @emitter.on_timeout
        def on_timeout(event: EventBase) -> None:
            timed_out.append(event)

    else:

        @emitter.on_timeout
        async def on_timeout(event: EventBase) -> None:
            timed_out.append(event)

    event = order()
    await emitter.emit(event, timeout=0.2)
    assert timed_out == [event]
    assert producer.timeouts == [0.2]


async def test_timeout_callback_does_not_swallow_other_producer_errors() -> None:
    emitter = EventEmitter(FailingProducer(ProducerError("down")))
    called: list[EventBase] = []
    emitter.on_timeout(called.append)
    with pytest.raises(ProducerError):
        await emitter.emit(order())
    assert called == []


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (BrokerUnavailableError("no broker"), ProducerUnavailableError),
        (BackendError("client failed"), ProducerError),
    ],
)
async def test_every_backend_error_reaches_the_caller_as_an_emit_error(
    raised: Exception, expected: type[Exception]
) -> None:
    emitter = EventEmitter(FailingProducer(raised))
    with pytest.raises(expected) as caught:
        await emitter.emit(Anything(payload=1))
    assert isinstance(caught.value, EmitError)
    assert caught.value.__cause__ is raised
    with pytest.raises(expected):
        await emitter.emit_many([Anything(payload=1)])
