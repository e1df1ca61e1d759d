"""The one module that reads aiokafka's private attributes.

aiokafka has no public way to ask a client it did not create for what Dispytch needs when it
wraps one the user made (`KafkaConsumer(consumer)`, `KafkaProducer(producer)`): its group,
whether it is started or subscribed (and to what pattern), its connection settings, and to put
Dispytch's rebalance listener in front of the user's; nor to give up the records a producer
still holds when it must close within a bound. Everything else uses the public API.

`READS` lists every attribute read here; `tests/kafka/test_aiokafka_private.py` checks each one
on the installed aiokafka, so an aiokafka release that renames one fails the tests loudly.
pyproject.toml bounds aiokafka to the versions checked. Each function falls back to the safe
answer when an attribute is missing, so that a user who forces another version gets warnings
and degraded wrapping rather than crashes.
"""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

#: (client class, attribute path) of every private attribute read below
READS: tuple[tuple[type, str], ...] = (
    (AIOKafkaConsumer, "_client._bootstrap_servers"),
    (AIOKafkaConsumer, "_group_id"),
    (AIOKafkaConsumer, "_enable_auto_commit"),
    (AIOKafkaConsumer, "_subscription._subscribed_pattern"),
    (AIOKafkaConsumer, "_subscription._listener"),
    (AIOKafkaConsumer, "_fetcher"),
    (AIOKafkaProducer, "_sender.sender_task"),
    (AIOKafkaProducer, "_message_accumulator._batches"),
    (AIOKafkaProducer, "_message_accumulator._pending_batches"),
    (AIOKafkaProducer, "_message_accumulator.fail_all"),
)


def connection_settings(client: AIOKafkaConsumer, names: frozenset[str]) -> dict[str, Any]:
    """`bootstrap_servers` and the options among `names` a wrapped consumer was made with
    (its `AIOKafkaClient` keeps them as `_<name>`); empty when they cannot be read."""
    kafka_client = getattr(client, "_client", None)
    servers = getattr(kafka_client, "_bootstrap_servers", None)
    if servers is None:
        return {}
    options: dict[str, Any] = {"bootstrap_servers": servers}
    for name in names:
        value = getattr(kafka_client, "_" + name, None)
        if value is not None:
            options[name] = value
    return options


def group_id(client: AIOKafkaConsumer) -> str | None:
    group: str | None = getattr(client, "_group_id", None)
    return group


def auto_commit_enabled(client: AIOKafkaConsumer) -> bool:
    return bool(getattr(client, "_enable_auto_commit", False))


def subscription(client: AIOKafkaConsumer) -> tuple[frozenset[str], str | None] | None:
    """The topics or the pattern a client is subscribed to; None when it is not subscribed.
    The topics are public (`subscription()`); a pattern is not."""
    pattern = getattr(getattr(client, "_subscription", None), "_subscribed_pattern", None)
    if pattern is not None:
        return frozenset(), pattern.pattern
    topics = frozenset(client.subscription())
    return (topics, None) if topics else None


def put_listener_first(client: AIOKafkaConsumer, listener: Any) -> Any:
    """Put `listener` in front of the rebalance listener the user subscribed with (returned,
    for `listener` to call on)."""
    state = client._subscription
    previous = getattr(state, "_listener", None)
    state._listener = listener
    return previous


def consumer_started(client: AIOKafkaConsumer) -> bool:
    return getattr(client, "_fetcher", None) is not None


def producer_started(client: AIOKafkaProducer | None) -> bool:
    sender = getattr(client, "_sender", None)
    return getattr(sender, "sender_task", None) is not None


def abandon_pending_records(client: AIOKafkaProducer, error: Exception) -> int:
    """Fail with `error` every record the producer holds (queued, or sent and not confirmed)
    and return how many: its `stop()`, which waits for them without end, then goes on."""
    accumulator = getattr(client, "_message_accumulator", None)
    if accumulator is None:
        return 0
    batches = [batch for queued in accumulator._batches.values() for batch in queued]
    batches.extend(accumulator._pending_batches)
    count: int = sum(batch.record_count for batch in batches)
    accumulator.fail_all(error)
    return count
