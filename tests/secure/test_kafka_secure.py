"""Kafka over SASL_SSL (SCRAM-SHA-512, TLS with the brokers' CA), against the real listener:
the consumer, the producer, the listener, the emitter and the dead letters work; a wrong
password, an untrusted certificate and a hostname mismatch fail at start, naming the cause and
never showing the password."""

from __future__ import annotations

import asyncio
import secrets
import ssl
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from dispytch import EventBase, EventEmitter, EventListener
from dispytch.backends.base import Consumer, Producer
from dispytch.errors import (
    BrokerAuthenticationError,
    BrokerSecurityError,
    BrokerTLSError,
    EmitError,
)
from dispytch.kafka import KAFKA_CAPABILITIES, KafkaConsumer, KafkaDeadLetterStore, KafkaProducer
from dispytch.testing.conformance import BackendHarness, ConformanceSuite, Session

from .conftest import KAFKA_PLAIN, Listener, assert_secret_nowhere, forwarder_to

pytestmark = [pytest.mark.secure, pytest.mark.kafka]

SCENARIOS = [
    "test_body_headers_and_key_round_trip",
    "test_listener_handles_events_and_dead_letters_failures",
]


def sasl_ssl(
    listener: Listener, *, password: str | None = None, context: ssl.SSLContext | None = None
) -> dict[str, Any]:
    """aiokafka options for the listener (its user; another password or TLS context)."""
    return {
        "security_protocol": "SASL_SSL",
        "ssl_context": context or listener.context(),
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": listener.username,
        "sasl_plain_password": listener.password if password is None else password,
    }


async def create_topic(listener: Listener, partitions: int = 1) -> str:
    name = f"secure-{uuid.uuid4().hex[:12]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=listener.address, **sasl_ssl(listener))
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
    finally:
        await admin.close()
    return name


async def read_records(
    listener: Listener, topic: str, count: int, timeout: float
) -> list[tuple[bytes, dict[str, str]]]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=listener.address,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        **sasl_ssl(listener),
    )
    await consumer.start()
    found: list[tuple[bytes, dict[str, str]]] = []

    async def fill() -> None:
        while len(found) < count:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                found.extend(
                    (r.value or b"", {k: v.decode() for k, v in r.headers}) for r in records
                )

    try:
        await asyncio.wait_for(fill(), timeout)
    finally:
        await consumer.stop()
    return found


@pytest.fixture
def harness(kafka_sasl_ssl: Listener) -> BackendHarness:
    listener = kafka_sasl_ssl

    async def consumer(group: str, topics: list[str]) -> Consumer:
        return KafkaConsumer.create(
            listener.address, group, commit_interval=0.1, **sasl_ssl(listener)
        )

    async def producer() -> Producer:
        return KafkaProducer.create(listener.address, linger_ms=5, **sasl_ssl(listener))

    async def read_dead_letters(
        topic: str, count: int, timeout: float
    ) -> list[tuple[bytes, dict[str, str]]]:
        return await read_records(listener, topic + ".dlq", count, timeout)

    return BackendHarness(
        name="kafka-sasl-ssl",
        capabilities=KAFKA_CAPABILITIES,
        new_topic=lambda: create_topic(listener, partitions=3),
        consumer=consumer,
        producer=producer,
        read_dead_letters=read_dead_letters,
        delimiter=".",
        receive_timeout=30.0,
    )


@pytest.mark.parametrize("scenario", SCENARIOS)
async def test_conformance_over_sasl_ssl(scenario: str, harness: BackendHarness) -> None:
    session = Session(harness)
    try:
        await getattr(ConformanceSuite(), scenario)(session)
    finally:
        await session.close()


# -- failures at start ---------------------------------------------------------------------


class Ping(EventBase):
    __topic__ = "secure-never-created"
    __event_type__ = "ping"


async def start_producer(address: str, options: dict[str, Any]) -> None:
    producer = KafkaProducer.create(address, request_timeout_ms=10_000, **options)
    try:
        await producer.start()
    finally:
        await producer.close()


async def start_listener(address: str, options: dict[str, Any]) -> None:
    consumer = KafkaConsumer.create(address, f"secure-{uuid.uuid4().hex[:8]}", **options)
    listener = EventListener(consumer)

    @listener.handler(topic="secure-never-created", event="ping")
    async def on_ping() -> None:
        pass

    async with listener:
        pass


async def emit(address: str, options: dict[str, Any]) -> None:
    async with EventEmitter(KafkaProducer.create(address, **options)) as emitter:
        await emitter.emit(Ping())


async def open_dead_letters(address: str, options: dict[str, Any]) -> None:
    async with KafkaDeadLetterStore(address, "secure-never-created.dlq", **options) as store:
        await store.pending()


CLIENTS: dict[str, Callable[[str, dict[str, Any]], Awaitable[None]]] = {
    "producer": start_producer,
    "listener": start_listener,
    "emitter": emit,
    "dead-letter store": open_dead_letters,
}


@pytest.mark.parametrize("client", list(CLIENTS))
async def test_a_wrong_password_fails_at_start_and_is_never_shown(
    client: str, kafka_sasl_ssl: Listener, all_logs: pytest.LogCaptureFixture
) -> None:
    wrong = f"wrong-{secrets.token_hex(8)}"
    options = sasl_ssl(kafka_sasl_ssl, password=wrong)
    error = await failure(CLIENTS[client](kafka_sasl_ssl.address, options))
    security = security_error(error)
    assert isinstance(security, BrokerAuthenticationError)
    assert "authentication failed" in str(error)
    assert repr(kafka_sasl_ssl.username) in str(error)
    assert_secret_nowhere([wrong, kafka_sasl_ssl.password], error, all_logs.text)


@pytest.mark.parametrize("client", list(CLIENTS))
async def test_an_untrusted_certificate_fails_at_start(
    client: str, kafka_sasl_ssl: Listener, other_ca: str, all_logs: pytest.LogCaptureFixture
) -> None:
    options = sasl_ssl(kafka_sasl_ssl, context=kafka_sasl_ssl.context(other_ca))
    error = await failure(CLIENTS[client](kafka_sasl_ssl.address, options))
    security = security_error(error)
    assert isinstance(security, BrokerTLSError)
    assert security.reason == "certificate not trusted"
    assert "certificate not trusted" in str(error)
    assert_secret_nowhere([kafka_sasl_ssl.password], error, all_logs.text)


@pytest.mark.parametrize("client", list(CLIENTS))
async def test_a_hostname_mismatch_fails_at_start(
    client: str, kafka_sasl_ssl: Listener, all_logs: pytest.LogCaptureFixture
) -> None:
    with forwarder_to(kafka_sasl_ssl) as other_address:
        options = sasl_ssl(kafka_sasl_ssl)
        error = await failure(CLIENTS[client](other_address.address, options))
    security = security_error(error)
    assert isinstance(security, BrokerTLSError)
    assert security.reason == "hostname mismatch"
    assert "hostname mismatch" in str(error)
    assert "127.0.0.2" in str(error)
    assert_secret_nowhere([kafka_sasl_ssl.password], error, all_logs.text)


async def test_a_sasl_login_on_a_listener_without_sasl_is_named(
    kafka_sasl_ssl: Listener, all_logs: pytest.LogCaptureFixture
) -> None:
    options = {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": kafka_sasl_ssl.username,
        "sasl_plain_password": kafka_sasl_ssl.password,
    }
    error = await failure(start_producer(KAFKA_PLAIN, options))
    assert isinstance(error, BrokerSecurityError)
    assert error.reason == "SASL not expected"
    assert_secret_nowhere([kafka_sasl_ssl.password], error, all_logs.text)


async def failure(start: Awaitable[None]) -> BaseException:
    """The error `start` raised, within a bound (it must fail, and fail at start)."""
    with pytest.raises(Exception) as raised:
        await asyncio.wait_for(start, 60)
    return raised.value


def security_error(error: BaseException) -> BrokerSecurityError | None:
    """The error itself, or (the emitter raises an `EmitError`) the one it was raised from."""
    if isinstance(error, EmitError):
        assert isinstance(error.__cause__, BrokerSecurityError), repr(error)
        return error.__cause__
    assert isinstance(error, BrokerSecurityError), repr(error)
    return error


# -- turning verification off --------------------------------------------------------------


async def test_a_context_that_does_not_verify_is_warned_about_at_every_start(
    kafka_sasl_ssl: Listener, caplog: pytest.LogCaptureFixture
) -> None:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    producer = KafkaProducer.create(
        kafka_sasl_ssl.address, **sasl_ssl(kafka_sasl_ssl, context=context)
    )
    for _ in range(2):
        await producer.start()  # it works: the warning is the only sign
        await producer.close()
    warnings = [r for r in caplog.records if r.name == "dispytch.security"]
    assert len(warnings) == 2
    assert all(r.levelname == "WARNING" and "INSECURE" in r.getMessage() for r in warnings)
    assert "does not verify the broker's certificate" in warnings[0].getMessage()
