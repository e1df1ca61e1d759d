"""The backend contract (see `dispytch.backends.base`)."""

from typing import Any

from dispytch.backends.base import (
    Capabilities,
    Consumer,
    Delivery,
    ListenerNeeds,
    OutgoingMessage,
    Producer,
    Subscription,
)

__all__ = [
    "Capabilities",
    "Consumer",
    "Delivery",
    "ListenerNeeds",
    "OutgoingMessage",
    "Producer",
    "Subscription",
]


def __getattr__(name: str) -> Any:
    # DeadLetterReason and ATTEMPT_HEADER moved to dispytch.reasons: importing them from here
    # still works, with a DeprecationWarning
    from dispytch.backends import base

    return base.__getattr__(name)
