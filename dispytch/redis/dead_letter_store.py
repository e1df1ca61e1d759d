"""`RedisDeadLetterStore`: the dead letters in a Redis dead-letter stream (`<topic>.dlq`).

Reading is XRANGE (it consumes nothing). Replay XADDs the letter's bytes and headers, less
the reason, to the original topic's stream, and only once Redis answered deletes the letter
(XDEL). A replay interrupted between the two leaves the letter in place: replayed again next
time, so the group may see it twice (at least once, as everywhere).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from dispytch.backends.base import OutgoingMessage
from dispytch.credentials import masked_url
from dispytch.deadletters.errors import DeadLetterSourceError, NotReplayableError
from dispytch.deadletters.letter import DeadLetter, decode_envelope
from dispytch.deadletters.store import DeadLetterStore
from dispytch.deadletters.url import StoreOptions, StoreUsageError
from dispytch.reasons import DeadLetterReason
from dispytch.redis._client import CONNECTION_ERRORS, connect, unavailable
from dispytch.redis._layout import (
    GROUP_HEADER,
    HEADERS_FIELD,
    KEY_FIELD,
    VALUE_FIELD,
    dead_letter_stream,
    decode_headers,
)
from dispytch.redis.producer import RedisStreamProducer

_PAGE = 200


class RedisDeadLetterStore(DeadLetterStore):
    """The dead letters of the stream `stream` (`<topic>.dlq` for the topic `topic`)."""

    def __init__(
        self, url: str, stream: str, *, connect_timeout: float = 10.0, timeout: float = 30.0
    ) -> None:
        self.stream = stream
        self.source = f"Redis stream {stream!r}"
        self._url = url
        self._connect_timeout = connect_timeout
        self._timeout = timeout
        self._client: Any = None
        self._producer: RedisStreamProducer | None = None

    def __repr__(self) -> str:
        return f"RedisDeadLetterStore({masked_url(self._url)!r}, {self.stream!r})"

    async def read(self, *, include_replayed: bool = False) -> AsyncGenerator[DeadLetter, None]:
        client = await self._ready()
        try:
            await self._check_exists(client)
            last = await client.xrevrange(self.stream, "+", "-", count=1)
        except CONNECTION_ERRORS as error:
            raise unavailable(f"reading {self.stream!r}", error) from error
        if not last:
            return
        end = last[0][0]
        start: bytes | str = "-"
        index = 0
        while True:
            try:
                page = await client.xrange(self.stream, start, end, count=_PAGE)
            except CONNECTION_ERRORS as error:
                raise unavailable(f"reading {self.stream!r}", error) from error
            for entry_id, fields in page:
                yield self._letter(index, entry_id, fields or {})
                index += 1
            if len(page) < _PAGE:
                return
            start = b"(" + page[-1][0]

    async def pending(self) -> int:
        client = await self._ready()
        try:
            await self._check_exists(client)
            return int(await client.xlen(self.stream))
        except CONNECTION_ERRORS as error:
            raise unavailable(f"counting {self.stream!r}", error) from error

    async def replay(self, letter: DeadLetter) -> None:
        topic = letter.original_topic
        if topic is None:
            raise NotReplayableError(f"{letter.location} has no dispytch-dlq-original-topic")
        client = await self._ready()
        if self._producer is None:
            self._producer = RedisStreamProducer(client, timeout=self._timeout)
        headers = letter.replay_headers()
        headers.pop(GROUP_HEADER, None)
        await self._producer.send(OutgoingMessage(topic, letter.value, letter.key, headers))
        try:
            await client.xdel(self.stream, letter.handle)
        except CONNECTION_ERRORS as error:
            raise unavailable(
                f"{letter.location} was replayed but could not be removed (it is replayed "
                "again next time)",
                error,
            ) from error

    async def _check_exists(self, client: Any) -> None:
        if not await client.exists(self.stream):
            raise DeadLetterSourceError(
                f"Redis has no stream {self.stream!r} (nothing was dead-lettered there yet, "
                "or the name is wrong)"
            )

    async def close(self) -> None:
        client, self._client = self._client, None
        self._producer = None
        if client is not None:
            await client.aclose()

    async def _ready(self) -> Any:
        if self._client is None:
            self._client = await connect(
                self._url, timeout=self._connect_timeout, what="the Redis dead-letter store"
            )
        return self._client

    def _letter(self, index: int, entry_id: bytes, fields: dict[bytes, bytes]) -> DeadLetter:
        headers = decode_headers(fields.get(HEADERS_FIELD))
        value = bytes(fields.get(VALUE_FIELD) or b"")
        envelope, envelope_error = decode_envelope(value, headers)
        ident = entry_id.decode(errors="replace")
        millis = ident.partition("-")[0]
        return DeadLetter(
            index=index,
            location=f"{self.stream}#{ident}",
            value=value,
            key=fields.get(KEY_FIELD),
            headers=headers,
            reason=DeadLetterReason.from_headers(headers),
            envelope=envelope,
            envelope_error=envelope_error,
            timestamp_ms=int(millis) if millis.isdigit() else None,
            metadata={"stream": self.stream, "entry_id": ident, "group": headers.get(GROUP_HEADER)},
            handle=entry_id,
        )


def open_from_url(broker_url: str, options: StoreOptions) -> RedisDeadLetterStore:
    """The store of `redis://[:password@]host:6379/0` or `rediss://...` (the `redis` and
    `rediss` entries of `dispytch.dead_letter_stores`): the stream `options.topic`, or
    `<options.source_topic>.dlq`."""
    options.refuse("queue", "exchange", because="--queue and --exchange are for RabbitMQ")
    options.refuse("replay_group", "sasl_mechanism", because="that option is for Kafka")
    if options.ssl_context is not None:
        raise StoreUsageError("TLS files are not supported for Redis: use a rediss:// URL")
    try:
        parts = urlsplit(broker_url)
        _ = parts.port
    except ValueError as error:
        raise StoreUsageError(f"invalid broker URL {masked_url(broker_url)!r}: {error}") from None
    if options.topic:
        stream = options.topic
    elif options.source_topic:
        stream = dead_letter_stream(options.source_topic)
    else:
        raise StoreUsageError(
            "name the dead-letter stream (--topic orders.dlq) or the topic (--source-topic orders)"
        )
    if options.username is not None or options.password is not None:
        user = quote(options.username or parts.username or "", safe="")
        password = options.password if options.password is not None else parts.password
        secret = "" if password is None else ":" + quote(password, safe="")
        host = parts.hostname or "127.0.0.1"
        netloc = f"{user}{secret}@{host}" + (f":{parts.port}" if parts.port else "")
        broker_url = urlunsplit(parts._replace(netloc=netloc))
    return RedisDeadLetterStore(broker_url, stream)
