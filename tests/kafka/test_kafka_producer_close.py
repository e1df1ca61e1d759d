"""`KafkaProducer.close()` is bounded: records the broker has not confirmed when `close_timeout`
runs out are abandoned, with a WARNING saying how many, and the client is closed.

aiokafka's `stop()` waits for every record its client holds, without a bound (with idempotence,
a record the broker refuses with NOT_ENOUGH_REPLICAS is retried until replicas are back). On a
single broker that refusal cannot be provoked (Kafka caps the effective `min.insync.replicas`
at the replication factor), so the test holds the record in the client instead: a `linger_ms`
far beyond the bound keeps it unsent, and `stop()` waits for it the same way."""

from __future__ import annotations

import asyncio
import logging

import pytest
from aiokafka.errors import KafkaError

from dispytch import EventBase, EventEmitter
from dispytch.errors import EmitTimeoutError
from dispytch.kafka import KafkaProducer

from .conftest import NewTopicFactory

pytestmark = pytest.mark.kafka

CLOSE_TIMEOUT = 2.0
LINGER_MS = 240_000  # far beyond the bound: the record stays in the client


async def test_close_abandons_unconfirmed_records_after_its_timeout(
    bootstrap: str, new_topic: NewTopicFactory, caplog: pytest.LogCaptureFixture
) -> None:
    topic = await new_topic()

    class Held(EventBase):
        __topic__ = topic
        __event_type__ = "held"
        n: int

    producer = KafkaProducer.create(
        bootstrap, close_timeout=CLOSE_TIMEOUT, linger_ms=LINGER_MS, max_batch_size=1 << 20
    )
    emitter = EventEmitter(producer, timeout=1.0)
    with pytest.raises(EmitTimeoutError):
        await emitter.emit(Held(n=1))
    client = producer.client
    assert client is not None
    with caplog.at_level(logging.WARNING, logger="dispytch.kafka"):
        # the bound under test is CLOSE_TIMEOUT; this one fails the test instead of waiting
        # out the linger, as close() did before it had a bound
        await asyncio.wait_for(emitter.close(), timeout=LINGER_MS / 1000 / 4)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("1 record(s)" in w and "abandoned" in w for w in warnings), warnings
    with pytest.raises(KafkaError):  # the client is closed: it refuses a send at once
        await asyncio.wait_for(client.send(topic, b"x"), timeout=10)


async def test_close_with_everything_confirmed_abandons_nothing(
    bootstrap: str, new_topic: NewTopicFactory, caplog: pytest.LogCaptureFixture
) -> None:
    topic = await new_topic()

    class Fine(EventBase):
        __topic__ = topic
        __event_type__ = "fine"
        n: int

    emitter = EventEmitter(KafkaProducer.create(bootstrap, close_timeout=30), timeout=20)
    await emitter.emit_many([Fine(n=n) for n in range(10)])
    with caplog.at_level(logging.WARNING, logger="dispytch.kafka"):
        await asyncio.wait_for(emitter.close(), timeout=60)
    assert not [r for r in caplog.records if "abandoned" in r.getMessage()]
