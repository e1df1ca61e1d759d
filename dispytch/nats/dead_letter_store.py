"""`NatsDeadLetterStore`: the dead letters in a JetStream dead-letter stream.

The NATS backend stores every dead letter of the event stream `<stream>` in `<stream>_DLQ`, on
the subject `dispytch-dlq.<stream>.<topic>`. Reading gets the stored messages by sequence
number (nothing is consumed); replay publishes the original bytes to the original topic, waits
for the stream's acknowledgement, and only then deletes the letter from the dead-letter stream.
`dispytch dlq --broker nats://host:4222/<stream>` opens it (`DISPYTCH` without a path).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from urllib.parse import quote, urlsplit, urlunsplit

from dispytch.backends.base import OutgoingMessage
from dispytch.credentials import masked_url
from dispytch.deadletters.errors import DeadLetterSourceError, NotReplayableError
from dispytch.deadletters.letter import DeadLetter, decode_envelope
from dispytch.deadletters.store import DeadLetterStore
from dispytch.deadletters.url import StoreOptions, StoreUsageError
from dispytch.nats._client import NATS_ERRORS, Client, JetStreamContext, connect, nats
from dispytch.nats.headers import from_nats
from dispytch.nats.producer import NatsProducer
from dispytch.nats.topology import DEFAULT_STREAM, JetStreamTopology
from dispytch.reasons import DeadLetterReason


class NatsDeadLetterStore(DeadLetterStore):
    """Dead letters of the event stream `stream` (its `<stream>_DLQ`), every topic's."""

    holds_every_topic = True

    def __init__(self, url: str, stream: str = DEFAULT_STREAM) -> None:
        self.topology = JetStreamTopology(stream=stream, subjects=None)
        self.source = f"NATS stream {self.topology.dead_letter_stream!r}"
        self._url = url
        self._client: Client | None = None
        self._js: JetStreamContext | None = None
        self._producer: NatsProducer | None = None

    def __repr__(self) -> str:
        return f"NatsDeadLetterStore({masked_url(self._url)!r}, {self.topology.stream!r})"

    async def _stream(self) -> tuple[JetStreamContext, int, int]:
        if self._js is None:
            self._client = await connect(self._url)
            self._js = self._client.jetstream()
        try:
            info = await self._js.stream_info(self.topology.dead_letter_stream)
        except nats.js.errors.NotFoundError:
            raise DeadLetterSourceError(
                f"no stream {self.topology.dead_letter_stream!r} on the NATS server (the "
                f"backend creates it when a consumer of stream {self.topology.stream!r} starts)"
            ) from None
        except NATS_ERRORS as exc:
            raise DeadLetterSourceError(f"cannot read {self.source}: {exc!r}") from exc
        return self._js, int(info.state.first_seq or 0), int(info.state.last_seq or 0)

    async def read(self, *, include_replayed: bool = False) -> AsyncGenerator[DeadLetter, None]:
        js, first, last = await self._stream()
        prefix = self.topology.dead_letter_prefix + "."
        index = 0
        for sequence in range(max(first, 1), last + 1):
            try:
                stored = await js.get_msg(self.topology.dead_letter_stream, sequence)
            except nats.js.errors.NotFoundError:
                continue  # deleted (replayed) in between
            headers, key = from_nats(stored.headers)
            value = stored.data or b""
            subject = str(stored.subject or "")
            envelope, error = decode_envelope(value, headers)
            yield DeadLetter(
                index,
                f"{self.topology.dead_letter_stream}#{sequence}",
                value,
                key,
                headers,
                DeadLetterReason.from_headers(headers),
                envelope,
                error,
                metadata={"sequence": sequence, "subject": subject},
                handle=(sequence, subject[len(prefix) :] if subject.startswith(prefix) else None),
            )
            index += 1

    async def pending(self) -> int:
        js, _, _ = await self._stream()
        info = await js.stream_info(self.topology.dead_letter_stream)
        return int(info.state.messages or 0)

    async def replay(self, letter: DeadLetter) -> None:
        sequence, subject_topic = letter.handle
        topic = letter.original_topic or subject_topic
        if not topic:
            raise NotReplayableError(f"dead letter {letter.location} names no original topic")
        if self._producer is None:
            self._producer = NatsProducer(self._url)
        await self._producer.send(
            OutgoingMessage(topic, letter.value, letter.key, letter.replay_headers())
        )
        js, _, _ = await self._stream()
        await js.delete_msg(self.topology.dead_letter_stream, sequence)

    async def close(self) -> None:
        if self._producer is not None:
            await self._producer.close()
            self._producer = None
        client, self._client, self._js = self._client, None, None
        if client is not None:
            await client.close()


def open_from_url(broker_url: str, options: StoreOptions) -> NatsDeadLetterStore:
    """The store of `nats://[user:password@]host:4222[/<stream>]` (the `nats` entry of the
    `dispytch.dead_letter_stores` table). The stream holds every topic's letters:
    `source_topic` is left to the caller's filter."""
    options.refuse("topic", because="--topic is for Kafka; NATS names the stream in the URL path")
    options.refuse("queue", "exchange", because="--queue and --exchange are for RabbitMQ")
    options.refuse("replay_group", "sasl_mechanism", because="that option is for Kafka")
    options.refuse("ssl_context", because="TLS for the NATS dead-letter store is not supported")
    try:
        parts = urlsplit(broker_url)
        _ = parts.port
    except ValueError as error:
        raise StoreUsageError(f"invalid broker URL {masked_url(broker_url)!r}: {error}") from None
    stream = parts.path.strip("/") or DEFAULT_STREAM
    try:
        JetStreamTopology(stream=stream, subjects=None)
    except ValueError as error:
        raise StoreUsageError(str(error)) from None
    user = options.username if options.username is not None else parts.username
    password = options.password if options.password is not None else parts.password
    host = parts.hostname or "127.0.0.1"
    netloc = f"{host}:{parts.port or 4222}"
    if user is not None:
        auth = quote(user, safe="")
        if password is not None:
            auth += ":" + quote(password, safe="")
        netloc = f"{auth}@{netloc}"
    return NatsDeadLetterStore(urlunsplit(("nats", netloc, "", "", "")), stream)
