"""The backend contract: everything a broker integration has to provide.

A backend moves bytes and string headers. It knows nothing about envelopes, event types,
handlers, dependencies, retries or validation: those live in the core and behave the same on
every backend. A backend provides:

- a `Producer` that stores an `OutgoingMessage` on the broker and returns once the broker has
  confirmed it (or raises a `dispytch.errors.ProducerError`);
- a `Consumer` that subscribes to what the listener asks for (`Subscription`s) and hands out
  `Delivery` objects one `receive()` at a time;
- a `Delivery` that the core settles exactly once: `ack()` after every handler finished,
  `nack()` to have the broker deliver it again, or `dead_letter()` to move it, with the reason,
  to the backend's dead-letter destination;
- `Capabilities` that say what the broker can promise (the conformance suite in
  `dispytch.testing` reads them to skip what a backend cannot do).

Errors of the client library are translated into `dispytch.errors` at this boundary.
"""

from __future__ import annotations

import abc
import functools
import re
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dispytch.errors import ConsumerStoppedError


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a backend can promise. Every flag is a promise the conformance suite checks."""

    #: messages survive a consumer restart: unsettled ones are delivered again to the group
    persistent: bool
    #: messages that share a key are delivered in the order they were produced
    ordered_per_key: bool
    #: consumers name a group; every group gets every message, members of a group share them
    consumer_groups: bool
    #: `Delivery.nack()` makes the broker deliver the message again
    redelivers_on_nack: bool
    #: `Delivery.nack(delay=...)` delays that redelivery, and `Delivery.retry_later()` works:
    #: neither blocks the other messages
    native_delay: bool = False
    #: the largest message value the broker accepts, when it has a limit
    max_message_bytes: int | None = None


@dataclass(frozen=True, slots=True)
class Subscription:
    """One topic pattern a listener wants messages from.

    `segments` holds the pattern split on `delimiter`: a literal string, or `None` where the
    pattern has a wildcard (`*` or a `{name}` placeholder). A backend subscribes to the literal
    topic when `is_literal`, and otherwise to whatever its broker offers (a regular expression,
    a binding key with `*`, a subject with `*`); `matches()` tells whether a topic belongs.
    """

    pattern: str
    delimiter: str
    segments: tuple[str | None, ...]

    @classmethod
    def parse(cls, pattern: str, delimiter: str) -> Subscription:
        parts = pattern.split(delimiter) if delimiter else [pattern]
        segments = tuple(None if _is_wildcard(part) else part for part in parts)
        return cls(pattern=pattern, delimiter=delimiter, segments=segments)

    @property
    def is_literal(self) -> bool:
        return None not in self.segments

    def glob(self, wildcard: str = "*", delimiter: str | None = None) -> str:
        """The pattern with every wildcard segment replaced by `wildcard`."""
        joiner = self.delimiter if delimiter is None else delimiter
        return joiner.join(wildcard if part is None else part for part in self.segments)

    def regex(self) -> re.Pattern[str]:
        """A regular expression that fully matches the topics of this subscription."""
        return _compile_subscription(self.segments, self.delimiter)

    def matches(self, topic: str) -> bool:
        if self.is_literal:
            return topic == self.pattern
        return self.regex().fullmatch(topic) is not None


@functools.lru_cache(maxsize=1024)
def _compile_subscription(segments: tuple[str | None, ...], delimiter: str) -> re.Pattern[str]:
    any_segment = "[^" + re.escape(delimiter) + "]+" if delimiter else ".+"
    body = re.escape(delimiter).join(
        any_segment if part is None else re.escape(part) for part in segments
    )
    return re.compile(body)


def _is_wildcard(part: str) -> bool:
    return part == "*" or (len(part) > 2 and part[0] == "{" and part[-1] == "}")


@dataclass(frozen=True, slots=True)
class ListenerNeeds:
    """What a listener will ask of its consumer, told before `Consumer.start()`."""

    #: deliveries the listener holds unsettled at most (its `max_concurrency`)
    max_in_flight: int
    #: some handler retries through the broker (`retry_later`)
    delayed_retries: bool


@dataclass(slots=True)
class OutgoingMessage:
    """A message for a `Producer`: the bytes, where they go, and how."""

    topic: str
    value: bytes
    #: the broker's message key (Kafka key, routing of ordered delivery); None when unkeyed
    key: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    #: a backend-specific options object (for example `KafkaEventConfig`), or None
    config: Any = None
    #: creation time in epoch milliseconds, for brokers that store one
    timestamp_ms: int | None = None


@dataclass(frozen=True, slots=True)
class DeadLetterReason:
    """Why a message goes to the dead-letter destination. Travels as message headers."""

    #: "decode" (not an envelope), "validation" (body or topic segment invalid),
    #: "handler" (a handler failed for good), "unhandled" (no handler, when configured so)
    stage: str
    error_type: str
    error_message: str
    original_topic: str
    attempts: int = 1
    handler: str | None = None
    event_id: str | None = None
    event_type: str | None = None

    def to_headers(self) -> dict[str, str]:
        headers = {
            DLQ_HEADER_PREFIX + "stage": self.stage,
            DLQ_HEADER_PREFIX + "error-type": self.error_type,
            DLQ_HEADER_PREFIX + "error": self.error_message[:MAX_ERROR_HEADER_CHARS],
            DLQ_HEADER_PREFIX + "original-topic": self.original_topic,
            DLQ_HEADER_PREFIX + "attempts": str(self.attempts),
        }
        if self.handler is not None:
            headers[DLQ_HEADER_PREFIX + "handler"] = self.handler
        if self.event_id is not None:
            headers[DLQ_HEADER_PREFIX + "event-id"] = self.event_id
        if self.event_type is not None:
            headers[DLQ_HEADER_PREFIX + "event-type"] = self.event_type
        return headers

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> DeadLetterReason | None:
        """Read a reason back from a dead-lettered message's headers (None if it has none)."""
        prefix = DLQ_HEADER_PREFIX
        if prefix + "stage" not in headers:
            return None
        return cls(
            stage=headers[prefix + "stage"],
            error_type=headers.get(prefix + "error-type", ""),
            error_message=headers.get(prefix + "error", ""),
            original_topic=headers.get(prefix + "original-topic", ""),
            attempts=_attempts(headers.get(prefix + "attempts")),
            handler=headers.get(prefix + "handler"),
            event_id=headers.get(prefix + "event-id"),
            event_type=headers.get(prefix + "event-type"),
        )


def _attempts(text: str | None) -> int:
    """The attempts header as written by `to_headers`; 1 when missing or not a number (a
    letter someone else wrote must still be readable)."""
    try:
        return int(text) if text else 1
    except ValueError:
        return 1


DLQ_HEADER_PREFIX = "dispytch-dlq-"
MAX_ERROR_HEADER_CHARS = 2000
#: the header that carries how many times the message was attempted before (see retries)
ATTEMPT_HEADER = "dispytch-attempt"


class Delivery(abc.ABC):
    """A received message, settled exactly once by the core.

    Subclasses fill the attributes in `__init__`. `ordering_key` is what the listener keeps
    order by: deliveries with equal (non-None) keys are handled one after another, in the order
    `receive()` returned them; `None` means no ordering promise (they may run concurrently).
    """

    __slots__ = ("headers", "key", "metadata", "ordering_key", "topic", "value")

    topic: str
    value: bytes
    key: bytes | None
    headers: Mapping[str, str]
    ordering_key: Hashable | None
    #: broker details for handlers (partition, offset, redelivered, delivery tag, ...)
    metadata: Mapping[str, Any]

    @abc.abstractmethod
    async def ack(self) -> None:
        """The message is done with: the broker must not deliver it again."""

    @abc.abstractmethod
    async def nack(self, *, delay: float | None = None) -> None:
        """Have the broker deliver the message again (after `delay` seconds if given and the
        backend has `native_delay`; otherwise as soon as it can)."""

    async def retry_later(self, delay: float, headers: Mapping[str, str]) -> None:
        """Store a copy of the message with `headers` (replacing its own) that this consumer
        group receives again after `delay` seconds, then settle this delivery. Other groups do
        not see the copy. Backends with `native_delay` implement it; it is how delayed retries
        carry their attempt count (in `ATTEMPT_HEADER`) across restarts."""
        raise NotImplementedError(f"{type(self).__name__} cannot retry later")

    @abc.abstractmethod
    async def dead_letter(self, reason: DeadLetterReason) -> None:
        """Store the original message with the reason's headers in the dead-letter
        destination, then settle it. Must not settle the message if storing failed (raise)."""


class Consumer(abc.ABC):
    """Receives messages for one consumer group."""

    capabilities: Capabilities

    def prepare(self, needs: ListenerNeeds) -> None:
        """Called by the listener before `start()`. Optional: a backend may size its prefetch
        by `needs.max_in_flight`, or skip preparing delayed retries nobody uses."""

    @abc.abstractmethod
    async def start(self, subscriptions: Sequence[Subscription]) -> None:
        """Connect and subscribe. `subscriptions` are the listener's handler topics; a consumer
        that was given explicit topics (or a pre-subscribed client) may ignore them."""

    @abc.abstractmethod
    async def receive(self) -> Delivery:
        """The next message. Waits until one arrives; raises `ConsumerStoppedError` once
        `stop()` was called. Called by one task at a time. Must be safe to cancel: a cancelled
        `receive()` loses no message (it is returned by a later call, or redelivered)."""

    async def receive_many(self, max_messages: int) -> list[Delivery]:
        """At least one and at most `max_messages` messages: those already fetched, else the
        next one to arrive. Backends that fetch in batches override this; the listener uses it,
        so a busy consumer costs one await per batch rather than per message. Same rules as
        `receive()` (raises `ConsumerStoppedError` after `stop()`, safe to cancel)."""
        return [await self.receive()]

    @abc.abstractmethod
    async def stop(self) -> None:
        """Stop fetching: `receive()` raises from now on. Deliveries already handed out can
        still be settled until `close()`."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release the connection. Unsettled deliveries go back to the broker (redelivered)."""

    def __aiter__(self) -> Consumer:
        return self

    async def __anext__(self) -> Delivery:
        try:
            return await self.receive()
        except ConsumerStoppedError:
            raise StopAsyncIteration from None


class Producer(abc.ABC):
    """Stores messages on the broker."""

    async def start(self) -> None:
        """Connect, when the producer owns its client. Called by the emitter on first use."""

    @abc.abstractmethod
    async def send(self, message: OutgoingMessage, *, timeout: float | None = None) -> None:
        """Store one message; return when the broker confirmed it. Raise `EmitTimeoutError`
        when `timeout` seconds passed without confirmation, `ProducerError` on failure."""

    async def send_many(
        self, messages: Sequence[OutgoingMessage], *, timeout: float | None = None
    ) -> None:
        """Store several messages, returning when all are confirmed. Backends batch here.

        Not atomic. When it raises, the error tells which messages the broker did confirm
        (`mark_confirmed`), so that `emit_many` can tell its caller; a message not named there
        counts as unconfirmed. Wait for the confirmations of messages already handed to the
        client (within `timeout`) before raising, so that the list is as complete as it can be.
        """
        for index, message in enumerate(messages):
            try:
                await self.send(message, timeout=timeout)
            except Exception as error:
                mark_confirmed(error, messages[:index])
                raise

    @abc.abstractmethod
    async def close(self) -> None:
        """Flush and release the connection, when the producer owns its client."""


def mark_confirmed(error: Exception, confirmed: Sequence[OutgoingMessage]) -> Exception:
    """Record on the error of a failed `Producer.send_many` the messages the broker confirmed
    (the very objects it was given). Returns `error`."""
    error.confirmed = tuple(confirmed)  # type: ignore[attr-defined]
    return error


def confirmed_messages(error: BaseException) -> tuple[OutgoingMessage, ...]:
    """What `mark_confirmed` recorded on `error` (or on the error it was raised from)."""
    for candidate in (error, error.__cause__):
        found = getattr(candidate, "confirmed", None)
        if found and all(isinstance(item, OutgoingMessage) for item in found):
            return tuple(found)
    return ()
