"""`KafkaDeadLetterStore`: the dead letters of one Kafka dead-letter topic (`orders.dlq`).

Reading uses a consumer that is assigned every partition by hand (it never joins a group, so
it takes nothing from anyone) and reads each one, in partition order, from its start to the
end offset it had when the read started. Replay progress is the committed offset (and commit
metadata) of the consumer group `replay_group` on the dead-letter topic; see
`dispytch.kafka._replay_progress` and docs/dead-letters.md.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any
from urllib.parse import unquote

from dispytch.errors import missing_extra

try:
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise missing_extra("kafka", "aiokafka") from exc

import contextlib

from dispytch.backends.base import OutgoingMessage
from dispytch.credentials import masked_options, masked_url
from dispytch.deadletters.errors import (
    DeadLetterSourceError,
    NotReplayableError,
    ReplayProgressFullError,
)
from dispytch.deadletters.letter import DeadLetter, decode_envelope
from dispytch.deadletters.store import DeadLetterStore
from dispytch.deadletters.url import StoreOptions, StoreUsageError
from dispytch.errors import BackendError, BrokerUnavailableError
from dispytch.kafka._client import CONNECTION_OPTIONS
from dispytch.kafka._dead_letters import missing_topic_message, source_stem
from dispytch.kafka._errors import KAFKA_EXCEPTIONS, connection_error
from dispytch.kafka._replay_progress import PartitionProgress
from dispytch.kafka._secure import start_error, warn_if_insecure
from dispytch.kafka.config import header_text
from dispytch.kafka.producer import KafkaProducer
from dispytch.reasons import DeadLetterReason

DEFAULT_REPLAY_GROUP = "dispytch-dlq-replay"
DEFAULT_SASL_MECHANISM = "SCRAM-SHA-512"
#: the scheme of a Kafka URL reached over TLS
TLS_SCHEME = "kafka+ssl"

class KafkaDeadLetterStore(DeadLetterStore):
    """Dead letters of the Kafka topic `topic`.

    `replay_group` is the consumer group whose committed offsets on `topic` record what was
    replayed. Progress is committed at most every `commit_interval` seconds during a replay
    and when the read ends, so a replay killed in between replays up to that much again.
    `aiokafka_options` (TLS, SASL, ...) go to the consumer, the admin client and the producer.
    """

    def __init__(
        self,
        bootstrap_servers: str | list[str],
        topic: str,
        *,
        replay_group: str = DEFAULT_REPLAY_GROUP,
        commit_interval: float = 0.5,
        send_timeout: float = 30.0,
        fetch_timeout: float = 30.0,
        **aiokafka_options: Any,
    ) -> None:
        self.topic = topic
        self.source = f"Kafka topic {topic!r}"
        self._servers = bootstrap_servers
        self._group = replay_group
        self._commit_interval = commit_interval
        self._send_timeout = send_timeout
        self._fetch_timeout = fetch_timeout
        self._options = aiokafka_options
        self._consumer: AIOKafkaConsumer | None = None
        self._partitions: list[TopicPartition] = []
        self._producer: KafkaProducer | None = None
        self._progress: dict[TopicPartition, PartitionProgress] = {}
        self._last_commit = 0.0

    def __repr__(self) -> str:
        options = masked_options({"bootstrap_servers": self._servers, **self._options})
        shown = ", ".join(f"{name}={value!r}" for name, value in options.items())
        return f"KafkaDeadLetterStore({self.topic!r}, {shown})"

    # -- DeadLetterStore ---------------------------------------------------------------------

    async def read(self, *, include_replayed: bool = False) -> AsyncGenerator[DeadLetter, None]:
        consumer = await self._ready()
        try:
            beginning = await consumer.beginning_offsets(self._partitions)
            end = await consumer.end_offsets(self._partitions)
            self._progress = await self._load_progress(beginning)
        except KAFKA_EXCEPTIONS as error:
            raise connection_error(error, f"reading offsets of {self.topic!r}") from error
        index = 0
        try:
            for tp in self._partitions:
                progress = self._progress[tp]
                start = beginning[tp] if include_replayed else progress.committed
                records = self._records(consumer, tp, start, end[tp])
                async with aclosing(records):
                    async for record in records:
                        progress.seen(record.offset)
                        replayed = progress.is_replayed(record.offset)
                        if replayed and not include_replayed:
                            continue
                        yield self._letter(index, record, replayed)
                        index += 1
        finally:
            await self._commit(force=True)

    async def pending(self) -> int:
        consumer = await self._ready()
        try:
            beginning = await consumer.beginning_offsets(self._partitions)
            end = await consumer.end_offsets(self._partitions)
            progress = await self._load_progress(beginning)
        except KAFKA_EXCEPTIONS as error:
            raise connection_error(error, f"reading offsets of {self.topic!r}") from error
        total = 0
        for tp in self._partitions:
            p = progress[tp]
            total += max(0, end[tp] - p.committed) - sum(1 for o in p.replayed if o < end[tp])
        return total

    async def replay(self, letter: DeadLetter) -> None:
        tp, offset = letter.handle
        progress = self._progress.get(tp)
        if progress is None:
            raise RuntimeError("replay() a letter only while the read() that yielded it is open")
        if progress.is_replayed(offset):
            raise NotReplayableError(f"{letter.location} was replayed before")
        topic = letter.original_topic
        if topic is None:
            raise NotReplayableError(f"{letter.location} has no dispytch-dlq-original-topic")
        if not progress.fits_one_more(offset):
            raise ReplayProgressFullError(
                f"the replay progress of {tp.topic}[{tp.partition}] cannot record more separate "
                "replayed letters; replay the letters before them first (or without a filter)"
            )
        producer = await self._ready_producer()
        message = OutgoingMessage(
            topic=topic, value=letter.value, key=letter.key, headers=letter.replay_headers()
        )
        await producer.send(message, timeout=self._send_timeout)
        progress.mark_replayed(offset)
        await self._commit()

    async def close(self) -> None:
        consumer, self._consumer = self._consumer, None
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.close()
        if consumer is not None:
            with contextlib.suppress(*KAFKA_EXCEPTIONS):
                await consumer.stop()

    # -- internals ---------------------------------------------------------------------------

    async def _ready(self) -> AIOKafkaConsumer:
        if self._consumer is not None:
            return self._consumer
        warn_if_insecure(self._options, "the Kafka dead-letter store")
        partitions = await self._partitions_of_topic()
        consumer = AIOKafkaConsumer(
            **self._options,
            bootstrap_servers=self._servers,
            group_id=self._group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        try:
            await consumer.start()
        except KAFKA_EXCEPTIONS as error:
            await _quiet_stop(consumer)
            raise await start_error(error, self._start_options(), "connecting") from error
        self._partitions = [TopicPartition(self.topic, p) for p in partitions]
        consumer.assign(self._partitions)
        consumer.pause(*self._partitions)
        self._consumer = consumer
        return consumer

    async def _partitions_of_topic(self) -> list[int]:
        """The topic's partitions, asked of the cluster (a consumer's metadata may not know a
        topic created a moment ago). Listed first: describing a missing topic may create it."""
        admin = AIOKafkaAdminClient(bootstrap_servers=self._servers, **self._connection_options())
        try:
            await admin.start()
            existing = await admin.list_topics()
            if self.topic not in existing:
                raise DeadLetterSourceError(missing_topic_message(self.topic, existing))
            described = await admin.describe_topics([self.topic])
        except KAFKA_EXCEPTIONS as error:
            raise await start_error(
                error, self._start_options(), "reading the topic's partitions"
            ) from error
        finally:
            await admin.close()
        partitions = sorted(
            p["partition"] for t in described if t["topic"] == self.topic for p in t["partitions"]
        )
        if not partitions:
            raise DeadLetterSourceError(f"Kafka topic {self.topic!r} has no partitions")
        return partitions

    async def _ready_producer(self) -> KafkaProducer:
        if self._producer is None:
            self._producer = KafkaProducer.create(self._servers, **self._connection_options())
            await self._producer.start()
        return self._producer

    def _connection_options(self) -> dict[str, Any]:
        return {k: v for k, v in self._options.items() if k in CONNECTION_OPTIONS}

    def _start_options(self) -> dict[str, Any]:
        return {**self._options, "bootstrap_servers": self._servers}

    async def _load_progress(
        self, beginning: dict[TopicPartition, int]
    ) -> dict[TopicPartition, PartitionProgress]:
        admin = AIOKafkaAdminClient(bootstrap_servers=self._servers, **self._connection_options())
        await admin.start()
        try:
            stored = await admin.list_consumer_group_offsets(
                self._group, partitions=self._partitions
            )
        finally:
            await admin.close()
        progress = {}
        for tp in self._partitions:
            committed = stored.get(tp)
            progress[tp] = PartitionProgress.parse(
                committed.offset if committed is not None else None,
                committed.metadata if committed is not None else None,
                beginning[tp],
            )
        return progress

    async def _records(
        self, consumer: AIOKafkaConsumer, tp: TopicPartition, start: int, end: int
    ) -> AsyncGenerator[Any, None]:
        """The records of `tp` from `start` up to (not including) `end`."""
        if start >= end:
            return
        consumer.seek(tp, start)
        consumer.resume(tp)
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self._fetch_timeout
            while True:
                try:
                    batch = await consumer.getmany(tp, timeout_ms=500, max_records=500)
                except KAFKA_EXCEPTIONS as error:
                    raise connection_error(error, f"reading {self.topic!r}") from error
                records = batch.get(tp, [])
                for record in records:
                    if record.offset >= end:
                        return
                    yield record
                if records:
                    deadline = loop.time() + self._fetch_timeout
                if await consumer.position(tp) >= end:
                    return
                if loop.time() > deadline:
                    raise BrokerUnavailableError(
                        f"no records from {tp.topic}[{tp.partition}] for {self._fetch_timeout}s"
                    )
        finally:
            consumer.pause(tp)

    def _letter(self, index: int, record: Any, replayed: bool) -> DeadLetter:
        headers = {name: header_text(value or b"") for name, value in record.headers or ()}
        value: bytes = record.value if record.value is not None else b""
        envelope, envelope_error = decode_envelope(value, headers)
        return DeadLetter(
            index=index,
            location=f"{record.topic}[{record.partition}]@{record.offset}",
            value=value,
            key=record.key,
            headers=headers,
            reason=DeadLetterReason.from_headers(headers),
            envelope=envelope,
            envelope_error=envelope_error,
            timestamp_ms=record.timestamp,
            metadata={
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
            },
            replayed=replayed,
            handle=(TopicPartition(record.topic, record.partition), record.offset),
        )

    async def _commit(self, *, force: bool = False) -> None:
        consumer = self._consumer
        if consumer is None:
            return
        now = time.monotonic()
        if not force and now - self._last_commit < self._commit_interval:
            return
        pending = {tp: commit for tp, p in self._progress.items() if (commit := p.pending_commit())}
        if not pending:
            return
        try:
            await consumer.commit(pending)
        except KAFKA_EXCEPTIONS as error:
            raise BackendError(
                f"replayed, but recording the progress in group {self._group!r} failed: {error!r}"
                " (the next replay repeats the letters replayed since the last commit)"
            ) from error
        self._last_commit = now
        for tp, (offset, metadata) in pending.items():
            self._progress[tp].committed_as(offset, metadata)


async def _quiet_stop(consumer: AIOKafkaConsumer) -> None:
    with contextlib.suppress(*KAFKA_EXCEPTIONS):
        await consumer.stop()


DEAD_LETTER_SUFFIX = ".dlq"


def open_from_url(broker_url: str, options: StoreOptions) -> KafkaDeadLetterStore:
    """The store of `kafka://host:9092[,host2:9092]` or `kafka+ssl://...` (the `kafka` and
    `kafka+ssl` entries of the `dispytch.dead_letter_stores` table): the dead-letter topic
    `options.topic`, or `<options.source_topic>.dlq`. A user name (in the URL or the options)
    logs in with SASL."""
    options.refuse(
        "queue", "exchange", because="--queue and --exchange are for RabbitMQ; Kafka takes --topic"
    )
    if options.topic is None and options.source_topic is None:
        raise StoreUsageError("name the dead-letter topic: --topic T.dlq or --source-topic T")
    if options.topic is not None and options.source_topic is not None:
        raise StoreUsageError("give --topic or --source-topic, not both")
    scheme, servers = broker_url.split("://", 1)
    scheme = scheme.lower()
    if options.ssl_context is not None and scheme != TLS_SCHEME:
        raise StoreUsageError(
            "TLS settings (a CA, client certificate or key file) need a TLS URL: "
            "kafka+ssl://host:port"
        )
    servers = servers.strip("/")
    username, password = options.username, options.password
    if "@" in servers:
        credentials, servers = servers.rsplit("@", 1)
        url_user, _, url_password = credentials.partition(":")
        username = username or unquote(url_user) or None
        password = password if password is not None else unquote(url_password) or None
    if not servers:
        raise StoreUsageError(f"no host in {masked_url(broker_url)!r}")
    topic = options.topic
    if topic is None:
        topic = f"{source_stem(options.source_topic or '')}{DEAD_LETTER_SUFFIX}"
    return KafkaDeadLetterStore(
        servers,
        topic,
        replay_group=options.replay_group or DEFAULT_REPLAY_GROUP,
        **kafka_security(
            scheme == TLS_SCHEME, username, password, options.ssl_context, options.sasl_mechanism
        ),
    )


def kafka_security(
    tls: bool,
    username: str | None,
    password: str | None,
    ssl_context: ssl.SSLContext | None,
    sasl_mechanism: str | None,
) -> dict[str, Any]:
    """aiokafka's security options for a `kafka://` (`tls` False) or `kafka+ssl://` URL."""
    options: dict[str, Any] = {}
    if tls:
        options["ssl_context"] = ssl_context or ssl.create_default_context()
    if username is None:
        if password is not None or sasl_mechanism is not None:
            raise StoreUsageError("a password or SASL mechanism for Kafka needs a user name")
        options["security_protocol"] = "SSL" if tls else "PLAINTEXT"
        return options
    options["security_protocol"] = "SASL_SSL" if tls else "SASL_PLAINTEXT"
    options["sasl_mechanism"] = sasl_mechanism or DEFAULT_SASL_MECHANISM
    options["sasl_plain_username"] = username
    options["sasl_plain_password"] = password or ""
    return options

