"""What a failure to handle a message is recorded as: the dead-letter reason, and the attempt
number a message carries on from its `dispytch-attempt` header.

Both read values that are not ours (an exception a handler raised, a header a producer wrote):
neither may raise because of them.
"""

from __future__ import annotations

from dispytch.backends.base import ATTEMPT_HEADER, DeadLetterReason, Delivery
from dispytch.routing.group import HandlerSpec


def attempt_of(delivery: Delivery) -> int:
    """The attempt this delivery of a message is: 1, or the one after those its attempt header
    counts (a delayed retry's copy)."""
    previous = delivery.headers.get(ATTEMPT_HEADER)
    return 1 if previous is None else next_attempt(previous)


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
    spec: HandlerSpec | None = None,
    event_id: str | None = None,
    event_type: str | None = None,
) -> DeadLetterReason:
    return DeadLetterReason(
        stage=stage,
        error_type=type(exc).__name__,
        error_message=_message(exc),
        original_topic=topic,
        attempts=attempts,
        handler=None if spec is None else spec.name,
        event_id=event_id,
        event_type=event_type,
    )


def _message(exc: BaseException) -> str:
    try:
        text = str(exc)
    except Exception as broken:  # the handler's exception class has a __str__ that raises
        text = f"(str() of the {type(exc).__name__} raised {type(broken).__name__})"
    notes = getattr(exc, "__notes__", None)  # e.g. a dependency's teardown that failed too
    if isinstance(notes, list) and notes:
        text = "\n".join([text, *map(str, notes)])
    return text
