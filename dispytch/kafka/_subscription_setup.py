"""Choosing a consumer's retry topic and subscribing its client on `start()`.

The handler topics (or the given topics or pattern) are subscribed, plus the retry topic when
it exists or may be created; a wrapped client that is already subscribed keeps its subscription
and its rebalance listener, which is called after ours.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer

from dispytch.backends.base import Capabilities, Subscription
from dispytch.kafka._client import install_listener, subscribed_topics
from dispytch.kafka._commit import OffsetCommitter
from dispytch.kafka._dead_letters import DeadLetterPublisher, per_pattern_namer
from dispytch.kafka._fetch import RecordFetcher
from dispytch.kafka._rebalance import CommittingRebalanceListener
from dispytch.kafka._retry import DEFAULT_RETRY_SUFFIX, RetryScheduler
from dispytch.kafka._retry_topic import ensure_retry_topic
from dispytch.kafka._subscribe import SubscriptionPlan, plan_subscription

KAFKA_CAPABILITIES = Capabilities(
    persistent=True,
    ordered_per_key=True,
    consumer_groups=True,
    redelivers_on_nack=True,
    native_delay=True,
    max_message_bytes=1_000_000,
    topic_delimiter=".",
)
#: a consumer without a retry topic (delayed_retries=False, or no group) cannot retry later
NO_RETRY_TOPIC_CAPABILITIES = replace(KAFKA_CAPABILITIES, native_delay=False)


class SubscribingConsumer(Protocol):
    """The parts of the consumer that choosing the retry topic and subscribing work with (a
    protocol, so that this module does not import the consumer's)."""

    capabilities: Capabilities
    reads_topic: Callable[[str], bool]
    _fetcher: RecordFetcher
    _committer: OffsetCommitter
    _scheduler: RetryScheduler | None
    _revoke_timeout: float
    _dead_letter_suffix: str | None
    _dead_letters: DeadLetterPublisher
    _topics: tuple[str, ...] | None
    _pattern: str | None
    _user_rebalance_listener: Any
    _delayed_retries: bool
    _retry_topic_option: str | None
    _retry_topic: str | None
    _retry_partitions: int | None
    _create_retry_topic: bool
    _retries_wanted: bool
    _retry_topic_read: bool

    def _connection_options(self) -> dict[str, Any]: ...


def choose_retry_topic(consumer: SubscribingConsumer, group: str | None) -> None:
    if not consumer._delayed_retries or group is None:
        consumer._retry_topic = None
        consumer.capabilities = NO_RETRY_TOPIC_CAPABILITIES
        return
    consumer._retry_topic = consumer._retry_topic_option or group + DEFAULT_RETRY_SUFFIX
    consumer._scheduler = RetryScheduler(consumer._retry_topic)
    consumer.capabilities = KAFKA_CAPABILITIES


async def subscribe(
    consumer: SubscribingConsumer,
    client: AIOKafkaConsumer,
    subscriptions: Sequence[Subscription],
) -> None:
    """Subscribe to the handler topics (unless the wrapped client already is) plus the
    retry topic, creating that first."""
    listener = CommittingRebalanceListener(
        client,
        consumer._fetcher,
        consumer._committer,
        consumer._scheduler,
        consumer._revoke_timeout,
    )
    current = subscribed_topics(client)
    if current is None:
        suffixes = [s for s in (consumer._dead_letter_suffix, DEFAULT_RETRY_SUFFIX) if s]
        plan = plan_subscription(subscriptions, consumer._topics, consumer._pattern, suffixes)
        if not plan.topics and plan.pattern is None:
            raise ValueError("KafkaConsumer has nothing to subscribe to: no topics, no handlers")
    else:
        topics, pattern = current
        plan = SubscriptionPlan(tuple(sorted(topics)), pattern)
        previous = install_listener(client, listener)
        if isinstance(previous, CommittingRebalanceListener):  # ours, from an earlier start
            previous = consumer._user_rebalance_listener
        else:
            consumer._user_rebalance_listener = previous
        listener.chain(previous)
    retry_topic = consumer._retry_topic
    scheduler = consumer._scheduler
    if retry_topic is not None and scheduler is not None:
        if consumer._create_retry_topic:
            # without handlers that retry later, only read a retry topic left from before
            exists = await ensure_retry_topic(
                consumer._connection_options(),
                retry_topic,
                consumer._retry_partitions,
                plan.accepts(),
                () if plan.pattern is not None else plan.topics,
                create=consumer._retries_wanted,
            )
            if not exists:
                retry_topic = None
        if retry_topic is not None:
            scheduler.attach(client)
    consumer._retry_topic_read = retry_topic is not None
    suffix = consumer._dead_letter_suffix
    if suffix is not None and consumer._topics is None and consumer._pattern is None:
        consumer._dead_letters.topic_for = per_pattern_namer(subscriptions, suffix)
    accepts = plan.accepts()
    consumer.reads_topic = lambda topic: topic != retry_topic and accepts(topic)
    full = plan.with_topic(retry_topic)
    if current is not None and full == plan:
        return
    if full.pattern is not None:
        client.subscribe(pattern=full.pattern, listener=listener)
    else:
        client.subscribe(topics=list(full.topics), listener=listener)
