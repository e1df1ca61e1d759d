"""`KafkaProducer`: stores `OutgoingMessage`s on Kafka and waits for the broker's ack."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import ProducerClosed

from dispytch.backends.base import OutgoingMessage, Producer, mark_confirmed
from dispytch.errors import BackendError
from dispytch.kafka._aiokafka_private import abandon_pending_records, producer_started
from dispytch.kafka._client_logs import quiet_expected_client_logs
from dispytch.kafka._errors import KAFKA_EXCEPTIONS, SEND_EXCEPTIONS, producer_error
from dispytch.kafka._secure import start_error, warn_if_insecure
from dispytch.kafka._topic_names import check_topic
from dispytch.kafka.config import KafkaEventConfig, header_bytes
from dispytch.loops import LoopBinding, other_loop_error

#: defaults for producers Dispytch creates: wait for every in-sync replica, no duplicates
#: from the client's own retries
OWNED_PRODUCER_DEFAULTS: dict[str, Any] = {"acks": "all", "enable_idempotence": True}
#: how long `close()` waits for the broker to confirm what the client still holds
DEFAULT_CLOSE_TIMEOUT = 30.0

logger = logging.getLogger("dispytch.kafka")


class KafkaProducer(Producer):
    """A `Producer` on an aiokafka `AIOKafkaProducer`.

    `KafkaProducer(client)` wraps a client you created (and may have started; it is started
    here when not). `close()` stops it only when Dispytch started it.
    `KafkaProducer.create(bootstrap_servers, **aiokafka_options)` creates and owns one, with
    `acks="all"` and `enable_idempotence=True` unless the options say otherwise.

    `close_timeout` (seconds) bounds `close()` of a client Dispytch stops: aiokafka's `stop()`
    waits until the broker confirmed every record it holds (with idempotence, it retries a
    record the broker refuses, e.g. with too few in-sync replicas, without end). Past the bound
    the records left are abandoned, with a WARNING saying how many, and the client is closed.
    """

    def __init__(
        self, producer: AIOKafkaProducer, *, close_timeout: float = DEFAULT_CLOSE_TIMEOUT
    ) -> None:
        self.close_timeout = close_timeout
        self._client: AIOKafkaProducer | None = producer
        self._options: dict[str, Any] | None = None
        self._owns_client = False
        self._started = False
        self._start_lock = asyncio.Lock()
        self._loop = LoopBinding()

    @classmethod
    def create(
        cls,
        bootstrap_servers: str | list[str],
        *,
        close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
        **aiokafka_options: Any,
    ) -> KafkaProducer:
        """A producer that creates its aiokafka client on `start()` and stops it on `close()`.
        `aiokafka_options` go to `AIOKafkaProducer` (TLS: `security_protocol`, `ssl_context`;
        SASL: `sasl_mechanism`, `sasl_plain_username`, ...)."""
        self = cls.__new__(cls)
        self.close_timeout = close_timeout
        self._client = None
        self._options = {
            **OWNED_PRODUCER_DEFAULTS,
            **aiokafka_options,
            "bootstrap_servers": bootstrap_servers,
        }
        self._owns_client = True
        self._started = False
        self._start_lock = asyncio.Lock()
        self._loop = LoopBinding()
        return self

    @property
    def client(self) -> AIOKafkaProducer | None:
        """The aiokafka producer (None until `start()` for a producer made by `create()`)."""
        return self._client

    async def start(self) -> None:
        self._leave_other_loop()
        quiet_expected_client_logs()
        async with self._start_lock:
            if self._started:
                return
            if self._options is not None:
                self._client = AIOKafkaProducer(**self._options)
            elif not producer_started(self._client):
                self._owns_client = True
            client = self._client
            assert client is not None
            if self._owns_client:
                warn_if_insecure(self._options, "the Kafka producer")
                try:
                    await client.start()
                except KAFKA_EXCEPTIONS as exc:
                    await _quiet_stop(client)
                    raise await start_error(exc, self._options, "starting the producer") from exc
            self._started = True
            self._loop.bind()

    def check_topic(self, topic: str) -> None:
        check_topic(topic)

    async def send(self, message: OutgoingMessage, *, timeout: float | None = None) -> None:
        check_topic(message.topic)
        client = self._client if self._ready_here() else await self._ready()
        assert client is not None
        try:
            if timeout is None:
                await (await client.send(*_record_of(message)))
            else:
                await asyncio.wait_for(self._send_one(client, message), timeout)
        except SEND_EXCEPTIONS as exc:
            raise producer_error(exc, message.topic) from exc

    async def send_many(
        self, messages: Sequence[OutgoingMessage], *, timeout: float | None = None
    ) -> None:
        """Queue every message (aiokafka batches them by `linger_ms`), then wait for all acks.
        When one fails, the acks of those queued are still awaited (within `timeout`), and the
        error names the messages the broker confirmed (`mark_confirmed`)."""
        if not messages:
            return
        for message in messages:
            check_topic(message.topic)
        client = await self._ready()
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        acks: list[asyncio.Future[Any]] = []

        async def enqueue_all() -> None:
            for message in messages:
                acks.append(await client.send(*_record_of(message)))

        refused: BackendError | None = None
        try:
            await asyncio.wait_for(enqueue_all(), _left(deadline, loop))
        except SEND_EXCEPTIONS as exc:
            # messages[len(acks)] was refused (or not queued in time); the rest is not sent,
            # and what is queued is still awaited below
            refused = producer_error(exc, messages[len(acks)].topic)
        late: set[asyncio.Future[Any]] = set()
        if acks:
            _, late = await asyncio.wait(acks, timeout=_left(deadline, loop))
        for ack in late:  # left to aiokafka; its outcome, whatever it is, is retrieved
            ack.add_done_callback(_retrieve)
        confirmed: list[OutgoingMessage] = []
        failure: BackendError | None = None
        for message, ack in zip(messages, acks, strict=False):  # acks stop where sending did
            error = _ack_error(ack, late)
            if error is None:
                confirmed.append(message)
            elif failure is None:  # the first failure in the order given
                failure = producer_error(error, message.topic)
        failure = failure or refused
        if failure is not None:
            raise mark_confirmed(failure, confirmed)

    async def close(self) -> None:
        old_loop = self._loop.other_loop()
        if old_loop is not None:
            if not old_loop.is_closed():
                raise other_loop_error("this KafkaProducer's aiokafka client", old_loop)
            self._forget_client()  # its loop is gone, and with it any way to stop it
            return
        client = self._client
        if client is not None and self._owns_client and self._started:
            await _bounded_stop(client, self.close_timeout)
        self._started = False
        if self._options is not None:
            self._client = None
            self._loop.clear()  # the next client may belong to another loop

    def _leave_other_loop(self) -> None:
        """In another event loop than the client's: forget a client made by `create()` whose
        loop is closed (`start()` makes a new one); refuse anything else at once."""
        old_loop = self._loop.other_loop()
        if old_loop is None:
            return
        if self._options is None or not old_loop.is_closed():
            raise other_loop_error("this KafkaProducer's aiokafka client", old_loop)
        self._forget_client()

    def _forget_client(self) -> None:
        self._started = False
        self._loop.clear()
        self._start_lock = asyncio.Lock()
        if self._options is not None:
            self._client = None

    def _ready_here(self) -> bool:
        """Started, in this event loop: `send` needs no `start()` (checked without awaiting)."""
        return self._started and self._loop.other_loop() is None

    async def _ready(self) -> AIOKafkaProducer:
        if not self._started or self._loop.other_loop() is not None:
            await self.start()
        assert self._client is not None
        return self._client

    @staticmethod
    async def _send_one(client: AIOKafkaProducer, message: OutgoingMessage) -> None:
        await (await client.send(*_record_of(message)))


#: what `AIOKafkaProducer.send` takes, in its order: topic, value, key, partition,
#: timestamp_ms, headers
_Record = tuple[str, bytes, bytes | None, int | None, int | None, list[tuple[str, bytes]]]


def _record_of(message: OutgoingMessage) -> _Record:
    """The record for aiokafka's `send` (whose future resolves on the broker's ack)."""
    key = message.key
    partition = None
    timestamp_ms = message.timestamp_ms
    headers = message.headers
    config = message.config
    if isinstance(config, KafkaEventConfig):
        config_key = config.key_bytes()
        if config_key is not None:
            key = config_key
        partition = config.partition
        if config.timestamp_ms is not None:
            timestamp_ms = config.timestamp_ms
        if config.headers:
            headers = {**headers, **config.headers}
    return (
        message.topic,
        message.value,
        key,
        partition,
        timestamp_ms,
        [(name, header_bytes(value)) for name, value in headers.items()],
    )


def _left(deadline: float | None, loop: asyncio.AbstractEventLoop) -> float | None:
    return None if deadline is None else max(0.0, deadline - loop.time())


def _ack_error(ack: asyncio.Future[Any], late: set[asyncio.Future[Any]]) -> BaseException | None:
    if ack in late:
        return asyncio.TimeoutError()
    if ack.cancelled():
        return RuntimeError("the client dropped the message (was it stopped?)")
    error: BaseException | None = ack.exception()
    return error


def _retrieve(ack: asyncio.Future[Any]) -> None:
    if not ack.cancelled():
        ack.exception()


async def _quiet_stop(client: AIOKafkaProducer) -> None:
    with contextlib.suppress(*KAFKA_EXCEPTIONS):
        await client.stop()


async def _bounded_stop(client: AIOKafkaProducer, timeout: float) -> None:
    """Stop the client, abandoning after `timeout` seconds the records it still holds."""
    stopping = asyncio.ensure_future(_quiet_stop(client))
    try:
        done, _ = await asyncio.wait({stopping}, timeout=timeout)
        if not done:
            abandoned = abandon_pending_records(
                client, ProducerClosed("the producer was closed before the broker confirmed")
            )
            logger.warning(
                "closing the Kafka producer: %d record(s) not confirmed by the broker within "
                "%s s were abandoned",
                abandoned,
                timeout,
            )
            done, _ = await asyncio.wait({stopping}, timeout=timeout)
    finally:
        if not stopping.done():
            stopping.cancel()
