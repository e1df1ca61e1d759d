"""When settling itself fails: the message goes back to the broker, without a tight loop."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from pydantic import BaseModel

from dispytch import Event, EventListener
from dispytch.dispatch import DEAD_LETTER_RETRY_DELAY
from dispytch.errors import BackendError, EmitTimeoutError

from .helpers import ScriptedConsumer, ScriptedDelivery, envelope, wait_until


class Body(BaseModel):
    n: int


class UnwritableDeadLetters(ScriptedDelivery):
    """The dead-letter destination is unavailable; nacks record their delay."""

    __slots__ = ("nack_delays",)

    def __init__(self, topic: str, value: bytes) -> None:
        super().__init__(topic, value)
        self.nack_delays: list[float | None] = []

    async def dead_letter(self, headers: Mapping[str, str]) -> None:
        self.outcomes.append("dead_letter failed")
        raise BackendError("dead-letter topic unavailable")

    async def nack(self, *, delay: float | None = None) -> None:
        self.nack_delays.append(delay)
        self.outcomes.append("nack")


class DelayingConsumer(ScriptedConsumer):
    capabilities = dataclasses.replace(ScriptedConsumer.capabilities, native_delay=True)


async def test_failed_dead_letter_is_given_back_with_a_delay() -> None:
    delivery = UnwritableDeadLetters("t", envelope("e", {"n": "not a number"}))
    listener = EventListener(DelayingConsumer([delivery]))

    @listener.handler(topic="t", event="e")
    async def handle(event: Event[Body]) -> None:
        raise AssertionError("the body is invalid: never called")

    async with listener:
        await wait_until(lambda: "nack" in delivery.outcomes, what="the nack")
    assert delivery.outcomes == ["dead_letter failed", "nack"]
    assert delivery.nack_delays == [DEAD_LETTER_RETRY_DELAY]


async def test_failed_ack_leaves_the_message_to_the_broker() -> None:
    class UnackableDelivery(ScriptedDelivery):
        async def ack(self) -> None:
            self.outcomes.append("ack failed")
            raise BackendError("channel gone")

    delivery = UnackableDelivery("t", envelope("e", {"n": 1}))
    handled: list[int] = []
    listener = EventListener(ScriptedConsumer([delivery]))

    @listener.handler(topic="t", event="e")
    async def handle(event: Event[Body]) -> None:
        handled.append(event.body.n)

    async with listener:
        await wait_until(lambda: delivery.outcomes == ["ack failed"], what="the ack")
    assert handled == [1]
    assert delivery.outcomes == ["ack failed"]  # no nack, no dead letter: the broker redelivers


class _Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no text for you")


async def test_an_exception_whose_str_raises_is_still_dead_lettered() -> None:
    """The reason is built from the handler's exception: its broken __str__ must not make the
    message go back to the broker again and again."""
    delivery = ScriptedDelivery("t", envelope("e", {"n": 1}))
    listener = EventListener(ScriptedConsumer([delivery]))

    @listener.handler(topic="t", event="e")
    async def handler(event: Event[Body]) -> None:
        raise _Unprintable()

    async with listener:
        await wait_until(lambda: delivery.outcomes != [], what="the message settled")
    assert delivery.outcomes == ["dead_letter"]
    assert delivery.reason is not None
    assert delivery.reason.error_type == "_Unprintable"
    assert "raised RuntimeError" in delivery.reason.error_message


class UnconfirmedRetryLater(ScriptedDelivery):
    """The copy for a delayed retry is not confirmed: the broker may store it all the same
    (a Kafka send still in the client's buffer, a RabbitMQ confirm lost on the way)."""

    __slots__ = ("error",)

    def __init__(self, topic: str, value: bytes, error: Exception) -> None:
        super().__init__(topic, value)
        self.error = error

    async def retry_later(self, delay: float, headers: Mapping[str, str]) -> None:
        self.outcomes.append("retry_later failed")
        raise self.error


def failing_delayed_listener(
    delivery: ScriptedDelivery, attempts: list[int], retry_interval: float
) -> EventListener:
    listener = EventListener(DelayingConsumer([delivery]))

    @listener.handler(
        topic="t", event="e", retries=3, retry_interval=retry_interval, delayed_retries=True
    )
    async def handle(event: Event[Body]) -> None:
        attempts.append(event.attempt)
        raise ValueError("fails")

    return listener


async def test_an_unconfirmed_delayed_retry_is_given_back_not_retried_in_place() -> None:
    delivery = UnconfirmedRetryLater("t", envelope("e", {"n": 1}), EmitTimeoutError("no confirm"))
    attempts: list[int] = []
    async with failing_delayed_listener(delivery, attempts, retry_interval=0.01):
        await wait_until(lambda: "nack" in delivery.outcomes, what="the nack")
    # an attempt in place would run a second time if the copy was stored after all
    assert attempts == [1]
    assert delivery.outcomes == ["retry_later failed", "nack"]


async def test_stopping_during_the_backoff_after_a_failed_hand_back_gives_it_back_at_once() -> None:
    delivery = UnconfirmedRetryLater("t", envelope("e", {"n": 1}), EmitTimeoutError("no confirm"))
    attempts: list[int] = []
    async with failing_delayed_listener(delivery, attempts, retry_interval=600):
        await wait_until(lambda: "retry_later failed" in delivery.outcomes, what="the hand-back")
    assert attempts == [1]
    assert delivery.outcomes == ["retry_later failed", "nack"]


async def test_a_backend_without_retry_later_retries_in_place() -> None:
    delivery = UnconfirmedRetryLater(
        "t", envelope("e", {"n": 1}), NotImplementedError("cannot retry later")
    )
    attempts: list[int] = []
    async with failing_delayed_listener(delivery, attempts, retry_interval=0.01):
        await wait_until(lambda: "dead_letter" in delivery.outcomes, what="the dead letter")
    # nothing was stored: retrying in place runs nothing twice
    assert attempts == [1, 2, 3, 4]
    assert delivery.outcomes == ["retry_later failed", "dead_letter"]
