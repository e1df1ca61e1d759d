"""Scenario 5, property-based: whatever bytes arrive, the listener's dispatch never raises and
settles each message exactly once (ack or dead-letter; never nack, never twice)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, Mapping
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dispytch import Event, EventListener, InMemoryBroker
from dispytch.backends.base import Delivery, OutgoingMessage
from dispytch.reasons import DeadLetterReason

from .events import TICK, Tick

TOPIC = "prop:events"



def _values(integers: st.SearchStrategy[int]) -> st.SearchStrategy[Any]:
    return st.recursive(
        st.none() | st.booleans() | integers | st.floats(allow_nan=False) | st.text(),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
        max_leaves=12,
    )


#: anything JSON holds (integers of any size)
json_values = _values(st.integers())
#: anything MessagePack holds (integers of 64 bits)
msgpack_values = _values(st.integers(min_value=-(2**63), max_value=2**64 - 1))


def _envelopes(values: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Objects that look more or less like envelopes."""
    bodies = st.fixed_dictionaries(
        {"seq": st.integers(min_value=-(2**63), max_value=2**63) | st.text() | st.none()},
        optional={"poison": st.booleans() | values, "key": values, "pad": values},
    )
    return st.fixed_dictionaries(
        {
            "id": st.text(max_size=8) | values,
            "type": st.sampled_from([TICK, "raw", "nobody"]) | values,
            "body": bodies | values,
        },
        optional={"timestamp": st.integers(min_value=0, max_value=2**63) | values},
    )


payloads = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda value: json.dumps(value).encode()),
    _envelopes(json_values).map(lambda value: json.dumps(value).encode()),
    _envelopes(json_values).map(lambda value: json.dumps(value).encode()[:-3]),  # truncated
    _envelopes(msgpack_values).map(lambda value: msgpack.packb(value)),
    msgpack_values.map(lambda value: msgpack.packb(value)),
)
content_types = st.sampled_from(
    [{}, {"content-type": "application/json"}, {"content-type": "application/msgpack"},
     {"content-type": "text/plain"}, {"dispytch-attempt": "x"}, {"dispytch-attempt": "-3"}]
)


class RecordingDelivery(Delivery):
    """A delivery that records how it was settled."""

    __slots__ = ("outcomes",)

    def __init__(self, value: bytes, headers: dict[str, str]) -> None:
        self.topic = TOPIC
        self.value = value
        self.key = None
        self.headers = headers
        self.ordering_key = None
        self.metadata = {}
        self.outcomes: list[str] = []

    async def ack(self) -> None:
        self.outcomes.append("ack")

    async def nack(self, *, delay: float | None = None) -> None:
        self.outcomes.append("nack")

    async def dead_letter(self, headers: Mapping[str, str]) -> None:
        reason = DeadLetterReason.from_headers(headers)
        assert reason is not None
        assert reason.stage in {"decode", "validation", "handler"}, reason
        self.outcomes.append("dead_letter:" + reason.stage)


def _listener(broker: InMemoryBroker, group: str = "prop") -> EventListener:
    listener = EventListener(broker.consumer(group))

    @listener.handler(topic=TOPIC, event=TICK)
    async def tick(event: Event[Tick]) -> None:
        if event.body.poison:
            raise RuntimeError("poison")

    @listener.handler(topic=TOPIC, event="raw")
    async def raw(event: Event) -> None:  # type: ignore[type-arg]
        if not isinstance(event.body, dict):
            raise TypeError("not an object")

    return listener


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    event_loop = asyncio.new_event_loop()
    yield event_loop
    event_loop.close()


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=payloads, headers=content_types)
def test_dispatch_settles_any_bytes_exactly_once(
    loop: asyncio.AbstractEventLoop, value: bytes, headers: dict[str, str]
) -> None:
    dispatcher = _listener(InMemoryBroker())._dispatcher
    delivery = RecordingDelivery(value, headers)
    loop.run_until_complete(dispatcher.handle(delivery))
    assert len(delivery.outcomes) == 1, delivery.outcomes
    assert delivery.outcomes[0] != "nack"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=st.lists(st.tuples(payloads, content_types), min_size=1, max_size=15))
def test_listener_settles_any_batch_and_keeps_going(
    loop: asyncio.AbstractEventLoop, batch: list[tuple[bytes, dict[str, str]]]
) -> None:
    """A full listener on the in-memory broker: every message settled, the group empty, and
    a good event sent after the batch still handled."""

    async def scenario() -> None:
        broker = InMemoryBroker()
        listener = _listener(broker)
        producer = broker.producer()
        for value, headers in batch:
            await producer.send(OutgoingMessage(TOPIC, value, headers=dict(headers)))
        good = {"id": "good-after", "type": "raw", "body": {"ok": True}, "timestamp": 1}
        await producer.send(OutgoingMessage(TOPIC, json.dumps(good).encode()))
        async with listener:
            deadline = loop.time() + 5
            while broker.pending("prop"):
                assert loop.time() < deadline, f"{broker.pending('prop')} unsettled"
                await asyncio.sleep(0.001)
        assert listener.running is False
        assert broker.pending("prop") == 0
        # a dead letter per message that was not acked, never more than the batch
        assert broker.backlog(TOPIC + ".dlq") <= len(batch)

    loop.run_until_complete(scenario())
