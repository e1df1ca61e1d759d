"""Errors of the dead-letter tooling."""

from __future__ import annotations

from dispytch.errors import DispytchError


class DeadLetterError(DispytchError):
    """Base class of the dead-letter tooling's errors."""


class DeadLetterSourceError(DeadLetterError):
    """The dead-letter topic or queue does not exist, or cannot be read."""


class NotReplayableError(DeadLetterError):
    """This letter cannot be replayed (no original topic, ...); other letters still can."""


class ReplayProgressFullError(DeadLetterError):
    """Kafka: the replay progress cannot record one more replayed letter (see the docs)."""
