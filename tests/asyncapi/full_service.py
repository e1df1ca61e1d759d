"""A service that uses every feature `dispytch asyncapi` documents: handlers on `{segment}`
topics and `*` patterns, several handlers and event types, a bare `Event`, nested models with an
enum, a tuple, a discriminated union and optional fields, emitted events with `{field}` topics
and a key, a Kafka listener, a RabbitMQ listener and a Kafka emitter. Nothing connects until a
listener or emitter starts, so the document can be written without brokers."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from dispytch import Event, EventBase, EventEmitter, EventListener, HandlerGroup, TopicSegment
from dispytch.kafka import KafkaConsumer, KafkaProducer
from dispytch.rabbitmq import RabbitMQConsumer


class Region(str, enum.Enum):
    EU = "eu"
    US = "us"


class Card(BaseModel):
    kind: Literal["card"] = "card"
    last4: str


class Transfer(BaseModel):
    kind: Literal["transfer"] = "transfer"
    iban: str


class Line(BaseModel):
    sku: str
    quantity: int = Field(ge=1)


class OrderPlacedBody(BaseModel):
    """An order a customer placed."""

    order_id: str
    region: Region
    lines: list[Line]
    paid_with: Annotated[Card | Transfer, Field(discriminator="kind")]
    dimensions: tuple[int, int, int] | None = None
    placed_at: datetime


class PaymentCapturedBody(BaseModel):
    order_id: str
    amount_cents: int


orders = HandlerGroup()


@orders.handler(topic="orders.{region}", event="order_placed", retries=2)
async def reserve_stock(
    event: Event[OrderPlacedBody], region: Annotated[Region, TopicSegment()]
) -> None:
    """Reserve the ordered items in the region's warehouse."""


@orders.handler(topic="orders.*", event="*")
async def audit_orders(event: Event) -> None:
    """Keep every order event, whatever its type, for the audit trail."""


kafka_listener = EventListener(KafkaConsumer.create("localhost:9092", "stock"), topic_delimiter=".")
kafka_listener.add_handler_group(orders)

payments_listener = EventListener(RabbitMQConsumer.create("amqp://localhost/", "billing"))


@payments_listener.handler(topic="payments", event="payment_captured")
async def send_invoice(event: Event[PaymentCapturedBody]) -> None:
    """Send the invoice once the payment is captured."""


class OrderPlaced(EventBase):
    """An order a customer placed (emitted by the shop)."""

    __topic__ = "orders.{region}"
    __event_type__ = "order_placed"
    __key__ = "order_id"

    order_id: str
    region: Region
    lines: list[Line]
    paid_with: Annotated[Card | Transfer, Field(discriminator="kind")]
    dimensions: tuple[int, int, int] | None = None
    placed_at: datetime


class PaymentCaptured(EventBase):
    __topic__ = "payments"
    __event_type__ = "payment_captured"

    order_id: str
    amount_cents: int


emitter = EventEmitter(KafkaProducer.create("localhost:9092"))
