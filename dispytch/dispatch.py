"""The path of one delivery: decode, route, run handlers under their retry policy, settle.

Outcomes follow the delivery table in docs/delivery.md:
- every matching handler succeeded: ack;
- not an envelope, or a body/segment that fails validation: dead-letter at once;
- a handler failed for good (retries exhausted or not retryable): dead-letter with the reason;
- no handler matched: ack and log at debug (or dead-letter, if configured).
A failure to settle is logged and left to the broker, which delivers the message again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel
from pydantic_core import from_json

from dispytch.backends.base import ATTEMPT_HEADER, DeadLetterReason, Delivery
from dispytch.di.plan import HandlerPlan
from dispytch.envelope import Envelope, read_envelope
from dispytch.events import Event
from dispytch.reasons import next_attempt, reason_for
from dispytch.retrying import GIVE_BACK, FinalFailure, GiveBack, Retrier
from dispytch.routing.group import HandlerSpec
from dispytch.routing.router import Match, Router, Segments
from dispytch.scheduling import is_failure
from dispytch.serialization.base import CONTENT_TYPE_HEADER, Deserializer

logger = logging.getLogger("dispytch.listener")

_new_object = object.__new__
#: seconds before a message that could not be dead-lettered is delivered again
DEAD_LETTER_RETRY_DELAY = 5.0


class _Message:
    """One decoded delivery, as a handler whose Event parameters want several body types sees
    it: validated bodies (shared by all the handlers of the delivery), the events built from
    them, and the attempt number."""

    __slots__ = ("attempt", "bodies", "delivery", "envelope", "events", "id", "type")

    def __init__(
        self,
        envelope: Envelope,
        delivery: Delivery,
        attempt: int,
        bodies: dict[type[BaseModel] | None, Any],
    ) -> None:
        self.envelope = envelope
        self.id, self.type = envelope[0], envelope[1]
        self.delivery = delivery
        self.attempt = attempt
        #: validated bodies by body type (None: the raw body)
        self.bodies = bodies
        self.events: dict[type[BaseModel] | None, Event[Any]] = {}

    def event_for(self, body_type: type[BaseModel] | None) -> Event[Any]:
        event = self.events.get(body_type)
        if event is None:
            event = self.events[body_type] = _new_event(
                self.envelope, self.delivery, self.bodies[body_type], self.attempt
            )
        else:
            event.attempt = self.attempt
        return event


#: what one handler run is called with: its Event (plans with `single_event`), or a _Message
#: that builds the Event for each body type
_Run = Event[Any] | _Message


def _new_event(envelope: Envelope, delivery: Delivery, body: Any, attempt: int) -> Event[Any]:
    # built slot by slot: this runs for every event, and keyword parsing costs
    event: Event[Any] = _new_object(Event)
    event.id, event.type, _, event.timestamp = envelope
    event.topic = delivery.topic
    event.body = body
    event.headers = delivery.headers
    event.key = delivery.key
    event.attempt = attempt
    event.metadata = delivery.metadata
    return event


def _start(plan: HandlerPlan, run: _Run, segments: tuple[Any, ...]) -> Awaitable[None]:
    if type(run) is Event:
        return plan.start(run, segments)
    return plan.start(None, segments, run)  # type: ignore[arg-type]


class Dispatcher:
    def __init__(
        self,
        router: Router,
        deserializer: Deserializer | None,
        deserializers_by_content_type: Mapping[str, Deserializer],
        dead_letter_unhandled: bool,
    ) -> None:
        self.router = router
        self.deserializer = deserializer
        self.deserializers_by_content_type = deserializers_by_content_type
        self.dead_letter_unhandled = dead_letter_unhandled
        self.retrier = Retrier()

    async def handle(self, delivery: Delivery) -> None:
        try:
            if self.deserializer is None and CONTENT_TYPE_HEADER not in delivery.headers:
                payload = from_json(delivery.value)  # the default, without a call to _decode
            else:
                payload = self._decode(delivery)
            envelope = read_envelope(payload)
        except Exception as exc:
            logger.error(
                "message on %r is not a valid event envelope (%s: %s); dead-lettering it",
                delivery.topic,
                type(exc).__name__,
                exc,
            )
            await self.dead_letter(delivery, reason_for("decode", exc, delivery.topic))
            return
        matches = self.router.match(delivery.topic, envelope[1])
        if not matches:
            await self._unhandled(delivery, envelope)
            return
        previous_attempts = delivery.headers.get(ATTEMPT_HEADER)
        attempt = 1 if previous_attempts is None else next_attempt(previous_attempts)
        failure: DeadLetterReason | GiveBack | None
        if len(matches) == 1:
            # one handler, the common case: run here rather than in a coroutine of its own
            spec, segments = matches[0]
            plan = spec.plan
            run: _Run | DeadLetterReason
            if plan.single_event and type(segments) is tuple:
                # the commonest case, inlined: build the handler's one Event at once
                body_type = plan.body_type
                raw = envelope[2]
                try:
                    body = (
                        raw
                        if body_type is None
                        else body_type.__pydantic_validator__.validate_python(raw)
                    )
                except Exception as exc:
                    run = self._invalid(spec, delivery, envelope, attempt, exc, "body")
                else:
                    run = _new_event(envelope, delivery, body, attempt)
            else:
                run = self._prepare(spec, segments, envelope, delivery, attempt, None)
            if type(run) is DeadLetterReason:
                failure = run
            else:
                try:
                    await _start(plan, run, segments)  # type: ignore[arg-type]
                    failure = None
                except (Exception, asyncio.CancelledError) as exc:
                    if not is_failure(exc):
                        raise
                    if await self.retrier.later(spec, delivery, envelope[0], attempt, exc):
                        return
                    failure = await self._retry(
                        spec,
                        segments,  # type: ignore[arg-type]
                        delivery,
                        run,  # type: ignore[arg-type]
                        attempt,
                        exc,
                    )
        else:
            failure = await self._run_all(matches, envelope, delivery, attempt)
        if isinstance(failure, GiveBack):
            await self.retrier.give_back(delivery)
            return
        if failure is not None:
            await self.dead_letter(delivery, failure)
            return
        try:  # `self.ack(delivery)`, inlined: one coroutine less for every message
            await delivery.ack()
        except (Exception, asyncio.CancelledError) as error:  # a client's cancelled future
            if not is_failure(error):
                raise
            logger.exception(
                "could not ack a message on %r; the broker will deliver it again", delivery.topic
            )

    def _decode(self, delivery: Delivery) -> Any:
        if self.deserializer is not None:
            return self.deserializer.deserialize(delivery.value)
        content_type = delivery.headers.get(CONTENT_TYPE_HEADER)
        if content_type is None or content_type == "application/json":
            return from_json(delivery.value)
        chosen = self.deserializers_by_content_type.get(content_type)
        if chosen is None:
            return from_json(delivery.value)
        return chosen.deserialize(delivery.value)

    async def _run_all(
        self, matches: Sequence[Match], envelope: Envelope, delivery: Delivery, attempt: int
    ) -> DeadLetterReason | GiveBack | None:
        """Run every matching handler concurrently, each to success or final failure; return
        once all of them have finished (a failing one does not cancel the others), so that the
        message is settled once and never while one of its handlers still runs."""
        bodies: dict[type[BaseModel] | None, Any] = {}  # validated once for all handlers
        results = await asyncio.gather(
            *(self._run(match, envelope, delivery, attempt, bodies) for match in matches),
            return_exceptions=True,
        )
        outcomes: list[DeadLetterReason | GiveBack | None] = []
        for result in results:
            if isinstance(result, BaseException):
                raise result  # escaped the handler's retry layer: the worker's guard nacks
            outcomes.append(result)
        if GIVE_BACK in outcomes:
            return GIVE_BACK
        return next((outcome for outcome in outcomes if outcome is not None), None)

    async def _run(
        self,
        match: Match,
        envelope: Envelope,
        delivery: Delivery,
        attempt: int,
        bodies: dict[type[BaseModel] | None, Any],
    ) -> DeadLetterReason | GiveBack | None:
        """Run one handler until it succeeds or fails for good; the failure's reason, or None."""
        spec, segments = match
        run = self._prepare(spec, segments, envelope, delivery, attempt, bodies)
        if type(run) is DeadLetterReason:
            return run
        try:
            await _start(spec.plan, run, segments)  # type: ignore[arg-type]
        except (Exception, asyncio.CancelledError) as exc:
            if not is_failure(exc):
                raise
            return await self._retry(spec, segments, delivery, run, attempt, exc)  # type: ignore[arg-type]
        return None

    def _prepare(
        self,
        spec: HandlerSpec,
        segments: Segments,
        envelope: Envelope,
        delivery: Delivery,
        attempt: int,
        bodies: dict[type[BaseModel] | None, Any] | None,
    ) -> _Run | DeadLetterReason:
        """What the handler is called with, once what it asks for is valid; else the reason to
        dead-letter the message (invalid input is not retried). `bodies`: validated bodies
        shared with the other handlers of the delivery (None: this is the only one)."""
        if isinstance(segments, Exception):
            return self._invalid(spec, delivery, envelope, attempt, segments, "topic segment")
        plan = spec.plan
        raw = envelope[2]
        if bodies is None:
            bodies = {}
        try:
            for body_type in plan.body_types:
                if body_type not in bodies:
                    bodies[body_type] = (
                        raw
                        if body_type is None
                        else body_type.__pydantic_validator__.validate_python(raw)
                    )
        except Exception as exc:
            return self._invalid(spec, delivery, envelope, attempt, exc, "body")
        if plan.single_event:
            return _new_event(envelope, delivery, bodies.get(plan.body_type, raw), attempt)
        return _Message(envelope, delivery, attempt, bodies)

    async def _retry(
        self,
        spec: HandlerSpec,
        segments: tuple[Any, ...],
        delivery: Delivery,
        run: _Run,
        attempt: int,
        error: BaseException,
    ) -> DeadLetterReason | GiveBack | None:
        """Attempt `attempt` failed with `error`: retry in place per the handler's policy; the
        final failure's reason, `GIVE_BACK` when stopping, or None once an attempt succeeds."""

        def call_again(next_attempt: int) -> Awaitable[None]:
            run.attempt = next_attempt
            return _start(spec.plan, run, segments)

        outcome = await self.retrier.in_place(spec, run.id, attempt, error, call_again)
        if not isinstance(outcome, FinalFailure):
            return outcome
        if isinstance(outcome.error, asyncio.CancelledError) and await self._stopping_now():
            return GIVE_BACK  # cancelled by the stop around it, not a failure of the event
        topic = delivery.topic
        logger.error(
            "handler %r failed for good on event %s of type %r from %r after %d "
            "attempt(s); dead-lettering it",
            spec.name,
            run.id,
            run.type,
            topic,
            outcome.attempts,
            exc_info=outcome.error,
        )
        return reason_for("handler", outcome.error, topic, outcome.attempts, spec, run.id, run.type)

    async def _stopping_now(self) -> bool:
        """Whether the listener is stopping, once the tasks cancelled together with this one
        have run: a process that ends (`asyncio.run` returning) cancels every task at once,
        the worker and `listen()` alike, in an order nobody chose."""
        await asyncio.sleep(0)
        return self.retrier.stopping

    def _invalid(
        self,
        spec: HandlerSpec,
        delivery: Delivery,
        envelope: Envelope,
        attempt: int,
        exc: Exception,
        what: str,
    ) -> DeadLetterReason:
        event_id, event_type = envelope[0], envelope[1]
        logger.error(
            "event %s of type %r on %r has an invalid %s for handler %r (no retry): %s",
            event_id,
            event_type,
            delivery.topic,
            what,
            spec.name,
            exc,
        )
        return reason_for("validation", exc, delivery.topic, attempt, spec, event_id, event_type)

    async def _unhandled(self, delivery: Delivery, envelope: Envelope) -> None:
        event_id, event_type = envelope[0], envelope[1]
        if self.dead_letter_unhandled:
            logger.warning(
                "no handler for event type %r on %r; dead-lettering it",
                event_type,
                delivery.topic,
            )
            reason = DeadLetterReason(
                stage="unhandled",
                error_type="NoHandler",
                error_message=f"no handler for event type {event_type!r}",
                original_topic=delivery.topic,
                event_id=event_id,
                event_type=event_type,
            )
            await self.dead_letter(delivery, reason)
            return
        logger.debug("no handler for event type %r on %r; acking it", event_type, delivery.topic)
        await self.ack(delivery)

    async def ack(self, delivery: Delivery) -> None:
        try:
            await delivery.ack()
        except (Exception, asyncio.CancelledError) as error:  # a client's cancelled future
            if not is_failure(error):
                raise
            logger.exception(
                "could not ack a message on %r; the broker will deliver it again", delivery.topic
            )

    async def dead_letter(self, delivery: Delivery, reason: DeadLetterReason) -> None:
        try:
            await delivery.dead_letter(reason)
        except (Exception, asyncio.CancelledError) as error:  # a client's cancelled future
            if not is_failure(error):
                raise
            logger.exception(
                "could not dead-letter a message on %r; giving it back to the broker in %.0fs",
                delivery.topic,
                DEAD_LETTER_RETRY_DELAY,
            )
            # not at once: the message would come straight back, fail, and loop while the
            # dead-letter destination is unavailable
            try:
                if self.retrier.delayed_supported:
                    await delivery.nack(delay=DEAD_LETTER_RETRY_DELAY)
                else:
                    await self.retrier.wait(DEAD_LETTER_RETRY_DELAY)
                    await delivery.nack()
            except (Exception, asyncio.CancelledError) as error:  # a client's cancelled future
                if not is_failure(error):
                    raise
                logger.exception("could not nack it either; the broker will deliver it again")
