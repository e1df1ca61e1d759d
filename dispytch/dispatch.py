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

from dispytch.backends.base import ATTEMPT_HEADER, DeadLetterReason, Delivery
from dispytch.envelope import Envelope, read_envelope
from dispytch.events import Event
from dispytch.routing.group import HandlerSpec
from dispytch.routing.router import Match, Router
from dispytch.serialization.base import CONTENT_TYPE_HEADER, Deserializer

logger = logging.getLogger("dispytch.listener")


class _Message:
    """One decoded delivery; validates each requested body type once."""

    __slots__ = ("bodies", "delivery", "envelope", "first_attempt")

    def __init__(self, envelope: Envelope, delivery: Delivery, first_attempt: int) -> None:
        self.envelope = envelope
        self.delivery = delivery
        self.first_attempt = first_attempt
        self.bodies: dict[type[BaseModel] | None, Any] = {}

    def validate(self, body_type: type[BaseModel] | None) -> None:
        if body_type not in self.bodies:
            raw = self.envelope.body
            self.bodies[body_type] = (
                raw if body_type is None else body_type.__pydantic_validator__.validate_python(raw)
            )


class _HandlerRun:
    """The events one handler (and its dependencies) receive; `attempt` moves on retries."""

    __slots__ = ("attempt", "events", "message")

    def __init__(self, message: _Message) -> None:
        self.message = message
        self.attempt = message.first_attempt
        self.events: dict[type[BaseModel] | None, Event[Any]] = {}

    def event_for(self, body_type: type[BaseModel] | None) -> Event[Any]:
        event = self.events.get(body_type)
        if event is None:
            message = self.message
            envelope = message.envelope
            delivery = message.delivery
            event = Event(
                id=envelope.id,
                type=envelope.type,
                topic=delivery.topic,
                body=message.bodies[body_type],
                timestamp=envelope.timestamp,
                headers=delivery.headers,
                key=delivery.key,
                attempt=self.attempt,
                metadata=delivery.metadata,
            )
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
        #: set when the listener stops: retries are not waited for any more
        self.stopping = False

    async def handle(self, delivery: Delivery) -> None:
        try:
            envelope = read_envelope(self._deserializer_for(delivery).deserialize(delivery.value))
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
        message = _Message(envelope, delivery, _first_attempt(delivery))
        if len(matches) == 1:
            failure = await self._run(matches[0], message)
        else:
            results = await asyncio.gather(*(self._run(match, message) for match in matches))
            failure = next((reason for reason in results if reason is not None), None)
        if failure is None:
            await self.ack(delivery)
        else:
            await self.dead_letter(delivery, failure)

    def _deserializer_for(self, delivery: Delivery) -> Deserializer:
        if self.deserializer is not None:
            return self.deserializer
        content_type = delivery.headers.get(CONTENT_TYPE_HEADER)
        return self.deserializers_by_content_type.get(
            content_type or "", self.deserializers_by_content_type["application/json"]
        )

    async def _run(self, match: Match, message: _Message) -> DeadLetterReason | None:
        """Run one handler until it succeeds or fails for good; the failure's reason, or None."""
        spec, segments = match
        envelope = message.envelope
        topic = message.delivery.topic
        if isinstance(segments, Exception):
            return self._invalid(spec, message, segments, "topic segment")
        try:
            for body_type in spec.plan.body_types:
                message.validate(body_type)
        except Exception as exc:
            return self._invalid(spec, message, exc, "body")
        run = _HandlerRun(message)
        policy = spec.retry
        while True:
            try:
                await spec.plan.call(run, segments)
                return None
            except Exception as exc:
                if policy.should_retry(exc, run.attempt) and not self.stopping:
                    delay = policy.delay(run.attempt)
                    logger.warning(
                        "handler %r failed on event %s (attempt %d, %s: %s); retrying in %.2fs",
                        spec.name,
                        envelope.id,
                        run.attempt,
                        type(exc).__name__,
                        exc,
                        delay,
                    )
                    await asyncio.sleep(delay)
                    run.attempt += 1
                    continue
                logger.error(
                    "handler %r failed for good on event %s of type %r from %r after %d "
                    "attempt(s); dead-lettering it",
                    spec.name,
                    envelope.id,
                    envelope.type,
                    topic,
                    run.attempt,
                    exc_info=exc,
                )
                return _reason("handler", exc, topic, run.attempt, spec, envelope.id, envelope.type)

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
            message.first_attempt,
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


def _first_attempt(delivery: Delivery) -> int:
    previous = delivery.headers.get(ATTEMPT_HEADER)
    if previous is None:
        return 1
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
