"""A small user service on Dispytch's embedded in-memory broker.

It emits two registrations and two orders, and handles them:

- `save_user` stores each new user through a database-session dependency whose teardown
  commits (or rolls back, when the handler fails);
- `send_welcome_mail` fails once for ada (the mail server is busy) and succeeds on its retry;
- `record_order` reads the user id from the topic `users:{user_id}:orders`;
- one order has a quantity of 0, which the order model refuses, so it goes to the
  dead-letter topic `users:2:orders.dlq`, which the service reads at the end.

Run it with `python examples/user_service.py`; it exits by itself within a second or two.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Annotated

from pydantic import BaseModel, Field

from dispytch import (
    Dependency,
    Event,
    EventBase,
    EventEmitter,
    EventListener,
    HandlerGroup,
    InMemoryBroker,
)
from dispytch.deadletters import DeadLetterReason

GROUP = "user-service"


# -- events, as the emitting side declares them -----------------------------------------------


class UserRegistered(EventBase):
    __topic__ = "users"
    __event_type__ = "user_registered"

    user_id: int
    email: str


class OrderPlaced(EventBase):
    __topic__ = "users:{user_id}:orders"
    __event_type__ = "order_placed"
    __key__ = "user_id"

    user_id: int
    item: str
    quantity: int


# -- bodies, as the handling side validates them ----------------------------------------------


class NewUser(BaseModel):
    user_id: int
    email: str


class Order(BaseModel):
    item: str
    quantity: int = Field(gt=0)


# -- dependencies -----------------------------------------------------------------------------


class Database:
    def __init__(self) -> None:
        self.users: dict[int, str] = {}


DATABASE = Database()


class Session:
    def __init__(self, database: Database) -> None:
        self.database = database
        self.staged: dict[int, str] = {}


async def db_session() -> AsyncIterator[Session]:
    """One session per event: committed after the handler succeeded, rolled back otherwise."""
    session = Session(DATABASE)
    try:
        yield session
    except Exception as exc:
        print(f"  db: rolled back ({exc})")
        raise
    else:
        DATABASE.users.update(session.staged)
        print(f"  db: committed {sorted(session.staged.values())}")


class MailServer:
    def __init__(self) -> None:
        #: addresses whose first delivery attempt fails
        self.busy_for = {"ada@example.com"}

    async def send(self, to: str) -> None:
        if to in self.busy_for:
            self.busy_for.discard(to)
            raise ConnectionError("mail server busy")


MAIL_SERVER = MailServer()


def get_mail_server() -> MailServer:
    return MAIL_SERVER


# -- handlers ---------------------------------------------------------------------------------

users = HandlerGroup(default_topic="users", default_event="user_registered")


@users.handler()
async def save_user(
    event: Event[NewUser], session: Annotated[Session, Dependency(db_session)]
) -> None:
    session.staged[event.body.user_id] = event.body.email
    print(f"handled user_registered: saved user {event.body.user_id} <{event.body.email}>")


@users.handler(retries=2, retry_on=ConnectionError, retry_interval=0.1)
async def send_welcome_mail(
    event: Event[NewUser], mail: Annotated[MailServer, Dependency(get_mail_server)]
) -> None:
    try:
        await mail.send(event.body.email)
    except ConnectionError as exc:
        print(f"welcome mail to {event.body.email} failed on attempt {event.attempt}: {exc}")
        raise
    print(
        f"handled user_registered: welcome mail sent to {event.body.email} "
        f"on attempt {event.attempt}"
    )


orders = HandlerGroup()


@orders.handler(topic="users:{user_id}:orders", event="order_placed")
async def record_order(event: Event[Order], user_id: int) -> None:
    print(
        f"handled order_placed: user {user_id} ordered {event.body.quantity} x "
        f"{event.body.item} (topic {event.topic})"
    )


# -- the service ------------------------------------------------------------------------------


async def wait_until_settled(broker: InMemoryBroker, timeout: float = 5.0) -> None:
    async def poll() -> None:
        while broker.pending(GROUP):
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), timeout)


async def read_dead_letter(broker: InMemoryBroker, topic: str) -> None:
    reader = broker.consumer("dead-letter-reader", [broker.dead_letter_topic(topic)])
    await reader.start([])
    try:
        letter = await asyncio.wait_for(reader.receive(), timeout=5.0)
        await letter.ack()
    finally:
        await reader.close()
    reason = DeadLetterReason.from_headers(letter.headers)
    assert reason is not None
    detail = " ".join(line.strip() for line in reason.error_message.splitlines()[:3])
    print(
        f"dead letter from {reason.original_topic}: stage={reason.stage} "
        f"error={reason.error_type} handler={reason.handler} ({detail.split(' [type=')[0]})"
    )


async def main() -> int:
    broker = InMemoryBroker()
    listener = EventListener(broker.consumer(GROUP))
    listener.add_handler_group(users)
    listener.add_handler_group(orders)
    emitter = EventEmitter(broker.producer())

    print("user service: listening on 'users' and 'users:{user_id}:orders'")
    async with listener:
        await emitter.emit(UserRegistered(user_id=1, email="ada@example.com"))
        await emitter.emit(UserRegistered(user_id=2, email="grace@example.com"))
        await emitter.emit(OrderPlaced(user_id=1, item="book", quantity=2))
        await emitter.emit(OrderPlaced(user_id=2, item="lamp", quantity=0))  # invalid
        await wait_until_settled(broker)

    await read_dead_letter(broker, "users:2:orders")
    print(f"done: {len(DATABASE.users)} users saved, every message settled")
    return 0


class _OneLineFormatter(logging.Formatter):
    def formatException(self, ei: object) -> str:
        return ""


if __name__ == "__main__":
    handler = logging.StreamHandler()
    handler.setFormatter(_OneLineFormatter("  [%(levelname)s %(name)s] %(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler])
    raise SystemExit(asyncio.run(main()))
