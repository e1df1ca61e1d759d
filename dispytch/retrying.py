"""The retry layer around a handler: it owns the attempts of one handler on one message, from
the first call to the outcome (handled, retried later, given back, dead-lettered).

The policy (`retry.RetryPolicy`) decides whether and when; this module calls, waits (in place,
in the listener) or hands the message back to the broker (`delayed_retries`), and decides what
a final failure becomes. Stopping cuts every wait short: a message with retries left is given
back to the broker instead of being retried or dead-lettered.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from dispytch.backends.base import Delivery
from dispytch.outcomes import GIVEN_BACK, HANDLED, RETRIED_LATER, Outcome, dead_lettered
from dispytch.reasons import ATTEMPT_HEADER, reason_for
from dispytch.routing.group import HandlerSpec
from dispytch.scheduling import given_back, is_failure

logger = logging.getLogger("dispytch.listener")


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

    async def run(
        self,
        spec: HandlerSpec,
        delivery: Delivery,
        run: Any,
        segments: tuple[Any, ...],
        attempt: int,
        failed: BaseException | None = None,
    ) -> Outcome:
        """Call the handler (attempt `attempt` first) until it succeeds or fails for good.
        `run` is what it is called with (it carries the event's `id` and `type`).

        `failed`: what attempt `attempt` raised, when the caller made that attempt itself (the
        dispatcher makes the first attempt of a message's only handler in place: see
        `Dispatcher.handle`); the loop then starts at deciding what follows the failure. A
        `CancelledError` that is not a failure (the pool is closing) goes on up."""
        if failed is not None and not is_failure(failed):
            raise failed
        delayed: bool | None = None  # decided at the first failure (most attempts succeed)
        error = failed
        while True:
            if error is None:
                try:
                    await spec.attempt(run, segments, attempt)
                    return HANDLED
                except (Exception, asyncio.CancelledError) as exc:
                    if not is_failure(exc):
                        raise
                    error = exc
            if delayed is None:
                delayed = spec.retry.delayed and self.delayed_supported
            outcome, delayed = await self._after_failure(
                spec, delivery, run, attempt, error, delayed
            )
            if outcome is not None:
                return outcome
            attempt += 1
            error = None

    async def _after_failure(
        self,
        spec: HandlerSpec,
        delivery: Delivery,
        run: Any,
        attempt: int,
        error: BaseException,
        delayed: bool,
    ) -> tuple[Outcome | None, bool]:
        """Attempt `attempt` failed with `error`: the outcome when it is not retried here
        (failed for good, handed to a delayed retry, given back), or None once the wait
        before the next attempt is over; and whether a delayed retry may still be tried
        (False once the backend could not take one: in place from then on)."""
        policy = spec.retry
        if not policy.should_retry(error, attempt):
            return await self._failed(spec, delivery, run, attempt, error), delayed
        if delayed and not self.stopping:
            handed = await self._later(spec, delivery, run.id, attempt, error)
            if handed is not None:
                return handed, delayed
            delayed = False
        if self.stopping:  # no "retrying in" line for a retry that will not be made
            logger.warning(
                "handler %r failed on event %s (attempt %d, %s: %s); not retried here: "
                "the listener is stopping",
                spec.name,
                run.id,
                attempt,
                type(error).__name__,
                error,
            )
            return GIVEN_BACK, delayed
        delay = policy.delay(attempt)
        logger.warning(
            "handler %r failed on event %s (attempt %d, %s: %s); retrying %s",
            spec.name,
            run.id,
            attempt,
            type(error).__name__,
            error,
            when(delay),
        )
        if await self.wait(delay):
            return GIVEN_BACK, delayed
        return None, delayed

    async def _failed(
        self, spec: HandlerSpec, delivery: Delivery, run: Any, attempts: int, error: BaseException
    ) -> Outcome:
        """The handler failed for good after `attempts` attempts."""
        if isinstance(error, asyncio.CancelledError) and await self._stopping_now():
            return GIVEN_BACK  # cancelled by the stop around it, not a failure of the event
        topic = delivery.topic
        logger.error(
            "handler %r failed for good on event %s of type %r from %r after %d "
            "attempt(s); dead-lettering it",
            spec.name,
            run.id,
            run.type,
            topic,
            attempts,
            exc_info=error,
        )
        reason = reason_for("handler", error, topic, attempts, spec.name, run.id, run.type)
        return dead_lettered(reason)

    async def _stopping_now(self) -> bool:
        """Whether the listener is stopping, once the tasks cancelled together with this one
        have run: a process that ends (`asyncio.run` returning) cancels every task at once,
        the worker and `listen()` alike, in an order nobody chose."""
        await asyncio.sleep(0)
        return self.stopping

    async def _later(
        self,
        spec: HandlerSpec,
        delivery: Delivery,
        event_id: str,
        attempt: int,
        error: BaseException,
    ) -> Outcome | None:
        """Hand the message back to the broker for a delayed retry: RETRIED_LATER. None when
        the backend does not implement it: the caller retries in place.

        A hand-back that raised may still have been stored (an unconfirmed send can land
        later), so the delivery is never run again here: that could run the retry twice, or
        dead-letter a message whose stored copy retries on. It waits the backoff (cut short by
        stopping) and is given back (GIVEN_BACK: `nack()`); the broker delivers it again at the
        same attempt number. What runs is then at most what the broker holds: the original
        and, if it was stored after all, the copy (an at-least-once duplicate)."""
        delay = spec.retry.delay(attempt)
        headers = {**delivery.headers, ATTEMPT_HEADER: str(attempt)}
        try:
            await delivery.retry_later(delay, headers)
        except NotImplementedError:
            logger.warning("%s cannot retry later; retrying in place", type(delivery).__name__)
            return None
        except Exception:
            logger.exception(
                "could not hand event %s back for a delayed retry (it may have been stored "
                "all the same); giving the message back to the broker in %.2fs",
                event_id,
                delay,
            )
            await self.wait(delay)
            return GIVEN_BACK
        logger.warning(
            "handler %r failed on event %s (attempt %d, %s: %s); retrying %s via the broker",
            spec.name,
            event_id,
            attempt,
            type(error).__name__,
            error,
            when(delay),
        )
        return RETRIED_LATER

    async def give_back(self, delivery: Delivery) -> None:
        """The GIVEN_BACK outcome (stopping with retries left, or a failed hand-back): the
        broker delivers the message again later, and nothing waiting behind it with the same key
        runs in this process."""
        logger.info("a message on %r with retries left goes back to the broker", delivery.topic)
        given_back(delivery)
        try:
            await delivery.nack()
        except (Exception, asyncio.CancelledError) as error:
            if not is_failure(error):
                raise
            logger.exception("could not nack it; the broker will deliver it again")


def when(delay: float) -> str:
    """A backoff as a log line says it: "at once", "in 12 ms", "in 1.50 s"."""
    if delay < 0.0005:
        return "at once"
    if delay < 1:
        return f"in {delay * 1000:.0f} ms"
    return f"in {delay:.2f} s"
