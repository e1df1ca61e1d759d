"""`LogOutcomes`: one structured log record per message, with its outcome and event id."""

from __future__ import annotations

import logging
import time
from typing import Any

from dispytch.middleware.context import CallNext, MessageContext

_LEVELS = {
    "dead_lettered": logging.ERROR,
    "given_back": logging.WARNING,
    "retried_later": logging.WARNING,
}


class LogOutcomes:
    """A message middleware that logs every message's outcome once it is settled: the
    message "handled", "no_handler", "skipped", "retried_later", "given_back" or
    "dead_lettered" (at ERROR, with the reason's stage and error type). The record's `extra`
    holds `event_id`, `event_type`, `topic`, `outcome`, `stage`, `error_type` and
    `duration_ms`, for a JSON log formatter. Nothing of the message's bytes or headers is
    logged."""

    def __init__(self, logger: logging.Logger | None = None, level: int = logging.INFO) -> None:
        self.logger = logger or logging.getLogger("dispytch.outcomes")
        self.level = level

    async def __call__(self, message: MessageContext, call_next: CallNext) -> Any:
        started = time.perf_counter()
        try:
            return await call_next()
        finally:
            self._log(message, (time.perf_counter() - started) * 1000)

    def _log(self, message: MessageContext, duration_ms: float) -> None:
        outcome = message.outcome
        kind = "unsettled" if outcome is None else outcome.kind
        reason = None if outcome is None else outcome.reason
        level = _LEVELS.get(kind, self.level)
        if not self.logger.isEnabledFor(level):
            return
        fields = {
            "event_id": message.event_id,
            "event_type": message.event_type,
            "topic": message.topic,
            "outcome": kind,
            "stage": None if reason is None else reason.stage,
            "error_type": None if reason is None else reason.error_type,
            "duration_ms": round(duration_ms, 3),
        }
        self.logger.log(
            level,
            "event %s of type %r on %r: %s%s",
            message.event_id,
            message.event_type,
            message.topic,
            kind,
            "" if reason is None else f" ({reason.stage}: {reason.error_type})",
            extra=fields,
        )
