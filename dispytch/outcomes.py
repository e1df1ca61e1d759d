"""What became of one message: the outcome the core decides, then settles the delivery by.

Decided once per message and acted on once, at the bottom of `Dispatcher.handle`; shown to
message middleware after settling (`MessageContext.outcome`).
"""

from __future__ import annotations

from dispytch.reasons import DeadLetterReason


class Outcome:
    """`kind` is one of: "handled" (acked), "no_handler" (acked, or dead-lettered when the
    listener is configured so: then "dead_lettered"), "skipped" (a message middleware did not
    call `call_next`: acked), "retried_later" (a copy is on the broker for a delayed retry),
    "given_back" (the listener stopped with retries left: nacked), "dead_lettered" (`reason`
    says why)."""

    __slots__ = ("kind", "reason")

    def __init__(self, kind: str, reason: DeadLetterReason | None = None) -> None:
        self.kind = kind
        self.reason = reason

    def __repr__(self) -> str:
        if self.reason is None:
            return f"Outcome({self.kind!r})"
        return f"Outcome({self.kind!r}, stage={self.reason.stage!r})"


HANDLED = Outcome("handled")
NO_HANDLER = Outcome("no_handler")
SKIPPED = Outcome("skipped")
RETRIED_LATER = Outcome("retried_later")
GIVEN_BACK = Outcome("given_back")


def dead_lettered(reason: DeadLetterReason) -> Outcome:
    return Outcome("dead_lettered", reason)
