"""`open_store()`: a `DeadLetterStore` from a broker URL, as the CLI takes it."""

from __future__ import annotations

import ssl
from typing import Any
from urllib.parse import SplitResult, unquote, urlsplit

from dispytch.credentials import masked_url
from dispytch.deadletters.store import DeadLetterStore

KAFKA_SCHEMES = ("kafka", "kafka+ssl")
AMQP_SCHEMES = ("amqp", "amqps")
TLS_SCHEMES = ("kafka+ssl", "amqps")
DEAD_LETTER_SUFFIX = ".dlq"
DEFAULT_SASL_MECHANISM = "SCRAM-SHA-512"


class StoreUsageError(ValueError):
    """The URL and options do not name a dead-letter destination."""


def open_store(
    broker_url: str,
    *,
    topic: str | None = None,
    source_topic: str | None = None,
    queue: str | None = None,
    exchange: str | None = None,
    replay_group: str | None = None,
    username: str | None = None,
    password: str | None = None,
    ssl_context: ssl.SSLContext | None = None,
    sasl_mechanism: str | None = None,
) -> DeadLetterStore:
    """The store for `broker_url`:

    - `kafka://host:9092[,host2:9092]` (`kafka+ssl://` for TLS): the dead-letter topic
      `topic`, or `<source_topic>.dlq`; `replay_group` names the group that records replay
      progress. With a user name (`kafka+ssl://user:password@host:9094`, or `username=`), it
      logs in with SASL (`sasl_mechanism`, default SCRAM-SHA-512);
    - `amqp://user:password@host:5672/vhost` (`amqps://` for TLS): the dead-letter queue
      `queue` (default `dispytch.dlq`), replayed through `exchange` (default: the queue's name
      without `.dlq`). `source_topic` is not a destination on RabbitMQ (one queue holds the
      dead letters of every topic): filter with `LetterFilter(original_topics=...)` instead.

    `username` and `password` replace those of the URL; `ssl_context` sets up TLS (for a TLS
    URL only; without it, TLS verifies against the system's CA certificates).
    """
    scheme = _split(broker_url).scheme.lower()
    if ssl_context is not None and scheme not in TLS_SCHEMES:
        raise StoreUsageError(
            "TLS settings (a CA, client certificate or key file) need a TLS URL: "
            "kafka+ssl://host:port or amqps://host:port/"
        )
    if scheme in KAFKA_SCHEMES:
        if queue is not None or exchange is not None:
            raise StoreUsageError("--queue and --exchange are for RabbitMQ; Kafka takes --topic")
        if topic is None and source_topic is None:
            raise StoreUsageError("name the dead-letter topic: --topic T.dlq or --source-topic T")
        if topic is not None and source_topic is not None:
            raise StoreUsageError("give --topic or --source-topic, not both")
        from dispytch.deadletters.kafka import DEFAULT_REPLAY_GROUP, KafkaDeadLetterStore

        servers = broker_url.split("://", 1)[1].strip("/")
        if "@" in servers:
            credentials, servers = servers.rsplit("@", 1)
            url_user, _, url_password = credentials.partition(":")
            username = username or unquote(url_user) or None
            password = password if password is not None else unquote(url_password) or None
        if not servers:
            raise StoreUsageError(f"no host in {masked_url(broker_url)!r}")
        return KafkaDeadLetterStore(
            servers,
            topic if topic is not None else f"{source_topic}{DEAD_LETTER_SUFFIX}",
            replay_group=replay_group or DEFAULT_REPLAY_GROUP,
            **kafka_security(scheme, username, password, ssl_context, sasl_mechanism),
        )
    if scheme in AMQP_SCHEMES:
        if topic is not None:
            raise StoreUsageError("--topic is for Kafka; RabbitMQ takes --queue")
        if replay_group is not None:
            raise StoreUsageError("--replay-group is for Kafka")
        from dispytch.deadletters.rabbitmq import (
            DEFAULT_DEAD_LETTER_QUEUE,
            RabbitMQDeadLetterStore,
        )

        if sasl_mechanism is not None:
            raise StoreUsageError("--sasl-mechanism is for Kafka")
        return RabbitMQDeadLetterStore(
            _with_credentials(broker_url, username, password),
            queue or DEFAULT_DEAD_LETTER_QUEUE,
            exchange=exchange,
            ssl_context=ssl_context,
        )
    raise StoreUsageError(
        f"unsupported broker URL {masked_url(broker_url)!r}: use kafka://host:port, "
        "kafka+ssl://host:port, amqp://... or amqps://..."
    )


def kafka_security(
    scheme: str,
    username: str | None,
    password: str | None,
    ssl_context: ssl.SSLContext | None,
    sasl_mechanism: str | None,
) -> dict[str, Any]:
    """aiokafka's security options for a `kafka://` or `kafka+ssl://` URL."""
    tls = scheme == "kafka+ssl"
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


def _with_credentials(url: str, username: str | None, password: str | None) -> str:
    """`url` with `username` / `password` in place of its own (percent-encoded)."""
    if username is None and password is None:
        return url
    from yarl import URL  # a dependency of aio-pika, like this whole branch

    parsed = URL(url)
    user = username if username is not None else parsed.user
    if user is None:
        raise StoreUsageError("a password for RabbitMQ needs a user name")
    given = password if password is not None else parsed.password
    return str(parsed.with_user(user).with_password(given))


def _split(broker_url: str) -> SplitResult:
    """The URL's parts, once it is known to parse (its port included); errors show it masked."""
    try:
        parts = urlsplit(broker_url)
        if parts.scheme.lower() not in KAFKA_SCHEMES:  # Kafka lists several host:port pairs
            _ = parts.port
    except ValueError as error:
        raise StoreUsageError(f"invalid broker URL {masked_url(broker_url)!r}: {error}") from None
    return parts
