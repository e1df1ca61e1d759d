"""Routing: topic patterns, segments, wildcards, defaults, several handlers, unknown types."""

import asyncio
import logging
from typing import Annotated, Any

import pytest
from pydantic import BaseModel, Field

from dispytch import Event, EventListener, HandlerGroup, InMemoryBroker, TopicSegment
from tests.core.helpers import (
    CountingConsumer,
    envelope,
    publish_raw,
    read_dead_letters,
    run_group,
    wait_until,
)


class Body(BaseModel):
    n: int


async def test_segment_is_converted_to_the_parameter_type() -> None:
    seen: list[Any] = []
    group = HandlerGroup()

    @group.handler(topic="users:{user_id}:{action}", event="e")
    async def handler(
        event: Event[Body], user_id: Annotated[int, TopicSegment()], action: str
    ) -> None:
        seen.append((user_id, action, event.topic))

    await run_group(group, [("users:42:login", envelope("e", {"n": 1}))])
    assert seen == [(42, "login", "users:42:login")]
    assert type(seen[0][0]) is int


@pytest.mark.parametrize("segment", ["0", "-3", "abc"])
async def test_segment_failing_validation_is_dead_lettered(segment: str) -> None:
    seen: list[int] = []
    group = HandlerGroup()

    # "." as delimiter: with ":" the dead-letter topic "users:abc.dlq" would match the
    # handler's own pattern (see test_wildcard_handler_does_not_receive_its_own_dead_letters)
    @group.handler(topic="users.{user_id}", event="e", retries=3, retry_interval=0)
    async def handler(user_id: Annotated[int, TopicSegment(), Field(gt=0)]) -> None:
        seen.append(user_id)

    topic = f"users.{segment}"
    bad = envelope("e", {"n": 1})
    broker = await run_group(
        group, [(topic, bad), ("users.5", envelope("e", {}))], topic_delimiter="."
    )
    assert seen == [5]
    [(value, _, reason)] = await read_dead_letters(broker, topic, 1)
    assert value == bad
    assert reason.stage == "validation"
    assert reason.attempts == 1
    assert reason.original_topic == topic
    assert reason.handler is not None
    assert reason.handler.endswith("handler")


async def test_star_matches_exactly_one_segment() -> None:
    seen: list[str] = []
    group = HandlerGroup()

    @group.handler(topic="orders:*:created", event="e")
    async def handler(event: Event[Body]) -> None:
        seen.append(event.topic)

    topics = ["orders:eu:created", "orders:created", "orders:eu:x:created", "orders:us:created"]
    listener_broker = InMemoryBroker()
    listener = EventListener(listener_broker.consumer("g"))
    listener.add_handler_group(group)
    async with listener:
        for topic in topics:
            await publish_raw(listener_broker, topic, envelope("e", {"n": 1}))
        await wait_until(lambda: listener_broker.pending("g") == 0)
    assert sorted(seen) == ["orders:eu:created", "orders:us:created"]
    # the others were never given to the group at all
    assert listener_broker.backlog("orders:created") == 1
    assert listener_broker.backlog("orders:eu:x:created") == 1


async def test_any_event_type() -> None:
    seen: list[tuple[str, Any]] = []
    group = HandlerGroup()

    @group.handler(topic="t", event="*")
    async def handler(event: Event[dict[str, Any]]) -> None:
        seen.append((event.type, event.body))

    await run_group(group, [("t", envelope("a", {"x": 1})), ("t", envelope("b", {"y": 2}))])
    assert sorted(seen) == [("a", {"x": 1}), ("b", {"y": 2})]


async def test_configurable_delimiter() -> None:
    seen: list[Any] = []
    group = HandlerGroup()

    @group.handler(topic="users.{user_id}.*", event="e")
    async def handler(user_id: int, event: Event[Body]) -> None:
        seen.append((user_id, event.topic))

    await run_group(
        group,
        [
            ("users.7.created", envelope("e", {"n": 1})),
            ("users:8:created", envelope("e", {"n": 1})),  # ':' is no delimiter here
        ],
        topic_delimiter=".",
    )
    assert seen == [(7, "users.7.created")]


async def test_group_defaults_for_topic_and_event_with_segments() -> None:
    seen: list[Any] = []
    group = HandlerGroup(default_topic="tenants:{tenant}", default_event="created")

    @group.handler()
    async def on_created(event: Event[Body], tenant: str) -> None:
        seen.append(("created", tenant, event.body.n))

    @group.handler(event="deleted")
    async def on_deleted(tenant: Annotated[str, TopicSegment()]) -> None:
        seen.append(("deleted", tenant))

    @group.handler(topic="other")
    async def on_other(event: Event[Body]) -> None:
        seen.append(("other", event.type))

    await run_group(
        group,
        [
            ("tenants:acme", envelope("created", {"n": 1})),
            ("tenants:acme", envelope("deleted", {})),
            ("other", envelope("created", {"n": 2})),
            ("other", envelope("deleted", {"n": 3})),  # not the default event: unhandled
        ],
    )
    assert sorted(seen) == [("created", "acme", 1), ("deleted", "acme"), ("other", "created")]


async def test_several_handlers_all_run_and_the_message_is_acked_once_after_all() -> None:
    broker = InMemoryBroker()
    consumer = CountingConsumer(broker.consumer("g"))
    listener = EventListener(consumer)
    release = asyncio.Event()
    finished: list[str] = []

    @listener.handler(topic="t", event="e")
    async def fast(event: Event[Body]) -> None:
        finished.append("fast")

    @listener.handler(topic="t", event="*")
    async def slow(event: Event[dict[str, Any]]) -> None:
        await release.wait()
        finished.append("slow")

    async with listener:
        await publish_raw(broker, "t", envelope("e", {"n": 1}))
        await wait_until(lambda: finished == ["fast"])
        for _ in range(10):  # give a premature ack every chance to happen
            await asyncio.sleep(0)
        assert broker.pending("g") == 1
        assert consumer.acks == 0
        release.set()
        await wait_until(lambda: broker.pending("g") == 0)
    assert finished == ["fast", "slow"]
    assert consumer.acks == 1
    assert consumer.dead_letters == 0


async def test_one_failing_handler_dead_letters_the_message_after_the_others_ran() -> None:
    seen: list[str] = []
    group = HandlerGroup()

    @group.handler(topic="t", event="e")
    async def good(event: Event[Body]) -> None:
        seen.append("good")

    @group.handler(topic="t", event="e")
    async def bad(event: Event[Body]) -> None:
        raise RuntimeError("bad handler")

    broker = await run_group(group, [("t", envelope("e", {"n": 1}))])
    assert seen == ["good"]
    [(_, _, reason)] = await read_dead_letters(broker, "t", 1)
    assert reason.stage == "handler"
    assert reason.handler is not None
    assert reason.handler.endswith("bad")


async def test_unknown_event_type_is_acked_and_logged_at_debug(
    caplog: pytest.LogCaptureFixture,
) -> None:
    group = HandlerGroup()

    @group.handler(topic="t", event="known")
    async def handler(event: Event[Body]) -> None: ...

    caplog.set_level(logging.DEBUG, logger="dispytch")
    broker = await run_group(group, [("t", envelope("mystery_type", {"n": 1}))])
    assert broker.pending("g") == 0
    assert broker.backlog("t.dlq") == 0
    records = [r for r in caplog.records if "mystery_type" in r.getMessage()]
    assert records, "the unhandled event was not logged"
    assert all(r.levelno == logging.DEBUG for r in records)
    assert all(r.name.startswith("dispytch.") for r in records)


async def test_dead_letter_unhandled() -> None:
    group = HandlerGroup()

    @group.handler(topic="t", event="known")
    async def handler(event: Event[Body]) -> None: ...

    broker = await run_group(
        group, [("t", envelope("mystery_type", {"n": 1}))], dead_letter_unhandled=True
    )
    [(_, _, reason)] = await read_dead_letters(broker, "t", 1)
    assert reason.stage == "unhandled"
    assert reason.event_type == "mystery_type"


def test_segment_that_does_not_stand_alone_is_refused_when_added() -> None:
    group = HandlerGroup()

    @group.handler(topic="users:id-{user_id}", event="e")
    async def handler(user_id: int) -> None: ...

    listener = EventListener(InMemoryBroker().consumer("g"))
    with pytest.raises(TypeError, match="user_id"):
        listener.add_handler_group(group)


async def test_wildcard_handler_does_not_receive_its_own_dead_letters() -> None:
    calls: list[str] = []
    second_call = asyncio.Event()
    broker = InMemoryBroker()
    listener = EventListener(broker.consumer("g"))

    @listener.handler(topic="users:{uid}", event="e")
    async def handler(uid: str) -> None:
        calls.append(uid)
        if len(calls) > 1:
            second_call.set()
        raise ValueError("always fails")

    async with listener:
        await publish_raw(broker, "users:5", envelope("e", {}))
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(second_call.wait(), 0.3)
    assert calls == ["5"]


async def test_handler_added_to_a_group_after_the_group_was_added_runs() -> None:
    broker = InMemoryBroker()
    listener = EventListener(broker.consumer("g"))
    group = HandlerGroup(default_topic="orders")
    seen: list[str] = []

    @group.handler(event="created")
    async def early(event: Event[Body]) -> None:
        seen.append("early")

    listener.add_handler_group(group)

    @group.handler(event="shipped")  # after add_handler_group, before the listener starts
    async def late(event: Event[Body]) -> None:
        seen.append("late")

    async with listener:
        await publish_raw(broker, "orders", envelope("created", {"n": 1}))
        await publish_raw(broker, "orders", envelope("shipped", {"n": 2}))
        await wait_until(lambda: broker.pending("g") == 0)
    assert sorted(seen) == ["early", "late"]


async def test_handler_added_to_a_group_of_a_running_listener_is_refused() -> None:
    broker = InMemoryBroker()
    listener = EventListener(broker.consumer("g"))
    other = EventListener(InMemoryBroker().consumer("g"))
    group = HandlerGroup(default_topic="orders")

    @group.handler(event="created")
    async def early(event: Event[Body]) -> None: ...

    listener.add_handler_group(group)
    other.add_handler_group(group)
    async with listener:
        with pytest.raises(RuntimeError, match="before the listener starts"):

            @group.handler(event="shipped")
            async def late(event: Event[Body]) -> None: ...

    # refused as a whole: neither the group nor the other listener kept it
    assert len(group.handlers) == 1
    assert len(other._router.specs) == 1


def test_handler_added_to_a_group_later_is_checked_against_the_listener() -> None:
    group = HandlerGroup()
    listener = EventListener(InMemoryBroker().consumer("g"))
    listener.add_handler_group(group)
    with pytest.raises(TypeError, match="user_id"):

        @group.handler(topic="users:id-{user_id}", event="e")
        async def handler(user_id: int) -> None: ...

    assert group.handlers == []


def test_adding_the_same_group_twice_registers_its_handlers_once() -> None:
    group = HandlerGroup(default_topic="t", default_event="e")

    @group.handler()
    async def handler(event: Event[Body]) -> None: ...

    listener = EventListener(InMemoryBroker().consumer("g"))
    listener.add_handler_group(group)
    listener.add_handler_group(group)
    assert len(listener._router.specs) == 1

    @group.handler(event="other")
    async def later(event: Event[Body]) -> None: ...

    assert len(listener._router.specs) == 2
