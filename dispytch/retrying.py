"""The retry layer around a handler call: in place (waiting in the listener) or through the
broker (`delayed_retries`), and what happens to retries when the listener stops.

The policy (`retry.RetryPolicy`) decides whether and when; this module does the waiting and
the handing back. Stopping cuts every wait short: a message with retries left is given back to
the broker instead of being retried or dead-lettered.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from dispytch.backends.base import Delivery
from dispytch.reasons import ATTEMPT_HEADER
from dispytch.routing.group import HandlerSpec
from dispytch.scheduling import given_back, is_failure

logger = logging.getLogger("dispytch.listener")


@dataclass(frozen=True, slots=True)
class FinalFailure:
    """The handler failed for good: the last error and how many attempts were made."""

    error: BaseException
    attempts: int


class GiveBack:
    """The listener stopped while the handler still had retries: give the message back."""


GIVE_BACK = GiveBack()

RetryOutcome = FinalFailure | GiveBack | None


class Retrier:
    def __init__(self) -> None:
        #: the backend can `retry_later` (its capabilities have `native_delay`)
        self.delayed_supported = False
        self._stopping = asyncio.Event()

    def reset(self) -> None:
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    async def wait(self, delay: float) -> bool:
        """Wait `delay` seconds; True if the listener began stopping meanwhile."""
        if self._stopping.is_set():
            return True
        try:
            await asyncio.wait_for(self._stopping.wait(), delay)
        except asyncio.TimeoutError:
            return False
        return True

    async def in_place(
        self,
        spec: HandlerSpec,
        event_id: str,
        attempt: int,
        error: BaseException,
        call_again: Callable[[int], Awaitable[None]],
    ) -> RetryOutcome:
        """Attempt `attempt` failed with `error`: call again (with the next attempt number)
        after each backoff while the policy allows. None once an attempt succeeds."""
        policy = spec.retry
        while policy.should_retry(error, attempt):
            if self.stopping:  # no "retrying in" line for a retry that will not be made
                logger.warning(
                    "handler %r failed on event %s (attempt %d, %s: %s); not retried here: "
                    "the listener is stopping",
                    spec.name,
                    event_id,
                    attempt,
                    type(error).__name__,
                    error,
                )
                return GIVE_BACK
            delay = policy.delay(attempt)
            logger.warning(
                "handler %r failed on event %s (attempt %d, %s: %s); retrying in %.2fs",
                spec.name,
                event_id,
                attempt,
                type(error).__name__,
                error,
                delay,
            )
            if await self.wait(delay):
                return GIVE_BACK
            attempt += 1
            try:
                await call_again(attempt)
                return None
            except (Exception, asyncio.CancelledError) as exc:
                if not is_failure(exc):
                    raise
                error = exc
        return FinalFailure(error, attempt)

    async def later(
        self,
        spec: HandlerSpec,
        delivery: Delivery,
        event_id: str,
        attempt: int,
        error: BaseException,
    ) -> bool:
        """Hand the message back to the broker for a delayed retry. False when that is not
        wanted or possible (not asked for or supported, no retries left, stopping, or the
        backend does not implement it): the caller then retries in place. True once the
        message is dealt with: handed back, or given back after a failed hand-back.

        A hand-back that raised may still have been stored (an unconfirmed send can land
        later), so the delivery is never run again here: that could run the retry twice, or
        dead-letter a message whose stored copy retries on. It waits the backoff (cut short by
        stopping) and is given back with `nack()`; the broker delivers it again at the same
        attempt number. What runs is then at most what the broker holds: the original and,
        if it was stored after all, the copy (an at-least-once duplicate)."""
        policy = spec.retry
        if not (policy.delayed and self.delayed_supported):
            return False
        if not policy.should_retry(error, attempt) or self.stopping:
            return False
        delay = policy.delay(attempt)
        headers = {**delivery.headers, ATTEMPT_HEADER: str(attempt)}
        try:
            await delivery.retry_later(delay, headers)
        except NotImplementedError:
            logger.warning("%s cannot retry later; retrying in place", type(delivery).__name__)
            return False
        except Exception:
            logger.exception(
                "could not hand event %s back for a delayed retry (it may have been stored "
                "all the same); giving the message back to the broker in %.2fs",
                event_id,
                delay,
            )
            await self.wait(delay)
            try:
                await delivery.nack()
            except Exception:
                logger.exception("could not nack it either; the broker will deliver it again")
            return True
        logger.warning(
            "handler %r failed on event %s (attempt %d, %s: %s); retrying in %.2fs via the broker",
            spec.name,
            event_id,
            attempt,
            type(error).__name__,
            error,
            delay,
        )
        return True

    async def give_back(self, delivery: Delivery) -> None:
        """Stopping with retries left: the broker delivers the message again later."""
        logger.info("stopping: a message on %r with retries left goes back", delivery.topic)
        given_back(delivery)
        try:
            await delivery.nack()
        except (Exception, asyncio.CancelledError) as error:
            if not is_failure(error):
                raise
            logger.exception("could not nack it; the broker will deliver it again")
