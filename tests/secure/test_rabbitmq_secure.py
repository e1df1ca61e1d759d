"""RabbitMQ over TLS (amqps, the brokers' CA) with a user and password, against the real
listener: the consumer, the producer, the listener, the emitter and the dead letters work; a
wrong password, an untrusted certificate and a hostname mismatch fail at start, naming the
cause and never showing the password."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import ssl
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from yarl import URL

from dispytch import EventBase, EventEmitter, EventListener
from dispytch.backends.base import Consumer, Producer
from dispytch.errors import BrokerAuthenticationError, BrokerTLSError
from dispytch.rabbitmq import RabbitMQConsumer, RabbitMQDeadLetterStore, RabbitMQProducer
from dispytch.rabbitmq.consumer import CAPABILITIES
from dispytch.rabbitmq.headers import to_text_headers
from dispytch.rabbitmq.topology import Topology
from dispytch.testing.conformance import BackendHarness, ConformanceSuite, Session

from .conftest import Listener, assert_secret_nowhere, forwarder_to
from .test_kafka_secure import SCENARIOS, failure, security_error

aio_pika = pytest.importorskip("aio_pika")
pytestmark = [pytest.mark.secure, pytest.mark.rabbitmq]


def amqps_url(listener: Listener, *, password: str | None = None, address: str = "") -> str:
    """The listener's amqps URL with its user (another password, another address)."""
    host, _, port = (address or listener.address).rpartition(":")
    return str(
        URL.build(
            scheme="amqps",
            user=listener.username,
            password=listener.password if password is None else password,
            host=host,
            port=int(port),
            path="/",
        )
    )


@pytest.fixture
async def topology(rabbitmq_tls: Listener) -> AsyncIterator[Topology]:
    """Fresh exchange names, deleted (with their queues) after the test."""
    topology = Topology(f"secure-{uuid.uuid4().hex[:12]}")
    yield topology
    url = amqps_url(rabbitmq_tls)
    connection = await aio_pika.connect(url, ssl_context=rabbitmq_tls.context())
    try:
        channel = await connection.channel()
        with contextlib.suppress(aio_pika.exceptions.AMQPError):
            await channel.queue_delete(topology.dead_letter_queue)
        for name in (topology.exchange, topology.dead_letter_exchange):
            channel = await connection.channel()
            with contextlib.suppress(aio_pika.exceptions.AMQPError):
                await channel.exchange_delete(name)
    finally:
        await connection.close()


@pytest.fixture
async def harness(rabbitmq_tls: Listener, topology: Topology) -> AsyncIterator[BackendHarness]:
    url = amqps_url(rabbitmq_tls)
    context = rabbitmq_tls.context()
    connection = await aio_pika.connect(url, ssl_context=context)
    admin = await connection.channel()
    groups: list[str] = []

    async def new_topic() -> str:
        return f"secure:{uuid.uuid4().hex[:12]}:events"

    async def consumer(group: str, topics: list[str]) -> Consumer:
        groups.append(group)
        return RabbitMQConsumer.create(url, group, exchange=topology.exchange, ssl_context=context)

    async def producer() -> Producer:
        return RabbitMQProducer.create(
            url, exchange=topology.exchange, mandatory=False, ssl_context=context
        )

    async def read_dead_letters(
        topic: str, count: int, timeout: float
    ) -> list[tuple[bytes, dict[str, str]]]:
        queue = await admin.get_queue(topology.dead_letter_queue)
        taken: list[Any] = []
        deadline = asyncio.get_running_loop().time() + timeout
        while len(taken) < count:
            message = await queue.get(fail=False, no_ack=True)
            if message is not None:
                taken.append(message)
                continue
            assert asyncio.get_running_loop().time() < deadline, f"{len(taken)} of {count}"
            await asyncio.sleep(0.05)
        return [(m.body, to_text_headers(m.headers)) for m in taken]

    yield BackendHarness(
        name="rabbitmq-tls",
        capabilities=CAPABILITIES,
        new_topic=new_topic,
        consumer=consumer,
        producer=producer,
        read_dead_letters=read_dead_letters,
        delimiter=":",
        receive_timeout=10.0,
    )
    for group in groups:
        with contextlib.suppress(aio_pika.exceptions.AMQPError):
            await admin.queue_delete(topology.queue(group))
    await connection.close()


@pytest.mark.parametrize("scenario", SCENARIOS)
async def test_conformance_over_tls(scenario: str, harness: BackendHarness) -> None:
    session = Session(harness)
    try:
        await getattr(ConformanceSuite(), scenario)(session)
    finally:
        await session.close()


# -- failures at start ---------------------------------------------------------------------


class Ping(EventBase):
    __topic__ = "secure:never:read"
    __event_type__ = "ping"


async def start_producer(url: str, context: ssl.SSLContext | None) -> None:
    producer = RabbitMQProducer.create(url, ssl_context=context, connect_timeout=10)
    try:
        await producer.start()
    finally:
        await producer.close()


async def start_listener(url: str, context: ssl.SSLContext | None) -> None:
    consumer = RabbitMQConsumer.create(
        url, "never", exchange=f"secure-{uuid.uuid4().hex[:8]}", ssl_context=context
    )
    listener = EventListener(consumer)

    @listener.handler(topic="secure:never:read", event="ping")
    async def on_ping() -> None:
        pass

    async with listener:
        pass


async def emit(url: str, context: ssl.SSLContext | None) -> None:
    producer = RabbitMQProducer.create(url, ssl_context=context, mandatory=False)
    async with EventEmitter(producer) as emitter:
        await emitter.emit(Ping())


async def open_dead_letters(url: str, context: ssl.SSLContext | None) -> None:
    async with RabbitMQDeadLetterStore(url, "secure-never.dlq", ssl_context=context) as store:
        await store.pending()


CLIENTS: dict[str, Callable[[str, ssl.SSLContext | None], Awaitable[None]]] = {
    "producer": start_producer,
    "listener": start_listener,
    "emitter": emit,
    "dead-letter store": open_dead_letters,
}


@pytest.mark.parametrize("client", list(CLIENTS))
async def test_a_wrong_password_fails_at_start_and_is_never_shown(
    client: str, rabbitmq_tls: Listener, all_logs: pytest.LogCaptureFixture
) -> None:
    wrong = f"wrong-{secrets.token_hex(8)}"
    url = amqps_url(rabbitmq_tls, password=wrong)
    error = await failure(CLIENTS[client](url, rabbitmq_tls.context()))
    security = security_error(error)
    assert isinstance(security, BrokerAuthenticationError)
    assert "authentication failed" in str(error)
    assert repr(rabbitmq_tls.username) in str(error)
    assert_secret_nowhere([wrong, rabbitmq_tls.password], error, all_logs.text)


@pytest.mark.parametrize("client", list(CLIENTS))
async def test_an_untrusted_certificate_fails_at_start(
    client: str, rabbitmq_tls: Listener, other_ca: str, all_logs: pytest.LogCaptureFixture
) -> None:
    url = amqps_url(rabbitmq_tls)
    error = await failure(CLIENTS[client](url, rabbitmq_tls.context(other_ca)))
    security = security_error(error)
    assert isinstance(security, BrokerTLSError)
    assert security.reason == "certificate not trusted"
    assert "certificate not trusted" in str(error)
    assert_secret_nowhere([rabbitmq_tls.password], error, all_logs.text)


@pytest.mark.parametrize("client", list(CLIENTS))
async def test_a_hostname_mismatch_fails_at_start(
    client: str, rabbitmq_tls: Listener, all_logs: pytest.LogCaptureFixture
) -> None:
    with forwarder_to(rabbitmq_tls) as other_address:
        url = amqps_url(rabbitmq_tls, address=other_address.address)
        error = await failure(CLIENTS[client](url, rabbitmq_tls.context()))
    security = security_error(error)
    assert isinstance(security, BrokerTLSError)
    assert security.reason == "hostname mismatch"
    assert "hostname mismatch" in str(error)
    assert "127.0.0.2" in str(error)
    assert_secret_nowhere([rabbitmq_tls.password], error, all_logs.text)


async def test_the_ca_file_in_the_url_works_too(rabbitmq_tls: Listener) -> None:
    url = URL(amqps_url(rabbitmq_tls)).with_query(cafile=rabbitmq_tls.ca_file)
    await start_producer(str(url), None)


# -- turning verification off --------------------------------------------------------------


async def test_no_verify_ssl_in_the_url_is_warned_about_at_every_start(
    rabbitmq_tls: Listener, caplog: pytest.LogCaptureFixture
) -> None:
    url = str(URL(amqps_url(rabbitmq_tls)).with_query(no_verify_ssl="1"))
    producer = RabbitMQProducer.create(url)
    for _ in range(2):
        await producer.start()  # it works: the warning is the only sign
        await producer.close()
    warnings = [r for r in caplog.records if r.name == "dispytch.security"]
    assert len(warnings) == 2
    assert all(r.levelname == "WARNING" and "INSECURE" in r.getMessage() for r in warnings)
    assert "no_verify_ssl" in warnings[0].getMessage()
