"""Topics that cannot be NATS subjects fail at once, naming the rule: when a handler is
registered, and when an event is emitted (before anything is sent)."""

from __future__ import annotations

import asyncio

import pytest

from dispytch import Event, EventEmitter, EventListener
from dispytch.backends.base import OutgoingMessage
from dispytch.errors import InvalidTopicNameError
from dispytch.nats import NatsConsumer, NatsProducer

from .conftest import TEST_TOPOLOGY

pytestmark = pytest.mark.nats


@pytest.mark.parametrize(
    ("topic", "problem"),
    [
        ("dtest:orders eu", "whitespace"),
        ("dtest:orders\r\nPUB x 1", "whitespace"),
        ("dtest::orders", "empty token"),
        ("dtest:orders:", "empty token"),
        ("dtest:*", "wildcard"),
        ("dtest:orders>", "wildcard"),
        ("", "empty"),
    ],
)
async def test_a_topic_nats_cannot_carry_is_refused_before_sending(
    nats_url: str, topic: str, problem: str
) -> None:
    producer = NatsProducer(nats_url)
    try:
        with pytest.raises(InvalidTopicNameError) as refused:
            await asyncio.wait_for(producer.send(OutgoingMessage(topic, b"x")), 5)
        assert problem in str(refused.value)
        with pytest.raises(InvalidTopicNameError):
            await asyncio.wait_for(
                producer.send_many(
                    [OutgoingMessage("dtest:ok", b"x"), OutgoingMessage(topic, b"")]
                ),
                5,
            )
        assert producer._client is None, "nothing may be sent, not even a connection made"
    finally:
        await producer.close()


def test_valid_subjects_pass() -> None:
    producer = NatsProducer("nats://127.0.0.1:1")
    for topic in ("dtest:orders", "dtest:orders:eu", "dtest.orders.eu-1_x", "a"):
        producer.check_topic(topic)


def test_registering_a_handler_nats_cannot_subscribe_to_fails(nats_url: str) -> None:
    listener = EventListener(NatsConsumer(nats_url, "g", topology=TEST_TOPOLOGY))
    with pytest.raises(InvalidTopicNameError) as refused:

        @listener.handler(topic="dtest:orders eu:{region}", event="placed")
        async def handle(event: Event[dict[str, str]]) -> None: ...

    assert "dtest:orders eu:{region}" in str(refused.value)
    assert "whitespace" in str(refused.value)


async def test_an_emitted_event_on_an_invalid_topic_fails_at_once(nats_url: str) -> None:
    from dispytch import EventBase

    class Placed(EventBase):
        __topic__ = "dtest:orders eu"
        __event_type__ = "placed"

    emitter = EventEmitter(NatsProducer(nats_url))
    try:
        with pytest.raises(InvalidTopicNameError):
            await asyncio.wait_for(emitter.emit(Placed()), 5)
    finally:
        await emitter.close()
