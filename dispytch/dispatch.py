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
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel
from pydantic_core import from_json

from dispytch.backends.base import ATTEMPT_HEADER, DeadLetterReason, Delivery
from dispytch.envelope import Envelope, read_envelope
from dispytch.events import Event
from dispytch.routing.group import HandlerSpec
from dispytch.routing.router import Match, Router, Segments
from dispytch.serialization.base import CONTENT_TYPE_HEADER, Deserializer

logger = logging.getLogger("dispytch.listener")

_new_event = object.__new__
#: a handler run's outcome when the listener stops before its retries are done
_GIVE_BACK = DeadLetterReason("give-back", "", "", "")


class _Message:
    """One decoded delivery, as one handler run sees it: validated bodies (shared by all the
    handlers of the delivery), the events built from them, and the attempt number."""

    __slots__ = ("attempt", "bodies", "delivery", "envelope", "events")

    def __init__(
        self,
        envelope: Envelope,
        delivery: Delivery,
        attempt: int,
        bodies: dict[type[BaseModel] | None, Any],
    ) -> None:
        self.envelope = envelope
        self.delivery = delivery
        self.attempt = attempt
        #: validated bodies by body type (None: the raw body)
        self.bodies = bodies
        self.events: dict[type[BaseModel] | None, Event[Any]] = {}

    def for_another_handler(self) -> _Message:
        return _Message(self.envelope, self.delivery, self.attempt, self.bodies)

    def event_for(self, body_type: type[BaseModel] | None) -> Event[Any]:
        event = self.events.get(body_type)
        if event is None:
            envelope = self.envelope
            delivery = self.delivery
            # built slot by slot: this runs for every event, and keyword parsing costs
            event = _new_event(Event)
            event.id = envelope.id
            event.type = envelope.type
            event.topic = delivery.topic
            event.body = self.bodies[body_type]
            event.timestamp = envelope.timestamp
            event.headers = delivery.headers
            event.key = delivery.key
            event.attempt = self.attempt
            event.metadata = delivery.metadata
            self.events[body_type] = event
        else:
            event.attempt = self.attempt
        return event


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
        self.delayed_retries_supported = False
        #: set when the listener stops: retries are not waited for any more
        self._stopping = asyncio.Event()

    def reset(self) -> None:
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    async def handle(self, delivery: Delivery) -> None:
        try:
            envelope = read_envelope(self._decode(delivery))
        except Exception as exc:
            logger.error(
                "message on %r is not a valid event envelope (%s: %s); dead-lettering it",
                delivery.topic,
                type(exc).__name__,
                exc,
            )
            await self.dead_letter(delivery, _reason("decode", exc, delivery.topic))
            return
        matches = self.router.match(delivery.topic, envelope.type)
        if not matches:
            await self._unhandled(delivery, envelope)
            return
        previous_attempts = delivery.headers.get(ATTEMPT_HEADER)
        message = _Message(
            envelope,
            delivery,
            1 if previous_attempts is None else _next_attempt(previous_attempts),
            {},
        )
        if len(matches) == 1:
            spec, segments = matches[0]
            failure = self._check(spec, segments, message)
            if failure is None:
                try:
                    await spec.plan.call(message, segments)  # type: ignore[arg-type]
                except Exception as exc:
                    delayed = spec.retry.delayed and self.delayed_retries_supported
                    if delayed and await self._retry_later(spec, message, exc):
                        return
                    failure = await self._retry(spec, segments, message, exc)  # type: ignore[arg-type]
        else:
            results = await asyncio.gather(
                *(self._run(match, message.for_another_handler()) for match in matches)
            )
            if _GIVE_BACK in results:
                failure = _GIVE_BACK
            else:
                failure = next((reason for reason in results if reason is not None), None)
        if failure is _GIVE_BACK:
            await self._give_back(delivery)
            return
        if failure is not None:
            await self.dead_letter(delivery, failure)
            return
        try:
            await delivery.ack()
        except Exception:
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

    async def _run(self, match: Match, message: _Message) -> DeadLetterReason | None:
        """Run one handler until it succeeds or fails for good; the failure's reason, or None."""
        spec, segments = match
        failure = self._check(spec, segments, message)
        if failure is not None:
            return failure
        try:
            await spec.plan.call(message, segments)  # type: ignore[arg-type]
        except Exception as exc:
            return await self._retry(spec, segments, message, exc)  # type: ignore[arg-type]
        return None

    def _check(
        self, spec: HandlerSpec, segments: Segments, message: _Message
    ) -> DeadLetterReason | None:
        """Validate what the handler asks for before calling it: invalid input is not retried."""
        if isinstance(segments, Exception):
            return self._invalid(spec, message, segments, "topic segment")
        bodies = message.bodies
        try:
            for body_type in spec.plan.body_types:
                if body_type not in bodies:
                    raw = message.envelope.body
                    bodies[body_type] = (
                        raw
                        if body_type is None
                        else body_type.__pydantic_validator__.validate_python(raw)
                    )
        except Exception as exc:
            return self._invalid(spec, message, exc, "body")
        return None

    async def _stopped_within(self, delay: float) -> bool:
        """Wait `delay` seconds for a retry; True if the listener began stopping meanwhile."""
        if self._stopping.is_set():
            return True
        try:
            await asyncio.wait_for(self._stopping.wait(), delay)
        except asyncio.TimeoutError:
            return False
        return True

    async def _give_back(self, delivery: Delivery) -> None:
        """Shutting down with retries left: the broker delivers the message again later."""
        logger.info("stopping: a message on %r with retries left goes back", delivery.topic)
        try:
            await delivery.nack()
        except Exception:
            logger.exception("could not nack it; the broker will deliver it again")

    async def _retry_later(self, spec: HandlerSpec, run: _Message, error: Exception) -> bool:
        """Hand the message back to the broker for a delayed retry; False if that is not the
        right outcome (no retries left, or the broker refused: then the caller goes on)."""
        if not spec.retry.should_retry(error, run.attempt) or self.stopping:
            return False
        delivery = run.delivery
        delay = spec.retry.delay(run.attempt)
        headers = {**delivery.headers, ATTEMPT_HEADER: str(run.attempt)}
        try:
            await delivery.retry_later(delay, headers)
        except Exception:
            logger.exception(
                "could not hand event %s back for a delayed retry; retrying in place",
                run.envelope.id,
            )
            return False
        logger.warning(
            "handler %r failed on event %s (attempt %d, %s: %s); retrying in %.2fs via the broker",
            spec.name,
            run.envelope.id,
            run.attempt,
            type(error).__name__,
            error,
            delay,
        )
        return True

    async def _retry(
        self, spec: HandlerSpec, segments: tuple[Any, ...], run: _Message, error: Exception
    ) -> DeadLetterReason | None:
        """The handler failed with `error`: retry per its policy; the final failure, or None."""
        envelope = run.envelope
        policy = spec.retry
        while policy.should_retry(error, run.attempt):
            delay = policy.delay(run.attempt)
            logger.warning(
                "handler %r failed on event %s (attempt %d, %s: %s); retrying in %.2fs",
                spec.name,
                envelope.id,
                run.attempt,
                type(error).__name__,
                error,
                delay,
            )
            if await self._stopped_within(delay):
                return _GIVE_BACK
            run.attempt += 1
            try:
                await spec.plan.call(run, segments)
                return None
            except Exception as exc:
                error = exc
        topic = run.delivery.topic
        logger.error(
            "handler %r failed for good on event %s of type %r from %r after %d "
            "attempt(s); dead-lettering it",
            spec.name,
            envelope.id,
            envelope.type,
            topic,
            run.attempt,
            exc_info=error,
        )
        return _reason("handler", error, topic, run.attempt, spec, envelope.id, envelope.type)

    def _invalid(
        self, spec: HandlerSpec, message: _Message, exc: Exception, what: str
    ) -> DeadLetterReason:
        envelope = message.envelope
        logger.error(
            "event %s of type %r on %r has an invalid %s for handler %r (no retry): %s",
            envelope.id,
            envelope.type,
            message.delivery.topic,
            what,
            spec.name,
            exc,
        )
        return _reason(
            "validation",
            exc,
            message.delivery.topic,
            message.attempt,
            spec,
            envelope.id,
            envelope.type,
        )

    async def _unhandled(self, delivery: Delivery, envelope: Envelope) -> None:
        if self.dead_letter_unhandled:
            logger.warning(
                "no handler for event type %r on %r; dead-lettering it",
                envelope.type,
                delivery.topic,
            )
            reason = DeadLetterReason(
                stage="unhandled",
                error_type="NoHandler",
                error_message=f"no handler for event type {envelope.type!r}",
                original_topic=delivery.topic,
                event_id=envelope.id,
                event_type=envelope.type,
            )
            await self.dead_letter(delivery, reason)
            return
        logger.debug("no handler for event type %r on %r; acking it", envelope.type, delivery.topic)
        await self.ack(delivery)

    async def ack(self, delivery: Delivery) -> None:
        try:
            await delivery.ack()
        except Exception:
            logger.exception(
                "could not ack a message on %r; the broker will deliver it again", delivery.topic
            )

    async def dead_letter(self, delivery: Delivery, reason: DeadLetterReason) -> None:
        try:
            await delivery.dead_letter(reason)
        except Exception:
            logger.exception(
                "could not dead-letter a message on %r; giving it back to the broker",
                delivery.topic,
            )
            try:
                await delivery.nack()
            except Exception:
                logger.exception("could not nack it either; the broker will deliver it again")


def _next_attempt(previous: str) -> int:
    try:
        return max(int(previous), 0) + 1
    except ValueError:
        return 1


def _reason(
    stage: str,
    exc: BaseException,
    topic: str,
    attempts: int = 1,
    spec: HandlerSpec | None = None,
    event_id: str | None = None,
    event_type: str | None = None,
) -> DeadLetterReason:
    return DeadLetterReason(
        stage=stage,
        error_type=type(exc).__name__,
        error_message=str(exc),
        original_topic=topic,
        attempts=attempts,
        handler=None if spec is None else spec.name,
        event_id=event_id,
        event_type=event_type,
    )
