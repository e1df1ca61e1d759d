"""One-pass decoding (dispytch/one_pass.py): JSON envelopes and bodies validated in one pass
where the handlers' body types are known, and the general path's outcome for everything else."""

from __future__ import annotations

import asyncio
import datetime
import json
import uuid
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict

from dispytch import Event, EventListener, InMemoryBroker
from dispytch.backends.base import Subscription
from dispytch.memory.queue import StoredMessage
from dispytch.one_pass import OnePassDecoder
from dispytch.routing.router import Router
from dispytch.serialization import JSONDeserializer
from tests.core.helpers import envelope, publish_raw, read_dead_letters, wait_until

TOPIC = "one-pass"


class Placed(BaseModel):
    order: int


class Paid(BaseModel):
    amount: float


class Stamped(BaseModel):
    model_config = ConfigDict(strict=True)
    at: datetime.datetime


def listener_for(broker: InMemoryBroker, seen: list[Event[Any]], **options: Any) -> EventListener:
    listener = EventListener(broker.consumer(f"g-{uuid.uuid4().hex}"), **options)

    @listener.handler(topic=TOPIC, event="placed")
    async def on_placed(event: Event[Placed]) -> None:
        seen.append(event)

    @listener.handler(topic=TOPIC, event="paid")
    async def on_paid(event: Event[Paid]) -> None:
        seen.append(event)

    @listener.handler(topic=TOPIC, event="stamped")
    async def on_stamped(event: Event[Stamped]) -> None:
        seen.append(event)

    @listener.handler(topic=TOPIC, event="raw")
    async def on_raw(event: Event) -> None:  # type: ignore[type-arg]
        seen.append(event)

    return listener


async def test_json_messages_of_known_types_are_read_in_one_pass(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broker = InMemoryBroker()
    seen: list[Event[Any]] = []
    listener = listener_for(broker, seen)
    one_pass = listener._dispatcher.one_pass
    assert one_pass is not None
    read: list[object] = []
    decode = one_pass.decode

    def counted(delivery: Any) -> Any:
        read.append(decode(delivery))
        return read[-1]

    monkeypatch.setattr(one_pass, "decode", counted)
    async with listener:
        await publish_raw(broker, TOPIC, envelope("placed", {"order": 7}, event_id="e1"))
        await publish_raw(broker, TOPIC, envelope("paid", {"amount": "2.5"}, timestamp=None))
        await publish_raw(broker, TOPIC, envelope("raw", {"any": [1, {"x": None}]}))
        await publish_raw(
            broker,
            TOPIC,
            envelope("placed", {"order": 8}),
            headers={"content-type": "application/json"},
        )
        await wait_until(lambda: len(seen) == 4)
    assert all(r is not None for r in read), "every message was read in one pass"
    placed, paid, raw, placed_with_header = seen
    assert (placed.id, placed.type, placed.body, placed.timestamp) == (
        "e1",
        "placed",
        Placed(order=7),
        1_700_000_000_000,
    )
    assert paid.body == Paid(amount=2.5)
    assert paid.timestamp is None
    assert raw.body == {"any": [1, {"x": None}]}
    assert placed_with_header.body == Placed(order=8)
    assert broker.pending(listener.consumer.group) == 0  # type: ignore[attr-defined]


#: what one-pass decoding does not take: (event type, value) and what must become of it
REFUSED = {
    "malformed bytes": b'{"id": "x", "type": "placed", "body": {"order"',
    "not an object": b"[1, 2]",
    "id not a string": b'{"id": 5, "type": "placed", "body": {"order": 1}}',
    "no body": b'{"id": "x", "type": "placed"}',
    "bool timestamp": b'{"id": "x", "type": "placed", "body": {"order": 1}, "timestamp": true}',
    "infinite timestamp": (
        b'{"id": "x", "type": "placed", "body": {"order": 1}, "timestamp": 1e999}'
    ),
    "wrong body": b'{"id": "x", "type": "placed", "body": {"order": "many"}}',
    "strict body, JSON string for a datetime": (
        b'{"id": "x", "type": "stamped", "body": {"at": "2024-01-01T00:00:00"}}'
    ),
}


@pytest.mark.parametrize("case", REFUSED)
async def test_what_one_pass_refuses_is_dead_lettered_as_the_general_path_does(case: str) -> None:
    """The same reason with and without one-pass decoding (a listener-wide `deserializer=`
    turns it off)."""
    reasons = []
    for options in ({}, {"deserializer": JSONDeserializer()}):
        broker = InMemoryBroker()
        seen: list[Event[Any]] = []
        listener = listener_for(broker, seen, **options)
        async with listener:
            await publish_raw(broker, TOPIC, REFUSED[case])
            [(value, _, reason)] = await read_dead_letters(broker, TOPIC, 1)
        assert value == REFUSED[case]
        assert not seen
        reasons.append(
            (reason.stage, reason.error_type, reason.error_message, reason.handler, reason.event_id)
        )
    assert reasons[0] == reasons[1]
    assert reasons[0][0] in ("decode", "validation")


@pytest.mark.parametrize("dead_letter_unhandled", [False, True])
async def test_an_unknown_type_goes_the_general_path(dead_letter_unhandled: bool) -> None:
    broker = InMemoryBroker()
    seen: list[Event[Any]] = []
    listener = listener_for(broker, seen, dead_letter_unhandled=dead_letter_unhandled)
    async with listener:
        await publish_raw(broker, TOPIC, envelope("refunded", {"order": 1}))
        await publish_raw(broker, TOPIC, envelope("placed", {"order": 2}))
        await wait_until(lambda: len(seen) == 1)
        if dead_letter_unhandled:
            [(_, _, reason)] = await read_dead_letters(broker, TOPIC, 1)
            assert reason.stage == "unhandled"
        else:
            assert broker.backlog(broker.dead_letter_topic(TOPIC)) == 0
    assert seen[0].body == Placed(order=2)


async def test_a_float_timestamp_is_read_by_the_general_path_as_before() -> None:
    broker = InMemoryBroker()
    seen: list[Event[Any]] = []
    async with listener_for(broker, seen):
        await publish_raw(
            broker,
            TOPIC,
            json.dumps(
                {"id": "f", "type": "placed", "body": {"order": 1}, "timestamp": 1.5e12}
            ).encode(),
        )
        await wait_until(lambda: len(seen) == 1)
    assert seen[0].timestamp == 1_500_000_000_000
    assert type(seen[0].timestamp) is int


def decoder_for(*handlers: tuple[str, str, type[BaseModel] | None]) -> OnePassDecoder:
    listener = EventListener(InMemoryBroker().consumer())
    for topic, event_type, body in handlers:
        annotation = Event if body is None else Event[body]  # type: ignore[valid-type]

        async def handler(event: annotation) -> None:  # type: ignore[valid-type]
            pass

        listener.handler(topic=topic, event=event_type)(handler)
    router: Router = listener._router
    return OnePassDecoder(router.body_types)


def delivery(topic: str, value: bytes, headers: dict[str, str] | None = None) -> Any:
    from dispytch.memory.consumer import InMemoryDelivery

    consumer = InMemoryBroker().consumer()
    return InMemoryDelivery(consumer, StoredMessage(topic, value, None, headers or {}))


def test_topics_are_read_in_one_pass_only_where_the_outcome_cannot_differ() -> None:
    valid = envelope("placed", {"order": 1})
    decoder = decoder_for(("a", "placed", Placed), ("a", "paid", Paid))
    assert decoder.decode(delivery("a", valid)) is not None
    assert decoder.decode(delivery("other", valid)) is None  # no handler on the topic
    # another content type: its codec reads it
    assert decoder.decode(delivery("a", valid, {"content-type": "application/msgpack"})) is None
    assert decoder.decode(delivery("a", valid, {"content-type": "Application/JSON"})) is None
    # a handler of any type on the topic: the body types are not known
    assert (
        decoder_for(("a", "placed", Placed), ("a", "*", Paid)).decode(delivery("a", valid)) is None
    )
    # two body types for one event type
    assert (
        decoder_for(("a", "placed", Placed), ("a", "placed", Paid)).decode(delivery("a", valid))
        is None
    )
    # a strict model: JSON and Python validation differ (the other types are still read)
    strict = envelope("stamped", {"at": "2024-01-01T00:00:00"})
    mixed = decoder_for(("a", "placed", Placed), ("a", "stamped", Stamped))
    assert mixed.decode(delivery("a", strict)) is None
    assert mixed.decode(delivery("a", valid)) is not None
    # a pattern subscription counts too
    assert decoder_for(("a:{x}", "placed", Placed)).decode(delivery("a:1", valid)) is not None
    assert Subscription.parse("a:{x}", ":").matches("a:1")


async def test_handlers_sharing_a_body_type_share_the_one_pass_body() -> None:
    broker = InMemoryBroker()
    bodies: list[Placed] = []
    listener = EventListener(broker.consumer())

    @listener.handler(topic=TOPIC, event="placed")
    async def first(event: Event[Placed]) -> None:
        bodies.append(event.body)

    @listener.handler(topic=TOPIC, event="placed")
    async def second(event: Event[Placed]) -> None:
        await asyncio.sleep(0)
        bodies.append(event.body)

    async with listener:
        await publish_raw(broker, TOPIC, envelope("placed", {"order": 3}))
        await wait_until(lambda: len(bodies) == 2)
    assert bodies[0] is bodies[1]
    assert bodies[0] == Placed(order=3)
