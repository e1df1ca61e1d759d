"""`KafkaConsumer`: hands out Kafka records one at a time and commits at-least-once.

The work is split into modules: `_fetch` (getmany into a buffer), `_commit` (committing what
is settled), `_offsets` (which offset may be committed), `_redelivery` (reading a partition
again after a nack), `_retry` / `_retry_topic` (delayed retries through the group's retry
topic), `_dead_letters`, `_subscribe`, `_subscription_setup` (choosing the retry topic and
subscribing the client) and `_client`. This module wires them together and handles
rebalances: a revoked partition is given `revoke_timeout` seconds to settle what is running,
then what is settled is committed and its unsettled deliveries are forgotten (the next owner
gets them again).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer

from dispytch.backends.base import Consumer, Delivery, ListenerNeeds, Subscription
from dispytch.errors import ConsumerStoppedError
from dispytch.kafka._client import (
    bounded,
    connection_options,
    describe_consumer,
    group_id,
    is_started,
    quiet_stop,
    reaches_broker,
    warn_about_wrapped_client,
)
from dispytch.kafka._commit import COMMIT_EXCEPTIONS, OffsetCommitter, rebalance_limit
from dispytch.kafka._dead_letters import (
    DEFAULT_DEAD_LETTER_SUFFIX,
    DeadLetterPublisher,
    dead_letter_topic_namer,
    stored_headers,
)
from dispytch.kafka._delivery import KafkaDelivery
from dispytch.kafka._errors import KAFKA_EXCEPTIONS
from dispytch.kafka._fetch import RecordFetcher
from dispytch.kafka._offsets import CommitTracker, PartitionOffsets
from dispytch.kafka._publisher import RecordPublisher
from dispytch.kafka._redelivery import Rewinder
from dispytch.kafka._retry import RetryScheduler, retry_headers
from dispytch.kafka._secure import start_error, warn_if_insecure
from dispytch.kafka._subscribe import with_pattern_refresh
from dispytch.kafka._subscription_setup import (
    KAFKA_CAPABILITIES,
    NO_RETRY_TOPIC_CAPABILITIES,
    choose_retry_topic,
    subscribe,
)
from dispytch.kafka._topic_names import check_subscription

log = logging.getLogger("dispytch.kafka")

#: defaults for consumers Dispytch creates (enable_auto_commit is always False)
OWNED_CONSUMER_DEFAULTS: dict[str, Any] = {"auto_offset_reset": "earliest"}

__all__ = [
    "COMMIT_EXCEPTIONS",
    "KAFKA_CAPABILITIES",
    "NO_RETRY_TOPIC_CAPABILITIES",
    "KafkaConsumer",
]


def _NO_TOPIC(topic: str) -> bool:
    return False


class KafkaConsumer(Consumer):
    """A `Consumer` on an aiokafka `AIOKafkaConsumer`.

    `KafkaConsumer(client)` wraps a client you created (as in dispytch 0.10): it should already
    be subscribed (it is subscribed to the listener's topics when it is not), and it is started
    here when you did not start it. Offsets are committed manually; create the client with
    `enable_auto_commit=False`, or at-least-once cannot be guaranteed. `close()` stops the
    client only when Dispytch started it.

    `KafkaConsumer.create(bootstrap_servers, group_id, ...)` creates and owns the client.

    Dead letters go to `dead_letter_topic(topic)` when given, else to `topic + dead_letter_suffix`
    (default `<topic>.dlq`); those of a wildcard handler topic go to its literal start plus the
    suffix (`orders.{customer_id}`: `orders.dlq`). Delayed retries go through `retry_topic` (default
    `<group_id>.retry`), created with `retry_partitions` partitions when missing (unless
    `create_retry_topic=False`) and read along with the handler topics; `delayed_retries=False`
    turns them off. Both are stored through `dead_letter_producer` when given, else through a
    producer created on first use with the consumer's connection settings.

    Settled offsets are committed every `commit_interval` seconds (and, with `commit_every`,
    also after that many settlements): see `dispytch.kafka._commit` for why time is the default.
    """

    capabilities = KAFKA_CAPABILITIES

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        *,
        dead_letter_topic: Callable[[str], str] | None = None,
        dead_letter_suffix: str = DEFAULT_DEAD_LETTER_SUFFIX,
        dead_letter_producer: Any = None,
        commit_interval: float = 0.5,
        commit_every: int | None = None,
        revoke_timeout: float = 5.0,
        dead_letter_timeout: float = 30.0,
        fetch_batch: int = 500,
        delayed_retries: bool = True,
        retry_topic: str | None = None,
        retry_partitions: int | None = None,
        create_retry_topic: bool = True,
    ) -> None:
        self._client: AIOKafkaConsumer | None = consumer
        self._create_options: dict[str, Any] | None = None
        self._topics: tuple[str, ...] | None = None
        self._pattern: str | None = None
        self._metadata_age_given = False
        self._owns_client = False
        self._dead_letter_suffix = None if dead_letter_topic is not None else dead_letter_suffix
        self._publisher = RecordPublisher(
            dead_letter_producer, self._connection_options, dead_letter_timeout
        )
        self._dead_letters = DeadLetterPublisher(
            dead_letter_topic_namer(dead_letter_topic, dead_letter_suffix), self._publisher
        )
        self._delayed_retries = delayed_retries
        self._retry_topic_option = retry_topic
        self._retry_partitions = retry_partitions
        self._create_retry_topic = create_retry_topic
        #: the listener has handlers with delayed retries (see `prepare`)
        self._retries_wanted = True
        self._drain_grace: float | None = None  # the listener's shutdown_grace (`prepare`)
        #: the retry topic exists and is read: `retry_later` may store there
        self._retry_topic_read = False
        #: the topics this consumer reads, besides its retry topic: a retry copy may only
        #: claim one of them as its original topic
        self.reads_topic: Callable[[str], bool] = _NO_TOPIC
        self._retry_topic: str | None = None
        self._scheduler: RetryScheduler | None = None
        self._revoke_timeout = revoke_timeout
        self._tracker = CommitTracker()
        self._committer = OffsetCommitter(self._tracker, commit_interval, commit_every)
        self._rewinder = Rewinder(self)
        self._fetcher = RecordFetcher(fetch_batch, self._rewinder.admit)
        self._started = False
        self._stopped = False
        self._closed = False
        #: a wrapped client that Dispytch stopped: aiokafka cannot start it again
        self._client_spent = False
        #: the rebalance listener the user subscribed a wrapped client with (called after ours)
        self._user_rebalance_listener: Any = None
        self._stop_signal: asyncio.Future[None] | None = None
        if consumer is not None:
            choose_retry_topic(self, group_id(consumer, None))

    @classmethod
    def create(
        cls,
        bootstrap_servers: str | list[str],
        group_id: str,
        *,
        topics: Sequence[str] | None = None,
        pattern: str | None = None,
        dead_letter_topic: Callable[[str], str] | None = None,
        dead_letter_suffix: str = DEFAULT_DEAD_LETTER_SUFFIX,
        dead_letter_producer: Any = None,
        commit_interval: float = 0.5,
        commit_every: int | None = None,
        revoke_timeout: float = 5.0,
        dead_letter_timeout: float = 30.0,
        fetch_batch: int = 500,
        delayed_retries: bool = True,
        retry_topic: str | None = None,
        retry_partitions: int | None = None,
        create_retry_topic: bool = True,
        **aiokafka_options: Any,
    ) -> KafkaConsumer:
        """A consumer that creates its aiokafka client on `start()` and stops it on `close()`.

        It subscribes to `topics`, or to the regular expression `pattern`, or (neither given)
        to the listener's handler topics; and to its retry topic. `aiokafka_options` go to
        `AIOKafkaConsumer` (TLS and SASL settings too); `auto_offset_reset` defaults to
        "earliest", so a new group reads what was produced before it first started.
        `enable_auto_commit` cannot be turned on.
        """
        if aiokafka_options.get("enable_auto_commit"):
            raise ValueError("Dispytch commits offsets itself: enable_auto_commit must be False")
        if topics and pattern:
            raise ValueError("give topics or pattern, not both")
        self = cls(
            None,  # the client is created on start()
            dead_letter_topic=dead_letter_topic,
            dead_letter_suffix=dead_letter_suffix,
            dead_letter_producer=dead_letter_producer,
            commit_interval=commit_interval,
            commit_every=commit_every,
            revoke_timeout=revoke_timeout,
            dead_letter_timeout=dead_letter_timeout,
            fetch_batch=fetch_batch,
            delayed_retries=delayed_retries,
            retry_topic=retry_topic,
            retry_partitions=retry_partitions,
            create_retry_topic=create_retry_topic,
        )
        self._create_options = {
            **OWNED_CONSUMER_DEFAULTS,
            **aiokafka_options,
            "bootstrap_servers": bootstrap_servers,
            "group_id": group_id,
            "enable_auto_commit": False,
        }
        self._topics = tuple(topics) if topics else None
        self._pattern = pattern
        self._metadata_age_given = "metadata_max_age_ms" in aiokafka_options
        choose_retry_topic(self, group_id)
        return self

    def describe(self) -> str:
        return describe_consumer(self._client, self._create_options)

    @property
    def client(self) -> AIOKafkaConsumer | None:
        """The aiokafka consumer (None until `start()` for a consumer made by `create()`)."""
        return self._client

    @property
    def group(self) -> str | None:
        """The consumer group (its `group_id`), for telemetry."""
        return group_id(self._client, self._create_options)

    @property
    def retry_topic(self) -> str | None:
        """The topic delayed retries go through (None: this consumer does not retry later)."""
        return self._retry_topic

    # -- lifecycle ---------------------------------------------------------------------------

    def check_subscription(self, subscription: Subscription) -> None:
        check_subscription(subscription)

    async def start(self, subscriptions: Sequence[Subscription]) -> None:
        """Subscribe and start the client; again after `close()` or a failed start (a new
        client for `create()`; a wrapped client that Dispytch stopped cannot start again)."""
        if self._started:
            return
        if self._client_spent:
            raise ConsumerStoppedError(
                "the wrapped AIOKafkaConsumer was stopped (by close() or a failed start) and "
                "cannot start again: wrap a new one, or use KafkaConsumer.create()"
            )
        self._closed = False
        self._stopped = False
        for subscription in subscriptions:
            check_subscription(subscription)
        if self._create_options is not None:
            self._client = AIOKafkaConsumer(
                **with_pattern_refresh(
                    self._create_options,
                    self._metadata_age_given,
                    self._topics,
                    self._pattern,
                    subscriptions,
                )
            )
            self._owns_client = True
        client = self._client
        assert client is not None
        self._committer.enabled = warn_about_wrapped_client(client)
        warn_if_insecure(self._create_options, "the Kafka consumer")
        try:
            await subscribe(self, client, subscriptions)
            if not is_started(client):
                self._owns_client = True
                try:
                    await client.start()
                except KAFKA_EXCEPTIONS as exc:
                    await quiet_stop(client)
                    error = await start_error(exc, self._create_options, "starting the consumer")
                    raise error from exc
        except BaseException:  # the broker is down, or cancelled (a stop while connecting)
            if self._owns_client:
                await bounded(quiet_stop(client), "stopping the Kafka client")
                self._client_spent = self._create_options is None
            raise
        self._stop_signal = asyncio.get_running_loop().create_future()
        self._committer.start(client)
        self._started = True

    async def receive(self) -> Delivery:
        return (await self.receive_many(1))[0]

    async def receive_many(self, max_messages: int) -> list[Delivery]:
        while True:
            if self._stopped or not self._started:
                raise ConsumerStoppedError("the consumer is stopped")
            if self._fetcher.buffer:
                deliveries = self._hand_out(max(max_messages, 1))
                if deliveries:
                    return deliveries
                continue
            assert self._client is not None
            assert self._stop_signal is not None
            await self._fetcher.fetch(self._client, self._stop_signal)

    def _hand_out(self, max_messages: int) -> list[Delivery]:
        """Deliveries for up to `max_messages` buffered records, a partition's run at a time
        (one offsets lookup per run rather than per record)."""
        deliveries: list[Delivery] = []
        buffer = self._fetcher.buffer
        partition = self._tracker.partition
        committer = self._committer
        retry_topic = self._retry_topic
        while buffer and len(deliveries) < max_messages:
            chunk = buffer[0]
            records = chunk.take(max_messages - len(deliveries))
            if chunk.empty:
                buffer.popleft()
            offsets = partition(chunk.topic, chunk.partition)
            records = offsets.hand_out_many(records)
            new = KafkaDelivery.retried if chunk.topic == retry_topic else KafkaDelivery
            deliveries += [new(self, record, offsets, committer) for record in records]
        return deliveries

    async def check_connection(self, timeout: float) -> bool | None:
        client = self._client
        return self._started and client is not None and await reaches_broker(client, timeout)

    async def stop(self) -> None:
        self._committer.draining(self._drain_grace, rebalance_limit(self._create_options))
        self._stopped = True
        signal = self._stop_signal
        if signal is not None and not signal.done():
            signal.set_result(None)

    async def close(self) -> None:
        """Commit what is settled; stop the client if Dispytch started it (`start()` may follow)."""
        if self._closed:
            return
        await self.stop()
        self._closed = True
        await self._committer.stop()
        await self._fetcher.close()
        await self._rewinder.close()
        if self._scheduler is not None:
            self._scheduler.forget()
        client = self._client
        if client is not None and self._started:
            # aiokafka's commit waits for a group coordinator without end while the broker is
            # down; what this last commit does not store is delivered again (at-least-once)
            await bounded(self._committer.commit(), "the final offset commit")
        self._tracker.forget()
        await bounded(self._publisher.close(), "stopping the dead-letter and retry producer")
        if client is not None and self._owns_client:
            await bounded(quiet_stop(client), "stopping the Kafka client")
            self._client_spent = self._create_options is None
        self._started = False

    # -- settlement (called by KafkaDelivery) ------------------------------------------------

    def _redeliver(self, offsets: PartitionOffsets, offset: int, delay: float | None) -> None:
        self._rewinder.nack(offsets, offset, delay)

    async def _store_dead_letter(
        self, delivery: KafkaDelivery, headers: Mapping[str, str]
    ) -> None:
        await self._dead_letters.publish(
            delivery.topic,
            delivery.value,
            delivery.key,
            stored_headers(headers, delivery.headers, delivery.raw_headers),
        )

    async def _store_retry(
        self, delivery: KafkaDelivery, delay: float, headers: Mapping[str, str]
    ) -> None:
        topic = self._retry_topic
        if topic is None or not self._retry_topic_read:
            raise NotImplementedError(
                "this KafkaConsumer reads no retry topic (delayed_retries=False, no group_id, "
                "or no handler asked for delayed retries when it started)"
            )
        encoded = retry_headers(headers, delivery.raw_headers, delivery.topic, delay)
        await self._publisher.publish(topic, delivery.value, delivery.key, encoded)

    def prepare(self, needs: ListenerNeeds) -> None:
        # Creating `<group>.retry` costs a new group ~35 ms at start: only when wanted. A retry
        # topic left from an earlier run is still read, so its pending retries are not lost.
        self._retries_wanted = needs.delayed_retries
        self._drain_grace = needs.shutdown_grace

    # -- internals ---------------------------------------------------------------------------

    def _connection_options(self) -> dict[str, Any]:
        """Connection settings for the producer and admin client, from the consumer's own."""
        return connection_options(self._create_options, self._client)
