"""The core's wire formats on any backend: the attempt a delivery is (its `dispytch-attempt`
header, else the broker's delivery count), and the headers a dead letter is stored with."""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import pytest
from pydantic import BaseModel

from dispytch import Event, EventListener
from dispytch.reasons import ATTEMPT_HEADER, DLQ_HEADER_PREFIX, DeadLetterReason

from .helpers import ScriptedConsumer, ScriptedDelivery, envelope, wait_until


class Body(BaseModel):
    n: int


class CountedDelivery(ScriptedDelivery):
    """A delivery from a broker that counts deliveries (NATS JetStream, Redis Streams)."""

    __slots__ = ("_count", "stored_headers")

    def __init__(
        self,
        value: bytes,
        count: object,
        headers: dict[str, str] | None = None,
        ordering_key: Hashable | None = None,
    ) -> None:
        super().__init__("t", value, ordering_key)
        self._count = count
        self.headers = headers or {}
        self.stored_headers: dict[str, str] | None = None

    @property
    def delivery_count(self) -> int | None:
        return self._count  # type: ignore[return-value]

    async def dead_letter(self, headers: Mapping[str, str]) -> None:
        self.stored_headers = dict(headers)
        await super().dead_letter(headers)


async def _attempts_seen(delivery: CountedDelivery, retries: int = 5) -> list[int]:
    listener = EventListener(ScriptedConsumer([delivery]))
    seen: list[int] = []

    @listener.handler(topic="t", event="e", retries=retries, retry_interval=0)
    async def handle(event: Event[Body]) -> None:
        seen.append(event.attempt)
        raise RuntimeError("fails every time")

    async with listener:
        await wait_until(lambda: bool(delivery.outcomes), what="the settlement")
    return seen


async def test_without_an_attempt_header_the_broker_delivery_count_is_the_attempt() -> None:
    delivery = CountedDelivery(envelope("e", {"n": 1}), count=4)
    # the broker delivered it 3 times before (a crashed worker): of the 1 + 5 attempts, 4-6 remain
    assert await _attempts_seen(delivery) == [4, 5, 6]
    assert delivery.outcomes == ["dead_letter"]
    assert delivery.reason is not None
    assert delivery.reason.attempts == 6


async def test_the_attempt_header_wins_over_the_delivery_count() -> None:
    delivery = CountedDelivery(envelope("e", {"n": 1}), count=4, headers={ATTEMPT_HEADER: "1"})
    assert await _attempts_seen(delivery) == [2, 3, 4, 5, 6]


@pytest.mark.parametrize("count", [None, 0, -3, 1, "7", True, 2.5])
async def test_a_missing_or_odd_delivery_count_means_the_first_attempt(count: object) -> None:
    delivery = CountedDelivery(envelope("e", {"n": 1}), count=count)
    assert (await _attempts_seen(delivery, retries=1))[0] == 1


async def test_the_core_gives_the_dead_letter_headers_original_plus_reason() -> None:
    """The backend is handed every header of the dead letter: the message's own, without the
    reason headers of an earlier dead-lettering, plus the new reason's."""
    headers = {
        "origin": "test",
        ATTEMPT_HEADER: "1",
        DLQ_HEADER_PREFIX + "handler": "an earlier handler",
        DLQ_HEADER_PREFIX + "stage": "decode",
    }
    delivery = CountedDelivery(b"not json", count=None, headers=headers)
    listener = EventListener(ScriptedConsumer([delivery]))

    @listener.handler(topic="t", event="e")
    async def handle(event: Event[Body]) -> None:
        raise AssertionError("never called")

    async with listener:
        await wait_until(lambda: bool(delivery.outcomes), what="the settlement")
    stored = delivery.stored_headers
    assert stored is not None
    reason = DeadLetterReason.from_headers(stored)
    assert reason is not None
    assert reason.stage == "decode"
    assert {name: stored[name] for name in ("origin", ATTEMPT_HEADER)} == {
        "origin": "test",
        ATTEMPT_HEADER: "1",
    }
    assert DLQ_HEADER_PREFIX + "handler" not in stored
    assert stored == {"origin": "test", ATTEMPT_HEADER: "1", **reason.to_headers()}
