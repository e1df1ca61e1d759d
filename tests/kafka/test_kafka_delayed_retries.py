"""Delayed retries through the group's retry topic, against the real broker."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import ClassVar

import pytest
from pydantic import BaseModel

from dispytch import Event, EventBase, EventEmitter, EventListener
from dispytch.backends.base import ListenerNeeds, Subscription
from dispytch.kafka import KafkaConsumer, KafkaProducer
from dispytch.kafka.consumer import NO_RETRY_TOPIC_CAPABILITIES
from dispytch.reasons import ATTEMPT_HEADER
from tests.core.helpers import envelope

from .conftest import NewTopicFactory
from .kafka_helpers import eventually, group_name, produce, read_topic, receive_n, receive_none

pytestmark = pytest.mark.kafka


class Job(BaseModel):
    name: str
    key: str = "same-key"


def job_event(topic: str) -> type[EventBase]:
    class JobEvent(EventBase):
        __topic__: ClassVar[str] = topic
        __event_type__: ClassVar[str] = "job"
        __key__: ClassVar[str | None] = "key"
        name: str
        key: str = "same-key"

    return JobEvent


def listener_for(bootstrap: str, group: str) -> EventListener:
    return EventListener(KafkaConsumer.create(bootstrap, group, commit_interval=0.05))


async def test_failing_handler_retries_later_without_blocking_its_partition(
    bootstrap: str, new_topic: NewTopicFactory
) -> None:
    topic = await new_topic(partitions=1)
    JobEvent = job_event(topic)
    listener = listener_for(bootstrap, group_name())
    seen: list[tuple[str, int, float]] = []
    loop = asyncio.get_running_loop()

    @listener.handler(topic=topic, event="job", retries=2, retry_interval=0.5, delayed_retries=True)
    async def handle(event: Event[Job]) -> None:
        seen.append((event.body.name, event.attempt, loop.time()))
        assert event.topic == topic
        if event.body.name == "flaky" and event.attempt < 3:
            raise RuntimeError("not yet")

    async def flaky_done() -> bool:
        return ("flaky", 3) in [(name, attempt) for name, attempt, _ in seen]

    async with EventEmitter(KafkaProducer.create(bootstrap)) as emitter, listener:
        # one partition, one key: the steady events sit right behind the flaky one
        await emitter.emit_many(
            [JobEvent(name="flaky"), *(JobEvent(name=f"steady-{n}") for n in range(5))]
        )
        await eventually(flaky_done, timeout=30, what="the third attempt")

    flaky = [(attempt, at) for name, attempt, at in seen if name == "flaky"]
    assert [attempt for attempt, _ in flaky] == [1, 2, 3]
    assert all(later - earlier >= 0.45 for (_, earlier), (_, later) in itertools.pairwise(flaky))
    second_attempt = seen.index(next(s for s in seen if s[:2] == ("flaky", 2)))
    steady = [index for index, (name, _, _) in enumerate(seen) if name.startswith("steady")]
    assert len(steady) == 5
    assert max(steady) < second_attempt, "the steady events waited for the retry"


async def test_a_handler_that_always_fails_ends_in_the_dead_letter_topic(
    bootstrap: str, new_topic: NewTopicFactory
) -> None:
    topic = await new_topic(partitions=2)
    JobEvent = job_event(topic)
    listener = listener_for(bootstrap, group_name())
    attempts: list[int] = []

    @listener.handler(topic=topic, event="job", retries=2, retry_interval=0.2, delayed_retries=True)
    async def handle(event: Event[Job]) -> None:
        attempts.append(event.attempt)
        raise ValueError("always")

    async with EventEmitter(KafkaProducer.create(bootstrap)) as emitter, listener:
        await emitter.emit(JobEvent(name="doomed"))
        ((value, key, headers),) = await read_topic(bootstrap, topic + ".dlq", 1, timeout=30)

    assert attempts == [1, 2, 3]
    assert headers["dispytch-dlq-attempts"] == b"3"
    assert headers["dispytch-dlq-original-topic"] == topic.encode()
    assert headers["dispytch-dlq-error-type"] == b"ValueError"
    assert not any(name.startswith("dispytch-retry-") for name in headers)
    assert key == b"same-key"
    assert b'"doomed"' in (value or b"")


async def test_the_attempt_count_survives_a_restart(
    bootstrap: str, new_topic: NewTopicFactory
) -> None:
    topic = await new_topic(partitions=1)
    JobEvent = job_event(topic)
    group = group_name()
    first_run: list[int] = []
    second_run: list[int] = []

    first = listener_for(bootstrap, group)

    @first.handler(topic=topic, event="job", retries=2, retry_interval=2.0, delayed_retries=True)
    async def fail(event: Event[Job]) -> None:
        first_run.append(event.attempt)
        raise RuntimeError("down")

    async def retry_stored() -> bool:
        return first_run == [1]

    async with EventEmitter(KafkaProducer.create(bootstrap)) as emitter, first:
        await emitter.emit(JobEvent(name="survivor"))
        await eventually(retry_stored, timeout=30, what="the first attempt")
        # the retry record is stored before the original is settled
        await read_topic(bootstrap, group + ".retry", 1, timeout=10)
    assert first_run == [1], "stopped before the retry was due"

    second = listener_for(bootstrap, group)

    @second.handler(topic=topic, event="job", retries=2, retry_interval=2.0, delayed_retries=True)
    async def succeed(event: Event[Job]) -> None:
        second_run.append(event.attempt)

    async def retried() -> bool:
        return bool(second_run)

    async with second:
        await eventually(retried, timeout=30, what="the retry after the restart")
        await asyncio.sleep(1.0)  # room for a wrong redelivery of the original to show up
    assert second_run == [2]


async def test_retry_later_hands_the_copy_out_when_due_as_the_original_topic(
    bootstrap: str, new_topic: NewTopicFactory
) -> None:
    topic = await new_topic(partitions=1)
    await produce(bootstrap, topic, [b"a", b"b"], key=b"k", headers=[("raw", b"\xff\xfe")])
    group = group_name()
    consumer = KafkaConsumer.create(bootstrap, group, topics=[topic], commit_interval=0.05)
    await consumer.start([])
    loop = asyncio.get_running_loop()
    try:
        first, second = await receive_n(consumer, 2)
        retried_at = loop.time()
        await first.retry_later(1.0, {**first.headers, ATTEMPT_HEADER: "1"})
        await first.retry_later(1.0, {ATTEMPT_HEADER: "9"})  # settled already: ignored
        assert await receive_none(consumer, 0.5) == [], "not handed out before it is due"
        (copy,) = await receive_n(consumer, 1, timeout=10)
        assert loop.time() - retried_at >= 0.95
        assert (copy.topic, copy.value, copy.key) == (topic, b"a", b"k")
        assert copy.headers[ATTEMPT_HEADER] == "1"
        assert not any(name.startswith("dispytch-retry-") for name in copy.headers)
        assert dict(copy.raw_headers)["raw"] == b"\xff\xfe"  # not-UTF-8 bytes kept as they were
        assert copy.metadata["retry_topic"] == group + ".retry"
        assert copy.metadata["topic"] == topic
        await copy.ack()
        await second.ack()
        assert await receive_none(consumer, 0.5) == []
    finally:
        await consumer.close()


async def test_a_later_due_retry_holds_back_only_its_own_retry_partition(
    bootstrap: str, new_topic: NewTopicFactory
) -> None:
    topic = await new_topic(partitions=1)
    group = group_name()
    await produce(bootstrap, topic, [b"slow", b"fast"])
    consumer = KafkaConsumer.create(bootstrap, group, topics=[topic], retry_partitions=1)
    await consumer.start([])
    try:
        slow, fast = await receive_n(consumer, 2)
        await slow.retry_later(2.0, {})
        await fast.retry_later(0.1, {})
        await produce(bootstrap, topic, [b"meanwhile"])
        (meanwhile,) = await receive_n(consumer, 1, timeout=10)
        assert meanwhile.value == b"meanwhile"  # the handler topic is not held back
        await meanwhile.ack()
        # one retry partition: the earlier-due copy waits behind the later-due one (documented)
        copies = await receive_n(consumer, 2, timeout=10)
        assert [c.value for c in copies] == [b"slow", b"fast"]
        for copy in copies:
            await copy.ack()
    finally:
        await consumer.close()


async def test_without_a_retry_topic_the_consumer_does_not_promise_native_delay(
    bootstrap: str, new_topic: NewTopicFactory
) -> None:
    topic = await new_topic(partitions=1)
    await produce(bootstrap, topic, [b"x"])
    consumer = KafkaConsumer.create(bootstrap, group_name(), topics=[topic], delayed_retries=False)
    assert consumer.capabilities == NO_RETRY_TOPIC_CAPABILITIES
    assert consumer.retry_topic is None
    await consumer.start([])
    try:
        (delivery,) = await receive_n(consumer, 1)
        client = consumer.client
        assert client is not None
        assert {tp.topic for tp in client.assignment()} == {topic}
        with pytest.raises(NotImplementedError):
            await delivery.retry_later(0.1, {})
        await delivery.ack()
    finally:
        await consumer.close()


async def _topic_exists(bootstrap: str, topic: str) -> bool:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return topic in await admin.list_topics()
    finally:
        await admin.close()


@pytest.mark.parametrize("delayed", [False, True])
async def test_retry_topic_is_created_only_for_delayed_retries(
    bootstrap: str, new_topic: NewTopicFactory, delayed: bool
) -> None:
    topic = await new_topic(partitions=2)
    group = group_name()
    consumer = KafkaConsumer.create(bootstrap, group)
    listener = EventListener(consumer)

    @listener.handler(topic=topic, event="job", retries=1, delayed_retries=delayed)
    async def handle(event: Event[Job]) -> None:
        pass

    async with listener:
        assert consumer.retry_topic == f"{group}.retry"
        assert await _topic_exists(bootstrap, f"{group}.retry") is delayed


async def test_a_retry_topic_left_from_before_is_read_by_handlers_that_no_longer_retry_later(
    bootstrap: str, new_topic: NewTopicFactory
) -> None:
    """A copy stored by a delayed retry of an earlier run is still handled when the handler
    no longer retries later: the retry topic is looked for (not created) and read if found."""
    topic = await new_topic(partitions=1)
    group = group_name()
    due = str(int(time.time() * 1000)).encode()
    copy = envelope("job", {"name": "left"})
    headers = [("dispytch-retry-topic", topic.encode()), ("dispytch-retry-at", due)]
    await produce(bootstrap, f"{group}.retry", [copy], headers=headers)
    listener = listener_for(bootstrap, group)
    seen: list[tuple[str, str]] = []

    @listener.handler(topic=topic, event="job", retries=1)
    async def handle(event: Event[Job]) -> None:
        seen.append((event.body.name, event.topic))

    async def handled() -> bool:
        return seen == [("left", topic)]

    async with listener:
        await eventually(handled, timeout=30, what="the left copy handled")


async def test_a_missing_retry_topic_is_not_created_by_looking_for_it(
    bootstrap: str, new_topic: NewTopicFactory
) -> None:
    """The broker auto-creates topics (`auto.create.topics.enable=true` in scripts/kafka):
    looking for the retry topic must not be a request that makes it."""
    topic = await new_topic(partitions=1)
    group = group_name()
    listener = listener_for(bootstrap, group)

    @listener.handler(topic=topic, event="job")
    async def handle(event: Event[Job]) -> None:
        pass

    async with listener:
        pass
    assert not await _topic_exists(bootstrap, f"{group}.retry")


async def test_a_retry_copy_cannot_claim_a_topic_the_group_does_not_read(
    bootstrap: str, new_topic: NewTopicFactory
) -> None:
    read, other = await new_topic(partitions=1), await new_topic(partitions=1)
    consumer = KafkaConsumer.create(bootstrap, group_name(), topics=[read])
    consumer.prepare(ListenerNeeds(max_in_flight=10, delayed_retries=True))
    await consumer.start([Subscription.parse(read, ":"), Subscription.parse(other, ":")])
    try:
        retry_topic = consumer.retry_topic
        assert retry_topic is not None
        due = str(int(time.time() * 1000)).encode()
        for claimed in (other, read):
            headers = [("dispytch-retry-topic", claimed.encode()), ("dispytch-retry-at", due)]
            await produce(bootstrap, retry_topic, [claimed.encode()], headers=headers)
        forged, genuine = await receive_n(consumer, 2)
        # whoever can write the retry topic reaches no handler of a topic the group skips
        assert (forged.value, forged.topic) == (other.encode(), retry_topic)
        assert (genuine.value, genuine.topic) == (read.encode(), read)
        await forged.ack()
        await genuine.ack()
    finally:
        await consumer.close()
