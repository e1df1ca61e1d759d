"""Kafka topic names are checked before anything is sent or subscribed: a name Kafka refuses
fails at once, naming the rule, instead of after a 40 s metadata wait."""

from __future__ import annotations

import asyncio
import logging
import uuid

import pytest
from pydantic import BaseModel

from dispytch import Event, EventBase, EventEmitter, EventListener
from dispytch.backends.base import OutgoingMessage
from dispytch.errors import InvalidTopicNameError, TopicFormatError
from dispytch.kafka import KafkaConsumer, KafkaProducer
from dispytch.kafka._topic_names import check_topic


class Placed(EventBase):
    __topic__ = "orders:{region}"
    __event_type__ = "placed"
    region: str


class Body(BaseModel):
    region: str


@pytest.mark.parametrize(
    "name", ["orders:eu", "", ".", "..", "x" * 250, "orders eu", "orders/eu", "ordérs"]
)
def test_names_kafka_refuses_are_refused_naming_the_rule(name: str) -> None:
    with pytest.raises(InvalidTopicNameError) as refused:
        check_topic(name)
    assert "a-z A-Z" in str(refused.value)


@pytest.mark.parametrize("name", ["orders", "orders.eu", "o_r-d.e.r.s", "x" * 249, "..."])
def test_names_kafka_takes_pass(name: str) -> None:
    check_topic(name)


def test_a_valid_name_is_checked_once_and_a_refused_one_every_time() -> None:
    """Every send checks its topic: the steady state must be a cache lookup, not a pass over
    the characters; and a refusal is never remembered as a pass."""
    valid, refused = f"orders.{uuid.uuid4().hex}", f"orders:{uuid.uuid4().hex}"
    check_topic(valid)
    hits = check_topic.cache_info().hits
    check_topic(valid)
    assert check_topic.cache_info().hits == hits + 1
    for _ in range(2):
        with pytest.raises(InvalidTopicNameError):
            check_topic(refused)


async def test_emitting_to_an_illegal_topic_fails_at_once(bootstrap: str) -> None:
    producer = KafkaProducer.create(bootstrap)
    try:
        emitter = EventEmitter(producer)
        with pytest.raises(TopicFormatError) as refused:
            await asyncio.wait_for(emitter.emit(Placed(region="eu")), 5)
        assert "':'" in str(refused.value)
        with pytest.raises(InvalidTopicNameError):
            await asyncio.wait_for(producer.send(OutgoingMessage("a:b", b"x")), 5)
        with pytest.raises(InvalidTopicNameError):
            await asyncio.wait_for(
                producer.send_many([OutgoingMessage("ok", b"x"), OutgoingMessage("a:b", b"x")]),
                5,
            )
    finally:
        await producer.close()


def test_registering_a_handler_kafka_cannot_subscribe_to_fails(bootstrap: str) -> None:
    listener = EventListener(KafkaConsumer.create(bootstrap, "g"))
    with pytest.raises(InvalidTopicNameError) as refused:

        @listener.handler(topic="orders:{region}", event="placed")
        async def handle(event: Event[Body]) -> None: ...

    assert "orders:{region}" in str(refused.value)
    assert "':'" in str(refused.value)


async def test_the_first_emit_to_a_new_topic_logs_no_client_error(
    bootstrap: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    producer = KafkaProducer.create(bootstrap)
    topic = f"dispytch-new-{uuid.uuid4().hex[:12]}"  # created by the broker on first use
    try:
        await producer.send(OutgoingMessage(topic, b"x"), timeout=30)
    finally:
        await producer.close()
    noisy = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert not [message for message in noisy if "not found in cluster metadata" in message], noisy
