"""Helpers for users' tests on the in-memory broker: wait until a consumer group settled
everything, and read the dead letters of a topic. No pytest needed (`dispytch.testing` imports
the conformance suite, which needs pytest, only when it is asked for)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from dispytch.reasons import DeadLetterReason

if TYPE_CHECKING:
    from dispytch.memory import InMemoryBroker

#: the consumer group `dead_letters()` reads with
DEAD_LETTER_READER = "dispytch-testing-dead-letters"


async def settled(broker: InMemoryBroker, group: str, timeout: float = 5.0) -> None:
    """Return once `group` has settled every message it has (`broker.pending(group) == 0`:
    nothing waiting, running, or waiting for a delayed retry). Raises `TimeoutError` with
    the count left after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while broker.pending(group):
        if loop.time() >= deadline:
            raise TimeoutError(
                f"consumer group {group!r} still has {broker.pending(group)} unsettled "
                f"message(s) after {timeout}s"
            )
        await asyncio.sleep(0.005)


async def dead_letters(
    broker: InMemoryBroker, topic: str, count: int, timeout: float = 5.0
) -> list[DeadLetterReason]:
    """The reasons of the next `count` dead letters of `topic` (from its dead-letter topic),
    in the order they were stored. Each dead letter is returned once: a later call returns
    the ones stored since. Raises `TimeoutError` when fewer than `count` arrive within
    `timeout` seconds."""
    reader = broker.consumer(DEAD_LETTER_READER, [broker.dead_letter_topic(topic)])
    await reader.start([])
    reasons: list[DeadLetterReason] = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(reasons) < count:
            left = deadline - loop.time()
            try:
                delivery = await asyncio.wait_for(reader.receive(), max(left, 0.0))
            except asyncio.TimeoutError:
                raise TimeoutError(
                    f"{len(reasons)} of {count} dead letter(s) of {topic!r} arrived within "
                    f"{timeout}s"
                ) from None
            reason = DeadLetterReason.from_headers(delivery.headers)
            await delivery.ack()
            if reason is None:
                raise AssertionError(
                    f"a message on {broker.dead_letter_topic(topic)!r} has no dead-letter reason"
                )
            reasons.append(reason)
    finally:
        await reader.close()
    return reasons
