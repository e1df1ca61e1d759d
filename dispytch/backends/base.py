"""The backend contract: everything a broker integration has to provide.

A backend moves bytes and string headers. It knows nothing about envelopes, event types,
handlers, dependencies, retries or validation: those live in the core and behave the same on
every backend. A backend provides:

- a `Producer` that stores an `OutgoingMessage` on the broker and returns once the broker has
  confirmed it (or raises a `dispytch.errors.ProducerError`);
- a `Consumer` that subscribes to what the listener asks for (`Subscription`s) and hands out
  `Delivery` objects one `receive()` at a time;
- a `Delivery` that the core settles exactly once: `ack()` after every handler finished,
  `nack()` to have the broker deliver it again, or `dead_letter(headers)` to store its bytes,
  with the headers the core chose, in the backend's dead-letter destination;
- `Capabilities` that say what the broker can promise (the conformance suite in
  `dispytch.testing` reads them to skip what a backend cannot do).

Errors of the client library are translated into `dispytch.errors` at this boundary. Formats
(the dead-letter reason headers, the attempt header) belong to the core, in `dispytch.reasons`;
topic patterns to `dispytch.routing.patterns`.
"""

from __future__ import annotations

import abc
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dispytch.errors import ConsumerStoppedError
from dispytch.moved_names import moved_attribute
from dispytch.routing.patterns import Subscription

__all__ = [
    "Capabilities",
    "Consumer",
    "Delivery",
    "ListenerNeeds",
    "OutgoingMessage",
    "Producer",
    "Subscription",
    "confirmed_messages",
    "mark_confirmed",
]


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
    #: the `topic_delimiter` a listener uses when it is given none (Kafka: "."; ":" can be in
    #: no Kafka topic name)
    topic_delimiter: str = ":"


@dataclass(frozen=True, slots=True)
class ListenerNeeds:
    """What a listener will ask of its consumer, told before `Consumer.start()`."""

    #: deliveries the listener holds unsettled at most (its `max_concurrency`)
    max_in_flight: int
    #: some handler retries through the broker (`retry_later`)
    delayed_retries: bool
    #: seconds the listener lets running handlers finish once it stops fetching (its
    #: `shutdown_grace`); None when not said
    shutdown_grace: float | None = None


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

    @property
    def delivery_count(self) -> int | None:
        """How many times the broker has delivered this message, this delivery included (1:
        the first time), for brokers that count (NATS JetStream, Redis Streams, RabbitMQ
        quorum queues); None when it does not. The core takes it as the attempt number when
        the message carries none."""
        return None

    @abc.abstractmethod
    async def ack(self) -> None:
        """The message is done with: the broker must not deliver it again."""

    def ack_now(self) -> bool:
        """Optional: do what `ack()` does without awaiting anything, when this delivery can
        (its ack is bookkeeping in this process: an offset to commit later, a message to
        forget); True if it did. The listener tries it before `ack()`, so that settling costs
        no coroutine per message; False (the default) makes it await `ack()`."""
        return False

    @abc.abstractmethod
    async def nack(self, *, delay: float | None = None) -> None:
        """Have the broker deliver the message again (after `delay` seconds if given and the
        backend has `native_delay`; otherwise as soon as it can)."""

    async def retry_later(self, delay: float, headers: Mapping[str, str]) -> None:
        """Store a copy of the message with `headers` (replacing its own) that this consumer
        group receives again after `delay` seconds, then settle this delivery. Other groups do
        not see the copy. Backends with `native_delay` implement it; it is how delayed retries
        carry their attempt count across restarts."""
        raise NotImplementedError(f"{type(self).__name__} cannot retry later")

    @abc.abstractmethod
    async def dead_letter(self, headers: Mapping[str, str]) -> None:
        """Store the message's value and key with `headers` (replacing its own: the core
        passes the original headers plus the reason's) in the dead-letter destination, then
        settle it. Must not settle the message if storing failed (raise)."""


class Consumer(abc.ABC):
    """Receives messages for one consumer group."""

    capabilities: Capabilities

    def describe(self) -> str:
        """One line saying what this consumer is: its backend, its consumer group and where it
        connects, with credentials masked (`dispytch.credentials`). The listener logs it at
        start; backends override it."""
        return type(self).__name__

    def __repr__(self) -> str:
        return f"<{self.describe()}>"

    def prepare(self, needs: ListenerNeeds) -> None:
        """Called by the listener before `start()`. Optional: a backend may size its prefetch
        by `needs.max_in_flight`, or skip preparing delayed retries nobody uses."""

    def check_subscription(self, subscription: Subscription) -> None:
        """Optional: raise `InvalidTopicNameError` (naming the rule) when no topic this
        backend can carry matches `subscription`. Called when a handler is registered, and
        again by `start()`, so that a name the broker would refuse fails at once."""

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

    async def check_connection(self, timeout: float) -> bool | None:
        """Optional: whether the connection to the broker is up now (readiness checks ask, a
        few times a minute). Answer within `timeout` seconds, cheaply; never raise. None: this
        backend cannot tell."""
        return None

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

    def check_topic(self, topic: str) -> None:
        """Optional: raise `InvalidTopicNameError` (naming the rule) when this backend cannot
        carry `topic`. `send` and `send_many` call it before sending anything."""

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


#: names that lived here before they moved to the core (importing them warns)
_MOVED = {
    "DeadLetterReason": "dispytch.reasons",
    "ATTEMPT_HEADER": "dispytch.reasons",
    "DLQ_HEADER_PREFIX": "dispytch.reasons",
    "MAX_ERROR_HEADER_CHARS": "dispytch.reasons",
}


def __getattr__(name: str) -> Any:
    return moved_attribute(__name__, name, _MOVED)
