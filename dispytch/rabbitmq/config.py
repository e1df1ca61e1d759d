"""`RabbitMQEventConfig`: per-event AMQP options, set through `EventBase.__backend_config__`."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class RabbitMQEventConfig(BaseModel):
    """How the RabbitMQ producer publishes an event.

    Every field is optional; `None` keeps the producer's default. Set it on an event class
    (`__backend_config__ = RabbitMQEventConfig(priority=5)`) or on one instance.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: name of the exchange to publish to, among those the producer was given
    exchange: str | None = None
    #: the routing key to use instead of the one derived from the event's topic
    routing_key: str | None = None
    #: AMQP priority 0-255 (only queues declared with x-max-priority honour it)
    priority: int | None = Field(default=None, ge=0, le=255)
    #: per-message TTL in seconds; the broker drops (or dead-letters) it when it expires
    expiration: float | None = Field(default=None, gt=0)
    #: 2 = persistent (the default), 1 = transient
    delivery_mode: Literal[1, 2] | None = None
    #: raise `UnroutableMessageError` when no queue is bound (None: the producer's default)
    mandatory: bool | None = None
    correlation_id: str | None = None
    reply_to: str | None = None
    content_type: str | None = None
    content_encoding: str | None = None
    #: AMQP message-id. Keep it unique among concurrent publishes: the client matches
    #: returned (unroutable) messages to their publish by it
    message_id: str | None = None
    #: the AMQP `type` property
    type: str | None = None
    app_id: str | None = None
    #: extra AMQP headers, added to the event's own headers
    headers: dict[str, str] = Field(default_factory=dict)
