"""The backend contract (see `dispytch.backends.base`)."""

from dispytch.backends.base import (
    ATTEMPT_HEADER,
    Capabilities,
    Consumer,
    DeadLetterReason,
    Delivery,
    ListenerNeeds,
    OutgoingMessage,
    Producer,
    Subscription,
)

__all__ = [
    "ATTEMPT_HEADER",
    "Capabilities",
    "Consumer",
    "DeadLetterReason",
    "Delivery",
    "ListenerNeeds",
    "OutgoingMessage",
    "Producer",
    "Subscription",
]
