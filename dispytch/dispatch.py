"""The path of one delivery, top to bottom: decode, route, run each matching handler under
its retry layer, decide the outcome, settle by it.

Outcomes follow the delivery table in docs/delivery.md:
- every matching handler succeeded: ack;
- not an envelope (or a content type without a codec), a body or segment that fails
  validation: dead-letter at once;
- a handler failed for good (retries exhausted or not retryable): dead-letter with the reason;
- no handler matched: ack and log at debug (or dead-letter, if configured).
A failure to settle is logged and left to the broker, which delivers the message again.

Message middleware wraps the whole path (`_through_middleware`); the retry layer is the core's
and sits outside handler-call middleware, so a middleware that raises is a handler that raises.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from pydantic import BaseModel

from dispytch.backends.base import Delivery
from dispytch.envelope import Envelope
from dispytch.errors import UnknownContentTypeError
from dispytch.middleware.context import MessageContext
from dispytch.one_pass import BodyType, OnePassDecoder
from dispytch.outcomes import (
    GIVEN_BACK,
    HANDLED,
    NO_HANDLER,
    SKIPPED,
    Outcome,
    dead_lettered,
)
from dispytch.reasons import DeadLetterReason, attempt_of, dead_letter_headers, reason_for
from dispytch.received import Bodies, Message, Run, new_event
from dispytch.retrying import Retrier
from dispytch.routing.group import HandlerSpec
from dispytch.routing.router import Match, Router, Segments
from dispytch.scheduling import is_failure
from dispytch.serialization.base import CONTENT_TYPE_HEADER
from dispytch.serialization.codec import JSON_CONTENT_TYPE, Codec, JSONCodec, media_type

logger = logging.getLogger("dispytch.listener")

#: seconds before a message that could not be dead-lettered is delivered again
DEAD_LETTER_RETRY_DELAY = 5.0
_SETTLED_BY_ACK = frozenset({"handled", "no_handler", "skipped"})


class Dispatcher:
    def __init__(
        self,
        router: Router,
        codecs: Sequence[Codec],
        dead_letter_unhandled: bool,
        only_codec: Codec | None = None,
    ) -> None:
        """`codecs`: by content type, the first the default for messages without the header;
        `only_codec`: decodes every message whatever its header (0.10's `deserializer=`)."""
        self.router = router
        #: by exact content type (empty with `only_codec`: `_codec_for` returns it)
        self.codecs: dict[str, Codec] = (
            {} if only_codec else {codec.content_type: codec for codec in codecs}
        )
        # for messages without the header: the codec of the first one's content type (a codec
        # of yours with JSON's content type replaces the built-in one there too)
        self.default_codec = only_codec or self.codecs[codecs[0].content_type]
        self.only_codec = only_codec
        self.dead_letter_unhandled = dead_letter_unhandled
        self.retrier = Retrier()
        #: reads JSON messages in one pass where it may (None: another codec decodes them)
        self.one_pass = (
            OnePassDecoder(router.body_types)
            if only_codec is None
            and type(self.default_codec) is JSONCodec
            and type(self.codecs.get(JSON_CONTENT_TYPE)) is JSONCodec
            else None
        )
        #: the message middleware chain, composed when the listener starts (None: no middleware)
        self.message_chain: Callable[[MessageContext], Awaitable[Any]] | None = None

    def entry(self) -> Callable[[Delivery], Awaitable[None]]:
        """What the listener's workers call for each delivery. Without message middleware,
        `handle` itself: nothing runs around the path (the no-cost case)."""
        if self.message_chain is None:
            return self.handle
        return self._through_middleware

    async def handle(
        self,
        delivery: Delivery,
        context: MessageContext | None = None,
        decided: Outcome | None = None,
    ) -> None:
        """The path of one message: decode, route, run the handlers, then settle by the
        outcome, once. `context`: the message middleware's view of the message (None without
        message middleware); `decided`: an outcome decided around the path (by the message
        middleware layer), to settle without running it."""
        outcome = decided
        if outcome is None:
            try:
                # one pass over the bytes where the topic allows it, else the codec's way:
                # the same envelope, its body validated ahead as `validated_as` (see
                # one_pass.py); None: the body as decoded
                read = None if self.one_pass is None else self.one_pass.decode(delivery)
                if read is not None:
                    envelope, validated_as = read
                else:
                    validated_as = None
                    decoded = self._codec_decode(delivery)
                    envelope = decoded if type(decoded) is tuple else await decoded  # type: ignore[misc]
            except Exception as exc:
                outcome = self._undecodable(delivery, exc)
            else:
                if context is not None:
                    context.event_id, context.event_type = envelope[0], envelope[1]
                matches = self.router.match(delivery.topic, envelope[1])
                attempt = attempt_of(delivery)
                if not matches:
                    outcome = self._unhandled(delivery, envelope)
                elif len(matches) > 1:
                    outcome = await self._run_all(
                        matches, envelope, delivery, attempt, validated_as
                    )
                else:  # the common case: one handler, nothing shared or gathered
                    spec, segments = matches[0]
                    run = self._prepare(
                        spec, segments, envelope, delivery, attempt, validated_as, None
                    )
                    if type(run) is Outcome:
                        outcome = run
                    else:
                        # The first attempt is made here, not in the retry layer: a message
                        # whose handler succeeds (most of them) costs no coroutine for it.
                        try:
                            await spec.attempt(run, segments, attempt)  # type: ignore[arg-type]
                            outcome = HANDLED
                        except (Exception, asyncio.CancelledError) as failed:
                            outcome = await self.retrier.run(
                                spec,
                                delivery,
                                run,
                                segments,  # type: ignore[arg-type]
                                attempt,
                                failed,
                            )
        # settle: the only place that acks, dead-letters or gives back
        if context is not None:
            if context.outcome is not None:
                logger.error(
                    "message on %r was settled already (%s); its later outcome %s is dropped",
                    delivery.topic,
                    context.outcome.kind,
                    outcome.kind,
                )
                return
            context.outcome = outcome
        if outcome.kind in _SETTLED_BY_ACK:
            try:
                if not delivery.ack_now():  # where acking awaits nothing, no coroutine for it
                    await delivery.ack()
            except (Exception, asyncio.CancelledError) as error:  # a client's cancelled future
                if not is_failure(error):
                    raise
                logger.exception(
                    "could not ack a message on %r; the broker will deliver it again",
                    delivery.topic,
                )
        elif outcome.reason is not None:
            await self.dead_letter(delivery, outcome.reason)
        elif outcome is GIVEN_BACK:
            await self.retrier.give_back(delivery)
        # retried_later: the copy's `retry_later` settled the delivery already

    def _codec_decode(self, delivery: Delivery) -> Envelope | Awaitable[Envelope]:
        """The envelope as the message's codec reads it (chosen by its content type)."""
        content_type = delivery.headers.get(CONTENT_TYPE_HEADER)
        codec = (
            self.default_codec
            if content_type is None
            else self.codecs.get(content_type) or self._codec_for(content_type)
        )
        return codec.decode(delivery.value, delivery.headers)

    def _undecodable(self, delivery: Delivery, exc: Exception) -> Outcome:
        logger.error(
            "message on %r is not a valid event envelope (%s: %s); dead-lettering it",
            delivery.topic,
            type(exc).__name__,
            exc,
        )
        return dead_lettered(reason_for("decode", exc, delivery.topic))

    def _codec_for(self, content_type: str) -> Codec:
        """The codec for a content type not found as is (`self.codecs` holds the exact ones)."""
        if self.only_codec is not None:
            return self.only_codec
        codec = self.codecs.get(media_type(content_type))
        if codec is None:
            raise UnknownContentTypeError(f"no codec for content type {content_type[:100]!r}")
        return codec

    async def _run_all(
        self,
        matches: Sequence[Match],
        envelope: Envelope,
        delivery: Delivery,
        attempt: int,
        validated_as: BodyType,
    ) -> Outcome:
        """Run every matching handler concurrently, each to success or final failure; return
        once all of them have finished (a failing one does not cancel the others), so that the
        message is settled once and never while one of its handlers still runs."""
        bodies: Bodies = {validated_as: envelope[2]}  # each body type validated once for all
        results = await asyncio.gather(
            *(
                self._run(match, envelope, delivery, attempt, validated_as, bodies)
                for match in matches
            ),
            return_exceptions=True,
        )
        outcomes: list[Outcome] = []
        for result in results:
            if isinstance(result, BaseException):
                raise result  # escaped the handler's retry layer: the worker's guard nacks
            outcomes.append(result)
        if GIVEN_BACK in outcomes:
            return GIVEN_BACK
        return next((outcome for outcome in outcomes if outcome.reason is not None), HANDLED)

    async def _run(
        self,
        match: Match,
        envelope: Envelope,
        delivery: Delivery,
        attempt: int,
        validated_as: BodyType,
        bodies: Bodies,
    ) -> Outcome:
        """One of several handlers, from its input's validation to its final outcome."""
        spec, segments = match
        run = self._prepare(spec, segments, envelope, delivery, attempt, validated_as, bodies)
        if type(run) is Outcome:
            return run
        return await self.retrier.run(spec, delivery, run, segments, attempt)  # type: ignore[arg-type]

    def _prepare(
        self,
        spec: HandlerSpec,
        segments: Segments,
        envelope: Envelope,
        delivery: Delivery,
        attempt: int,
        validated_as: BodyType,
        bodies: Bodies | None,
    ) -> Run | Outcome:
        """What the handler is called with, once what it asks for is valid; else the outcome
        (dead-lettered: invalid input is not retried). `validated_as`: the body type the
        envelope's body is validated as already (None: the body as decoded); `bodies`: the
        bodies shared with the other handlers of the delivery (None: the only handler).

        A body validated ahead (one-pass decoding) is what every handler of its event type
        wants: one-pass decoding is only used where they all want one body type."""
        if isinstance(segments, Exception):
            return self._invalid(spec, delivery, envelope, attempt, segments, "topic segment")
        plan = spec.plan
        raw = envelope[2]
        try:
            if plan.single_event:
                body_type = plan.body_type
                if body_type is validated_as:  # the common case: nothing left to validate
                    body = raw
                elif bodies is not None and body_type in bodies:
                    body = bodies[body_type]
                else:
                    body = _validated(body_type, raw)
                    if bodies is not None:
                        bodies[body_type] = body
                return new_event(envelope, delivery, body, attempt)
            if bodies is None:
                bodies = {validated_as: raw}
            for body_type in plan.body_types:
                if body_type not in bodies:
                    bodies[body_type] = _validated(body_type, raw)
        except Exception as exc:
            return self._invalid(spec, delivery, envelope, attempt, exc, "body")
        return Message(envelope, delivery, attempt, bodies)

    def _invalid(
        self,
        spec: HandlerSpec,
        delivery: Delivery,
        envelope: Envelope,
        attempt: int,
        exc: Exception,
        what: str,
    ) -> Outcome:
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
        return dead_lettered(
            reason_for("validation", exc, delivery.topic, attempt, spec.name, event_id, event_type)
        )

    def _unhandled(self, delivery: Delivery, envelope: Envelope) -> Outcome:
        event_id, event_type = envelope[0], envelope[1]
        if not self.dead_letter_unhandled:
            logger.debug(
                "no handler for event type %r on %r; acking it", event_type, delivery.topic
            )
            return NO_HANDLER
        logger.warning(
            "no handler for event type %r on %r; dead-lettering it", event_type, delivery.topic
        )
        return dead_lettered(
            DeadLetterReason(
                stage="unhandled",
                error_type="NoHandler",
                error_message=f"no handler for event type {event_type!r}",
                original_topic=delivery.topic,
                event_id=event_id,
                event_type=event_type,
            )
        )

    async def _through_middleware(self, delivery: Delivery) -> None:
        """The path inside the message middleware chain. Whatever a middleware does, the
        message is settled once: a middleware that raises before the message was settled has
        it dead-lettered (stage "middleware"); one that raises after has its error logged;
        one that never calls `call_next` has the message acked ("skipped")."""
        assert self.message_chain is not None
        context = MessageContext(delivery)
        try:
            await self.message_chain(context)
        except (Exception, asyncio.CancelledError) as exc:
            if not is_failure(exc):
                raise
            if context.outcome is not None:
                logger.exception(
                    "a message middleware raised after the message on %r was settled (%s)",
                    delivery.topic,
                    context.outcome.kind,
                )
                return
            logger.error(
                "a message middleware raised before the message on %r was settled (%s: %s); "
                "dead-lettering it",
                delivery.topic,
                type(exc).__name__,
                exc,
                exc_info=exc,
            )
            reason = reason_for(
                "middleware", exc, delivery.topic, 1, None, context.event_id, context.event_type
            )
            await self.handle(delivery, context, dead_lettered(reason))
            return
        if not context._entered:
            logger.debug("a message middleware skipped the message on %r", delivery.topic)
            await self.handle(delivery, context, SKIPPED)

    async def innermost(self, context: MessageContext) -> None:
        """The end of the message middleware chain: the core's path, settling included."""
        if context._entered:
            raise RuntimeError("call_next() was called twice for one message")
        context._entered = True
        await self.handle(context.delivery, context)

    async def dead_letter(self, delivery: Delivery, reason: DeadLetterReason) -> None:
        try:
            await delivery.dead_letter(dead_letter_headers(delivery.headers, reason))
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


def _validated(body_type: type[BaseModel] | None, raw: Any) -> Any:
    return raw if body_type is None else body_type.__pydantic_validator__.validate_python(raw)
