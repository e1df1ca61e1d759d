"""`open_store()`: a `DeadLetterStore` from a broker URL, as the CLI takes it."""

from __future__ import annotations

from urllib.parse import SplitResult, urlsplit

from dispytch.credentials import masked_url
from dispytch.deadletters.store import DeadLetterStore

KAFKA_SCHEMES = ("kafka",)
AMQP_SCHEMES = ("amqp", "amqps")
DEAD_LETTER_SUFFIX = ".dlq"


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
) -> DeadLetterStore:
    """The store for `broker_url`:

    - `kafka://host:9092[,host2:9092]`: the dead-letter topic `topic`, or `<source_topic>.dlq`;
      `replay_group` names the group that records replay progress;
    - `amqp://user:password@host:5672/vhost` (or `amqps://`): the dead-letter queue `queue`
      (default `dispytch.dlq`), replayed through `exchange` (default: the queue's name
      without `.dlq`). `source_topic` is not a destination on RabbitMQ (one queue holds the
      dead letters of every topic): filter with `LetterFilter(original_topics=...)` instead.
    """
    parts = _split(broker_url)
    scheme = parts.scheme.lower()
    if scheme in KAFKA_SCHEMES:
        if queue is not None or exchange is not None:
            raise StoreUsageError("--queue and --exchange are for RabbitMQ; Kafka takes --topic")
        if topic is None and source_topic is None:
            raise StoreUsageError("name the dead-letter topic: --topic T.dlq or --source-topic T")
        if topic is not None and source_topic is not None:
            raise StoreUsageError("give --topic or --source-topic, not both")
        from dispytch.deadletters.kafka import DEFAULT_REPLAY_GROUP, KafkaDeadLetterStore

        servers = broker_url.split("://", 1)[1].strip("/")
        if not servers:
            raise StoreUsageError(f"no host in {masked_url(broker_url)!r}")
        if "@" in servers:
            raise StoreUsageError(
                f"{masked_url(broker_url)!r}: a kafka:// URL takes no credentials; "
                "use KafkaDeadLetterStore(..., sasl_plain_username=..., sasl_plain_password=...)"
            )
        return KafkaDeadLetterStore(
            servers,
            topic if topic is not None else f"{source_topic}{DEAD_LETTER_SUFFIX}",
            replay_group=replay_group or DEFAULT_REPLAY_GROUP,
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

        return RabbitMQDeadLetterStore(
            broker_url, queue or DEFAULT_DEAD_LETTER_QUEUE, exchange=exchange
        )
    raise StoreUsageError(
        f"unsupported broker URL {masked_url(broker_url)!r}: use kafka://host:port or amqp://..."
    )


def _split(broker_url: str) -> SplitResult:
    """The URL's parts, once it is known to parse (its port included); errors show it masked."""
    try:
        parts = urlsplit(broker_url)
        if parts.scheme.lower() not in KAFKA_SCHEMES:  # Kafka lists several host:port pairs
            _ = parts.port
    except ValueError as error:
        raise StoreUsageError(f"invalid broker URL {masked_url(broker_url)!r}: {error}") from None
    return parts
