"""Failures against the real registry (on the in-memory broker; the registry does not depend
on the broker): events that do not fit, schemas the registry rejects (BACKWARD, FORWARD and
FULL compatibility), auto-registration off, a registry that is down or slow when a new id is
first seen, unknown ids, credentials kept out of errors, and no registry I/O once warm."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any

import pytest

from dispytch import Event, EventBase, EventEmitter, EventListener, InMemoryBroker
from dispytch.errors import EventSerializationError
from dispytch.reasons import DeadLetterReason
from dispytch.schemas import (
    AVRO_CONTENT_TYPE,
    Avro,
    RecordMismatchError,
    SchemaIncompatibleError,
    SchemaNotRegisteredError,
    SchemaRegistry,
    SchemaRegistryError,
    SchemaRegistryUnavailableError,
    listener_codecs,
)
from dispytch.testing.harness import message
from tests.broker_gate import BrokerGate
from tests.memory.test_conformance import memory_harness


def record(name: str, *fields: tuple[str, Any] | tuple[str, Any, Any]) -> str:
    """An Avro record schema as JSON text: fields are (name, type) or (name, type, default)."""
    listed = []
    for field in fields:
        entry = {"name": field[0], "type": field[1]}
        if len(field) == 3:
            entry["default"] = field[2]
        listed.append(entry)
    return json.dumps({"type": "record", "name": name, "fields": listed})


@pytest.mark.parametrize(
    ("level", "change", "accepted"),
    [
        ("BACKWARD", "add a field without a default", False),
        ("BACKWARD", "add a field with a default", True),
        ("BACKWARD", "remove a field without a default", True),
        ("FORWARD", "add a field without a default", True),
        ("FORWARD", "remove a field without a default", False),
        ("FULL", "add a field without a default", False),
        ("FULL", "remove a field without a default", False),
        ("FULL", "add a field with a default", True),
    ],
)
async def test_the_registry_checks_each_compatibility_level(
    registry_url: str, unique: Callable[[str], str], level: Any, change: str, accepted: bool
) -> None:
    registry = SchemaRegistry(registry_url)
    subject, name = unique("compat") + "-value", unique("Order")
    await registry.register(subject, "AVRO", record(name, ("id", "long"), ("note", "string")))
    await registry.set_compatibility(subject, level)
    new = {
        "add a field without a default": record(
            name, ("id", "long"), ("note", "string"), ("qty", "long")
        ),
        "add a field with a default": record(
            name, ("id", "long"), ("note", "string"), ("qty", "long", 1)
        ),
        "remove a field without a default": record(name, ("id", "long")),
    }[change]
    if accepted:
        assert await registry.register(subject, "AVRO", new) > 0
    else:
        with pytest.raises(SchemaIncompatibleError, match="incompatible"):
            await registry.register(subject, "AVRO", new)


async def test_an_incompatible_new_version_raises_on_emit_and_nothing_is_sent(
    registry_url: str, unique: Callable[[str], str]
) -> None:
    registry = SchemaRegistry(registry_url, auto_register=True)
    topic, name = unique("orders"), unique("Order")

    class OrderV1(EventBase):
        __topic__ = topic
        __event_type__ = "order"
        __codec__ = Avro(registry, name=name)
        id_: int

    class OrderV2(EventBase):  # a new field without a default: not BACKWARD compatible
        __topic__ = topic
        __event_type__ = "order"
        __codec__ = Avro(registry, name=name)
        id_: int
        quantity: int

    broker = InMemoryBroker()
    consumer = broker.consumer("watch", [topic], ".")
    await consumer.start([])
    emitter = EventEmitter(broker.producer())
    try:
        await emitter.emit(OrderV1(id_=1))
        await registry.set_compatibility(f"{topic}-value", "BACKWARD")
        with pytest.raises(EventSerializationError) as raised:
            await emitter.emit(OrderV2(id_=2, quantity=3))
        assert isinstance(raised.value.__cause__, SchemaIncompatibleError)
        assert "incompatible" in str(raised.value)
        first = await asyncio.wait_for(consumer.receive(), 5)
        await first.ack()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(consumer.receive(), 0.5)
    finally:
        await consumer.close()
        await emitter.close()


async def test_an_event_that_does_not_fit_its_schema_raises_before_any_registry_request(
    registry_url: str, unique: Callable[[str], str]
) -> None:
    registry = SchemaRegistry(registry_url, auto_register=True)

    class Mislabelled(EventBase):
        __topic__ = unique("t")
        __event_type__ = "mislabelled"
        __codec__ = Avro(registry, json.loads(record(unique("R"), ("age", "string"))))
        age: int

    broker = InMemoryBroker()
    with pytest.raises(EventSerializationError) as raised:
        await EventEmitter(broker.producer()).emit(Mislabelled(age=3))
    assert isinstance(raised.value.__cause__, RecordMismatchError)
    assert "age" in str(raised.value)
    assert registry.requests == 0


async def test_with_auto_register_off_an_unregistered_schema_is_refused_on_emit(
    registry_url: str, unique: Callable[[str], str]
) -> None:
    registry = SchemaRegistry(registry_url)  # auto_register=False: the production default
    topic = unique("t")

    class Unregistered(EventBase):
        __topic__ = topic
        __event_type__ = "unregistered"
        __codec__ = Avro(registry, name=unique("U"))
        n: int

    emitter = EventEmitter(InMemoryBroker().producer())
    with pytest.raises(EventSerializationError) as raised:
        await emitter.emit(Unregistered(n=1))
    assert isinstance(raised.value.__cause__, SchemaNotRegisteredError)
    codec = Unregistered.__codec__
    await registry.register(f"{topic}-value", "AVRO", codec.schema_of(Unregistered).text)
    await emitter.emit(Unregistered(n=1))  # registered by the deploy step: found


class Tick(EventBase):
    __topic__ = "unset"
    __event_type__ = "tick"
    n: int


async def test_a_registry_that_is_down_or_silent_delays_a_new_id_and_nothing_is_dead_lettered(
    registry_url: str, unique: Callable[[str], str]
) -> None:
    host, port = registry_url.split("://", 1)[1].split("/", 1)[0].split(":")
    path = registry_url.split(host + ":" + port, 1)[1]
    gate = BrokerGate(host, int(port))
    topic = unique("ticks")
    writer = SchemaRegistry(registry_url, auto_register=True)
    tick = type("Tick", (Tick,), {"__topic__": topic, "__codec__": Avro(writer, name=unique("T"))})
    reader = SchemaRegistry(f"http://user:s3cret-pw@{gate.address}{path}", timeout=0.5)
    broker = InMemoryBroker()
    harness = memory_harness(broker)
    listener = EventListener(
        broker.consumer("g", delimiter="."), codecs=listener_codecs(reader), shutdown_grace=2
    )
    handled: list[int] = []

    @listener.handler(topic=topic, event="tick")
    async def on_tick(event: Event[Tick]) -> None:
        handled.append(event.body.n)

    try:
        await gate.hold()  # connections accepted, never answered: each request times out
        async with listener:
            await EventEmitter(broker.producer()).emit(tick(n=1))
            await _until(lambda: reader.requests >= 2, 10)  # timed out, and tried again
            await gate.shut()  # now refused
            requests = reader.requests
            await _until(lambda: reader.requests >= requests + 2, 10)
            assert handled == []
            await gate.open()
            await _until(lambda: handled == [1], 20)
        with pytest.raises(asyncio.TimeoutError):
            await harness.read_dead_letters(topic, 1, 0.3)
    finally:
        await gate.shut()


@pytest.mark.parametrize(("give_up_after", "dead_lettered"), [(None, False), (0.5, True)])
async def test_an_unknown_schema_id_waits_and_is_dead_lettered_only_after_give_up_after(
    registry_url: str,
    unique: Callable[[str], str],
    give_up_after: float | None,
    dead_lettered: bool,
) -> None:
    framed = b"\x00" + (2**31 - 7).to_bytes(4, "big") + b"\x02"
    registry = SchemaRegistry(registry_url)
    topic = unique("ticks")
    broker = InMemoryBroker()
    listener = EventListener(
        broker.consumer("g", delimiter="."),
        codecs=listener_codecs(registry, give_up_after=give_up_after),
        shutdown_grace=1,
    )

    @listener.handler(topic=topic, event="tick")
    async def on_tick(event: Event[dict[str, Any]]) -> None:
        raise AssertionError("no schema, no event")

    async with listener:
        await broker.producer().send(
            message(topic, framed, None, **{"content-type": AVRO_CONTENT_TYPE})
        )

        await _until(lambda: registry.requests >= 2, 10)  # asked again with backoff
        letters: list[tuple[bytes, dict[str, str]]] = []
        with contextlib.suppress(asyncio.TimeoutError):
            letters = await memory_harness(broker).read_dead_letters(topic, 1, 3)
    assert bool(letters) is dead_lettered
    if letters:
        reason = DeadLetterReason.from_headers(letters[0][1])
        assert reason is not None
        assert "no schema with id 2147483641" in reason.error_message


async def test_the_steady_state_makes_no_registry_request(
    registry_url: str, unique: Callable[[str], str]
) -> None:
    writer = SchemaRegistry(registry_url, auto_register=True)
    reader = SchemaRegistry(registry_url)
    topic = unique("ticks")
    tick = type("Tick", (Tick,), {"__topic__": topic, "__codec__": Avro(writer, name=unique("T"))})
    broker = InMemoryBroker()
    listener = EventListener(broker.consumer("g", delimiter="."), codecs=listener_codecs(reader))
    handled: list[int] = []

    @listener.handler(topic=topic, event="tick")
    async def on_tick(event: Event[Tick]) -> None:
        handled.append(event.body.n)

    emitter = EventEmitter(broker.producer())
    async with listener:
        await asyncio.gather(*(emitter.emit(tick(n=n)) for n in range(20)))  # concurrent misses
        await _until(lambda: len(handled) == 20, 10)
        warm = (writer.requests, reader.requests)
        await emitter.emit_many([tick(n=n) for n in range(20, 120)])
        await _until(lambda: len(handled) == 120, 10)
    assert warm == (1, 1)  # one registration; one fetch by id shared by concurrent first uses
    assert (writer.requests, reader.requests) == warm


async def test_credentials_never_show_in_repr_or_errors(unique: Callable[[str], str]) -> None:
    gate = BrokerGate("127.0.0.1", 1)  # a free port that nobody listens on
    registry = SchemaRegistry(
        f"http://alice:pa55word@{gate.address}/apis/ccompat/v7", auto_register=True, timeout=1
    )
    other = SchemaRegistry(f"http://{gate.address}", auth=("bob", "t0ps3cret"), timeout=1)

    class Ping(EventBase):
        __topic__ = unique("t")
        __event_type__ = "ping"
        __codec__ = Avro(registry)
        n: int | None = None

    with pytest.raises(SchemaRegistryUnavailableError) as raised:
        await EventEmitter(InMemoryBroker().producer()).emit(Ping())
    with pytest.raises(SchemaRegistryUnavailableError) as raised_other:
        await other.schema(1)
    shown = " ".join(
        [
            repr(registry),
            repr(other),
            str(raised.value),
            str(raised_other.value),
            repr(Ping.__codec__),
        ]
    )
    assert "pa55word" not in shown
    assert "t0ps3cret" not in shown
    assert "alice" in repr(registry)


async def _until(condition: Callable[[], bool], timeout: float) -> None:
    async def wait() -> None:
        while not condition():
            await asyncio.sleep(0.02)

    await asyncio.wait_for(wait(), timeout)


@pytest.mark.parametrize(
    ("naming", "expected"),
    [
        ("topic", "{topic}-value"),
        ("record", "ns.{record}"),
        ("topic_record", "{topic}-ns.{record}"),
    ],
)
async def test_each_subject_naming_registers_under_its_subject(
    registry_url: str, unique: Callable[[str], str], naming: Any, expected: str
) -> None:
    registry = SchemaRegistry(registry_url, auto_register=True, subject_naming=naming)
    topic, name = unique("named"), unique("Named")
    named = type(
        "Named",
        (Tick,),
        {"__topic__": topic, "__codec__": Avro(registry, name=name, namespace="ns")},
    )
    await EventEmitter(InMemoryBroker().producer()).emit(named(n=1))
    assert expected.format(topic=topic, record=name) in await registry.subjects()


async def test_an_answer_larger_than_the_bound_is_refused(registry_url: str) -> None:
    registry = SchemaRegistry(registry_url, max_response_bytes=1)
    schema_id = await SchemaRegistry(registry_url).register(
        "bounded-value", "AVRO", record("Bounded", ("n", "long"))
    )
    with pytest.raises(SchemaRegistryError, match="larger than 1 bytes"):
        await registry.schema(schema_id)
