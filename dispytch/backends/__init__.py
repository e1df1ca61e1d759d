"""The backend contract (see `dispytch.backends.base`)."""

from typing import Any

from dispytch.backends.base import (
    _MOVED,
    Capabilities,
    Consumer,
    Delivery,
    ListenerNeeds,
    OutgoingMessage,
    Producer,
    Subscription,
)
from dispytch.moved_names import moved_attribute

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
    return moved_attribute(__name__, name, _MOVED)
