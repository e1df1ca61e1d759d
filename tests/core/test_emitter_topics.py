"""Topic placeholders: a `{field}` is one topic segment, so its value must be able to be one."""

import pytest
from pydantic import BaseModel

from dispytch import Event, EventBase, EventEmitter, EventListener, InMemoryBroker
from dispytch.errors import TopicFormatError
from tests.core.helpers import wait_until


class Visit(EventBase):
    __topic__ = "visits:{city}"
    __event_type__ = "visit"
    city: str


class DottedVisit(EventBase):
    __topic__ = "visits.{city}.{street}"
    __event_type__ = "visit"
    city: str
    street: str


class Tenant(EventBase):
    __topic__ = "{tenant}"
    __event_type__ = "e"
    tenant: str


class Glued(EventBase):
    __topic__ = "user-events-{region}"
    __event_type__ = "e"
    region: str


class Body(BaseModel):
    city: str


@pytest.mark.parametrize(
    ("event", "problem"),
    [
        (Visit(city=""), "empty"),
        (Visit(city="oslo:west"), "':'"),
        (DottedVisit(city="", street="main"), "empty"),
        (DottedVisit(city="oslo", street="a.b"), "'.'"),
        (Tenant(tenant=""), "empty"),
    ],
)
async def test_a_value_that_cannot_be_one_segment_is_refused_and_nothing_is_sent(
    event: EventBase, problem: str
) -> None:
    broker = InMemoryBroker()
    consumer = broker.consumer("g", ["*", "*:*", "*.*", "*.*.*", "*:*:*", "visits.*.*"])
    await consumer.start([])
    emitter = EventEmitter(broker.producer())
    with pytest.raises(TopicFormatError, match=problem) as caught:
        await emitter.emit(event)
    assert type(event).__name__ in str(caught.value)
    with pytest.raises(TopicFormatError):
        await emitter.emit_many([event])
    assert broker.pending("g") == 0


def test_values_that_make_one_segment_are_accepted() -> None:
    emitter = EventEmitter(InMemoryBroker().producer())
    assert emitter.to_message(Visit(city="oslo.west")).topic == "visits:oslo.west"
    assert emitter.to_message(DottedVisit(city="oslo", street="a:b")).topic == "visits.oslo.a:b"
    assert emitter.to_message(Tenant(tenant="acme:eu")).topic == "acme:eu"
    # "-" and "_" belong to names: a glued placeholder only has to be non-empty
    assert emitter.to_message(Glued(region="eu-west")).topic == "user-events-eu-west"
    with pytest.raises(TopicFormatError, match="empty"):
        emitter.to_message(Glued(region=""))


def test_an_explicit_delimiter_replaces_the_one_read_from_the_template() -> None:
    emitter = EventEmitter(InMemoryBroker().producer(), topic_delimiter="-")
    with pytest.raises(TopicFormatError, match="'-'"):
        emitter.to_message(Glued(region="eu-west"))
    assert emitter.to_message(Visit(city="oslo:west")).topic == "visits:oslo:west"
    with pytest.raises(TopicFormatError, match="empty"):
        emitter.to_message(Visit(city=""))


async def test_the_wildcard_handler_gets_what_the_emitter_accepts() -> None:
    broker = InMemoryBroker()
    listener = EventListener(broker.consumer("g"))
    seen: list[str] = []

    @listener.handler(topic="visits:{city}", event="visit")
    async def handler(event: Event[Body], city: str) -> None:
        seen.append(city)

    emitter = EventEmitter(broker.producer())
    async with listener:
        for city in ["", "a:b", "oslo", "x.y"]:
            try:
                await emitter.emit(Visit(city=city))
            except TopicFormatError:
                continue
        await wait_until(lambda: broker.pending("g") == 0)
    assert sorted(seen) == ["oslo", "x.y"]
    assert broker.backlog("visits:") == 0  # a topic no handler of the listener could match
    assert broker.backlog("visits:a:b") == 0
