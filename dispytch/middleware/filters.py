"""`skip_unless`: handle only the events a predicate accepts; the others are acked unhandled."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from dispytch.events import Event
from dispytch.middleware.context import CallNext, HandlerCall, HandlerMiddleware

logger = logging.getLogger("dispytch.listener")


def skip_unless(predicate: Callable[[Event[Any]], bool]) -> HandlerMiddleware:
    """A handler-call middleware that calls the handler only when `predicate(event)` is true
    (it sees the validated body, the headers, the key). A skipped call counts as handled: the
    message is acked. A predicate that raises fails the attempt, like the handler would."""

    async def filter_events(call: HandlerCall, call_next: CallNext) -> Any:
        if not predicate(call.event):
            logger.debug(
                "handler %r skipped event %s: the filter refused it",
                call.handler.name,
                call.event.id,
            )
            return None
        return await call_next()

    return filter_events


def header_equals(name: str, value: str) -> Callable[[Event[Any]], bool]:
    """A predicate for `skip_unless`: the message has header `name` set to `value`."""
    return lambda event: event.headers.get(name) == value
