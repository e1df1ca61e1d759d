"""The backend contract (see `dispytch.backends.base`)."""

import importlib
import warnings
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
    home = _MOVED.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(
        f"{__name__}.{name} moved to {home}.{name}; import it from there",
        DeprecationWarning,
        stacklevel=2,
    )
    return getattr(importlib.import_module(home), name)
