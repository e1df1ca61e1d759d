"""`Delivery.ack_now()`: the listener acks without a coroutine where the delivery can, and
awaits `ack()` where it cannot; other settlements never go through it."""

from __future__ import annotations

from pydantic import BaseModel

from dispytch import Event, EventListener
from tests.core.helpers import ScriptedConsumer, ScriptedDelivery, envelope, wait_until

TOPIC = "acks"


class Body(BaseModel):
    n: int


class AckedNow(ScriptedDelivery):
    """A delivery whose ack is bookkeeping: it says so by acking in `ack_now()`."""

    __slots__ = ()

    def ack_now(self) -> bool:
        self.outcomes.append("ack_now")
        return True


async def run(deliveries: list[ScriptedDelivery]) -> None:
    listener = EventListener(ScriptedConsumer(deliveries))

    @listener.handler(topic=TOPIC, event="counted")
    async def counted(event: Event[Body]) -> None:
        pass

    async with listener:
        await wait_until(lambda: all(d.outcomes for d in deliveries))


async def test_a_delivery_that_acks_now_is_not_awaited_one_that_cannot_is() -> None:
    valid = envelope("counted", {"n": 1})
    now, awaited, unhandled = (
        AckedNow(TOPIC, valid),
        ScriptedDelivery(TOPIC, valid),
        AckedNow(TOPIC, envelope("other", {})),
    )
    await run([now, awaited, unhandled])
    assert now.outcomes == ["ack_now"]
    assert awaited.outcomes == ["ack"]
    assert unhandled.outcomes == ["ack_now"]  # no handler: acked too


async def test_a_dead_letter_is_never_an_ack_now() -> None:
    invalid = AckedNow(TOPIC, envelope("counted", {"n": "many"}))
    await run([invalid])
    assert invalid.outcomes == ["dead_letter"]
    assert invalid.reason is not None
    assert invalid.reason.stage == "validation"
