"""The exceptions Dispytch raises. Backends translate their client's errors into these."""

from __future__ import annotations

from typing import Any


class DispytchError(Exception):
    """Base class of every exception Dispytch raises on purpose."""


class HandlerRegistrationError(DispytchError, TypeError):
    """A handler (or one of its dependencies) cannot be called the way it is declared.

    Raised when the handler is registered, never when the first event arrives.
    """


class DependencyCycleError(HandlerRegistrationError):
    """Dependencies depend on each other in a circle."""


class EnvelopeError(DispytchError, ValueError):
    """Received bytes are not a valid event envelope (cannot be decoded or lack a field)."""


class UnknownContentTypeError(EnvelopeError):
    """A message's `content-type` header names a format the listener has no codec for."""


class BackendError(DispytchError):
    """A broker or its client failed. Backends raise this (or a subclass) at their boundary."""


class BrokerUnavailableError(BackendError, ConnectionError):
    """The broker cannot be reached."""


class BrokerSecurityError(BackendError):
    """The broker answered, but the secure connection failed: it refused the credentials, or
    the TLS handshake failed. Retrying with the same settings fails the same way, so this is
    not a `BrokerUnavailableError`. The message names the cause; it never holds a password.
    """

    #: the cause in a few words: "authentication failed", "certificate not trusted", ...
    reason: str = "secure connection failed"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class BrokerAuthenticationError(BrokerSecurityError):
    """The broker refused the user name and password (or other credentials)."""

    reason = "authentication failed"


class BrokerTLSError(BrokerSecurityError):
    """The TLS handshake failed. `reason` is "certificate not trusted" (not signed by a CA the
    client trusts), "hostname mismatch" (the certificate is not valid for the address the
    client connected to), "certificate expired", "client certificate refused" (the broker did
    not accept the client's certificate) or "TLS handshake failed" (anything else)."""

    reason = "TLS handshake failed"


class ConsumerStoppedError(BackendError):
    """`Consumer.receive()` was called on (or was waiting in) a consumer that stopped."""


class MissingExtraError(DispytchError, ImportError):
    """A backend's client library is not installed; the message names the extra to install."""


class EmitError(DispytchError):
    """An event could not be emitted. Nothing was sent, or the broker did not confirm it.

    Raised by `EventEmitter.emit_many`, it says what became of each event, in the order given:
    `confirmed` holds the events the broker confirmed (stored), `unconfirmed` all the others:
    not sent, refused, or sent without a confirmation in time (those may have been stored all
    the same, so emitting them again may store them twice).
    """

    confirmed: tuple[Any, ...] = ()
    unconfirmed: tuple[Any, ...] = ()


class EventSerializationError(EmitError, ValueError):
    """The event (its body or its topic) cannot be turned into a message."""


class TopicFormatError(EventSerializationError, KeyError):
    """`__topic__` names a `{field}` that the event does not have, or the field's value cannot
    be one segment of the topic (empty, or containing the topic delimiter)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class InvalidTopicNameError(TopicFormatError):
    """The backend cannot carry this topic name (Kafka: a character other than a-z A-Z 0-9 . _ -,
    or longer than 249). Raised before anything is sent or subscribed; the message names the
    rule. See docs/backends/index.md for each backend's rules."""


class ProducerError(EmitError, BackendError):
    """The producer or the broker refused or failed to store the message."""


class ProducerUnavailableError(ProducerError, BrokerUnavailableError):
    """The broker cannot be reached to emit (an `EmitError` and a `BrokerUnavailableError`)."""


class MessageTooLargeError(ProducerError):
    """The message is larger than the broker accepts."""


class UnroutableMessageError(ProducerError):
    """The broker accepted the message but no queue or subscriber can receive it."""


class EmitTimeoutError(ProducerError, TimeoutError):
    """The broker did not confirm the message within the timeout."""


class NotEnoughReplicasError(EmitTimeoutError):
    """The broker did not confirm the message because too few replicas of its partition are in
    sync (Kafka: fewer than the topic's `min.insync.replicas`, with `acks="all"`). The client
    may go on trying after this is raised: the message may still be stored once enough replicas
    are back."""


def missing_extra(extra: str, package: str) -> MissingExtraError:
    return MissingExtraError(
        f"the {extra} backend needs the '{package}' package: pip install 'dispytch[{extra}]'"
    )
