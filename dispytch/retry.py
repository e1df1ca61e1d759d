"""Retry policies: how often a failing handler is tried again and how long to wait between.

Pure: no I/O, no sleeping. The listener asks `should_retry` and `delay` and does the waiting.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class FixedBackoff:
    """The same wait before every retry (dispytch 0.10's `retry_interval`)."""

    interval: float = 1.0

    def delay(self, attempt: int) -> float:
        return self.interval


@dataclass(frozen=True, slots=True)
class ExponentialBackoff:
    """`initial * multiplier ** (attempt - 1)`, capped at `max_delay`; with `jitter`, a random
    wait between 0 and that ("full jitter"), so that many failing consumers do not retry in step."""

    initial: float = 0.1
    multiplier: float = 2.0
    max_delay: float = 30.0
    jitter: bool = True

    def delay(self, attempt: int) -> float:
        ceiling = min(self.max_delay, self.initial * self.multiplier ** max(attempt - 1, 0))
        return random.uniform(0, ceiling) if self.jitter else ceiling


Backoff = FixedBackoff | ExponentialBackoff

#: what a handler can fail with: any exception, and a `CancelledError` (the handler awaited
#: something someone else cancelled) that is not the listener stopping
ANY_FAILURE: tuple[type[BaseException], ...] = (Exception, asyncio.CancelledError)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """`retries`: how many times a failed attempt is tried again (0: never).
    `retry_on`: the exception classes worth retrying (default: any failure, `CancelledError`
    included).
    `backoff`: how long to wait before each retry.
    `delayed`: wait outside the consumer: the message goes back to the broker with its attempt
    count in a header and comes back after the delay, so other messages (even with the same
    key) go on meanwhile and a restart does not reset the count. Needs `native_delay`."""

    retries: int = 0
    retry_on: tuple[type[BaseException], ...] = ANY_FAILURE
    backoff: Backoff = field(default_factory=FixedBackoff)
    #: retry by handing the message back to the broker for later (see docs/delivery.md)
    #: instead of waiting in place; needs a backend with `native_delay`
    delayed: bool = False

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise ValueError("retries must be 0 or more")

    @classmethod
    def build(
        cls,
        retries: int = 0,
        retry_on: type[BaseException] | Sequence[type[BaseException]] | None = None,
        retry_interval: float | None = None,
        backoff: Backoff | None = None,
        delayed: bool = False,
    ) -> RetryPolicy:
        if backoff is not None and retry_interval is not None:
            raise ValueError("give either retry_interval or backoff, not both")
        if retry_on is None:
            errors = ANY_FAILURE
        elif isinstance(retry_on, type):
            errors = (retry_on,)
        else:
            errors = tuple(retry_on)
        for error in errors:
            if not (isinstance(error, type) and issubclass(error, BaseException)):
                raise TypeError(f"retry_on must hold exception classes, got {error!r}")
        chosen = backoff or FixedBackoff(1.0 if retry_interval is None else retry_interval)
        return cls(retries=retries, retry_on=errors, backoff=chosen, delayed=delayed)

    def should_retry(self, error: BaseException, attempt: int) -> bool:
        """After `attempt` attempts failed with `error`: try once more?"""
        return attempt <= self.retries and isinstance(error, self.retry_on)

    def delay(self, attempt: int) -> float:
        return self.backoff.delay(attempt)
