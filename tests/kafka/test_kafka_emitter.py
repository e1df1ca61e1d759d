"""The emitter on the real Kafka: topic values, event loops, emit_many outcomes, close."""

from __future__ import annotations

import uuid

import pytest

from dispytch import EventBase, EventEmitter
from dispytch.errors import TopicFormatError
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
    assert value is not None and b'"city":"oslo"' in value
