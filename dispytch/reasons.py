"""What a failure to handle a message is recorded as, on the wire: the dead-letter reason and
its `dispytch-dlq-*` headers, and the attempt number a message carries (`dispytch-attempt`, or
the broker's own delivery count).

These formats belong to the core: backends store and return headers, they never build or read
these. Everything here reads values that are not ours (an exception a handler raised, a header
a producer wrote, a count a broker kept): none of it may raise because of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dispytch.backends.base import Delivery

DLQ_HEADER_PREFIX = "dispytch-dlq-"
MAX_ERROR_HEADER_CHARS = 2000
#: the header that carries how many times the message was attempted before (see retries)
ATTEMPT_HEADER = "dispytch-attempt"


@dataclass(frozen=True, slots=True)
class DeadLetterReason:
    """Why a message goes to the dead-letter destination. Travels as message headers."""

    #: "decode" (not an envelope), "validation" (body or topic segment invalid),
    #: "handler" (a handler failed for good), "unhandled" (no handler, when configured so),
    #: "middleware" (a message middleware raised before the message was settled)
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


def dead_letter_headers(original: Mapping[str, str], reason: DeadLetterReason) -> dict[str, str]:
    """The headers a dead letter is stored with: the message's own, without the reason headers
    of an earlier dead-lettering (a replayed letter that failed again), plus `reason`'s."""
    headers = {
        name: value for name, value in original.items() if not name.startswith(DLQ_HEADER_PREFIX)
    }
    headers.update(reason.to_headers())
    return headers


def attempt_of(delivery: Delivery) -> int:
    """The attempt this delivery is: one after those its `dispytch-attempt` header counts;
    without the header, the broker's delivery count when it keeps one; else 1."""
    previous = delivery.headers.get(ATTEMPT_HEADER)
    if previous is not None:
        return next_attempt(previous)
    count = delivery.delivery_count
    return count if type(count) is int and count > 1 else 1


def next_attempt(previous: str) -> int:
    """The attempt after the `previous` ones the header counts (1 when it is not a number)."""
    try:
        return max(int(previous), 0) + 1
    except ValueError:
        return 1


def reason_for(
    stage: str,
    exc: BaseException,
    topic: str,
    attempts: int = 1,
    handler: str | None = None,
    event_id: str | None = None,
    event_type: str | None = None,
) -> DeadLetterReason:
    return DeadLetterReason(
        stage=stage,
        error_type=type(exc).__name__,
        error_message=_message(exc),
        original_topic=topic,
        attempts=attempts,
        handler=handler,
        event_id=event_id,
        event_type=event_type,
    )


def _attempts(text: str | None) -> int:
    """The attempts header as written by `to_headers`; 1 when missing or not a number (a
    letter someone else wrote must still be readable)."""
    try:
        return int(text) if text else 1
    except ValueError:
        return 1


def _message(exc: BaseException) -> str:
    try:
        text = str(exc)
    except Exception as broken:  # the handler's exception class has a __str__ that raises
        text = f"(str() of the {type(exc).__name__} raised {type(broken).__name__})"
    notes = getattr(exc, "__notes__", None)  # e.g. a dependency's teardown that failed too
    if isinstance(notes, list) and notes:
        text = "\n".join([text, *map(str, notes)])
    return text
