"""The one place that imports aio-pika, so a missing extra fails with an install hint."""

from __future__ import annotations

from dispytch.errors import missing_extra

try:
    import aio_pika
    import aiormq
    from aio_pika.abc import (
        AbstractChannel,
        AbstractConnection,
        AbstractExchange,
        AbstractIncomingMessage,
        AbstractQueue,
    )
    from aio_pika.connection import make_url
except ImportError as error:  # pragma: no cover - exercised in a subprocess test
    raise missing_extra("rabbitmq", "aio-pika") from error

__all__ = [
    "AbstractChannel",
    "AbstractConnection",
    "AbstractExchange",
    "AbstractIncomingMessage",
    "AbstractQueue",
    "aio_pika",
    "aiormq",
    "make_url",
]
