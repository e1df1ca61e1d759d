"""`KafkaConsumer`: hands out Kafka records one at a time and commits at-least-once.

Offsets are committed by a background task every `commit_interval` seconds or after
`commit_every` settlements, whichever comes first, and only up to the first offset of each
partition that is not settled yet (see `_offsets`). A revoked partition is given
`revoke_timeout` seconds to settle what is running, then what is settled is committed and its
unsettled deliveries are forgotten (the next owner gets them again).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeAlias

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka import errors as kafka_errors

from dispytch.backends.base import Capabilities, Consumer, DeadLetterReason, Delivery, Subscription
from dispytch.errors import ConsumerStoppedError
from dispytch.kafka._dead_letters import (
    CONNECTION_OPTIONS,
    DEFAULT_DEAD_LETTER_SUFFIX,
    DeadLetterPublisher,
    dead_letter_topic_namer,
)
from dispytch.kafka._delivery import KafkaDelivery
from dispytch.kafka._errors import KAFKA_EXCEPTIONS, connection_error
from dispytch.kafka._offsets import CommitTracker, PartitionKey, PartitionOffsets
from dispytch.kafka._rebalance import CommittingRebalanceListener
from dispytch.kafka._subscribe import plan_subscription

log = logging.getLogger("dispytch.kafka")

KAFKA_CAPABILITIES = Capabilities(
    persistent=True,
    ordered_per_key=True,
    consumer_groups=True,
    redelivers_on_nack=True,
    native_delay=False,
    max_message_bytes=1_000_000,
)

COMMIT_EXCEPTIONS: tuple[type[BaseException], ...] = (
    *KAFKA_EXCEPTIONS,
    kafka_errors.IllegalOperation,
)

#: defaults for consumers Dispytch creates (enable_auto_commit is always False)
OWNED_CONSUMER_DEFAULTS: dict[str, Any] = {"auto_offset_reset": "earliest"}

#: aiokafka's ConsumerRecord (untyped)
Record: TypeAlias = Any


class KafkaConsumer(Consumer):
    """A `Consumer` on an aiokafka `AIOKafkaConsumer`.

    `KafkaConsumer(client)` wraps a client you created (as in dispytch 0.10): it should already
    be subscribed (it is subscribed to the listener's topics when it is not), and it is started
    here when you did not start it. Offsets are committed manually; create the client with
    `enable_auto_commit=False`, or at-least-once cannot be guaranteed. `close()` stops the
    client only when Dispytch started it.

    `KafkaConsumer.create(bootstrap_servers, group_id, ...)` creates and owns the client.

    Dead letters go to `dead_letter_topic(topic)` when given, else to `topic + dead_letter_suffix`
    (default `<topic>.dlq`), through `dead_letter_producer` when given, else through a producer
    created on first use with the consumer's connection settings.
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
        commit_every: int = 1000,
        revoke_timeout: float = 5.0,
        dead_letter_timeout: float = 30.0,
        fetch_batch: int = 500,
    ) -> None:
        self._client: AIOKafkaConsumer | None = consumer
        self._create_options: dict[str, Any] | None = None
        self._topics: tuple[str, ...] | None = None
        self._pattern: str | None = None
        self._owns_client = False
        self._dead_letter_suffix = None if dead_letter_topic is not None else dead_letter_suffix
        self._dead_letters = DeadLetterPublisher(
            dead_letter_topic_namer(dead_letter_topic, dead_letter_suffix),
            dead_letter_producer,
            self._connection_options,
            dead_letter_timeout,
        )
        self._commit_interval = commit_interval
        self._commit_every = commit_every
        self._revoke_timeout = revoke_timeout
        self._fetch_batch = fetch_batch
        self._tracker = CommitTracker()
        self._buffer: deque[Record] = deque()
        self._started = False
        self._stopped = False
        self._closed = False
        self._can_commit = True
        self._stop_signal: asyncio.Future[None] | None = None
        self._commit_wanted = asyncio.Event()
        self._settled_signal = asyncio.Event()
        self._settled_since_commit = 0
        self._commit_lock = asyncio.Lock()
        self._commit_task: asyncio.Task[None] | None = None
        self._pending_fetch: asyncio.Future[Any] | None = None
        #: counts rebalances, so records fetched before one are not handed out after it
        self._generation = 0
        self._fetch_generation = 0

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
        commit_every: int = 1000,
        revoke_timeout: float = 5.0,
        dead_letter_timeout: float = 30.0,
        fetch_batch: int = 500,
        **aiokafka_options: Any,
    ) -> KafkaConsumer:
        """A consumer that creates its aiokafka client on `start()` and stops it on `close()`.

        It subscribes to `topics`, or to the regular expression `pattern`, or (neither given)
        to the listener's handler topics. `aiokafka_options` go to `AIOKafkaConsumer` (TLS and
        SASL settings too); `auto_offset_reset` defaults to "earliest", so a new group reads
        what was produced before it first started. `enable_auto_commit` cannot be turned on.
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
        return self

    @property
    def client(self) -> AIOKafkaConsumer | None:
        """The aiokafka consumer (None until `start()` for a consumer made by `create()`)."""
        return self._client

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self, subscriptions: Sequence[Subscription]) -> None:
        if self._started:
            return
        if self._closed:
            raise ConsumerStoppedError("the consumer was closed")
        if self._create_options is not None:
            self._client = AIOKafkaConsumer(**self._create_options)
            self._owns_client = True
        client = self._client
        assert client is not None
        listener = CommittingRebalanceListener(self._on_revoked, self._on_assigned)
        if _is_subscribed(client):
            listener.chain(_install_listener(client, listener))
        else:
            self._subscribe(client, subscriptions, listener)
        self._check_wrapped_client(client)
        if not _is_started(client):
            self._owns_client = True
            try:
                await client.start()
            except KAFKA_EXCEPTIONS as exc:
                await _quiet_stop(client)
                raise connection_error(exc, "starting the consumer") from exc
        self._stop_signal = asyncio.get_running_loop().create_future()
        self._commit_task = asyncio.create_task(self._commit_loop(), name="dispytch-kafka-commit")
        self._started = True
        self._stopped = False

    async def receive(self) -> Delivery:
        return (await self.receive_many(1))[0]

    async def receive_many(self, max_messages: int) -> list[Delivery]:
        while True:
            if self._stopped or not self._started:
                raise ConsumerStoppedError("the consumer is stopped")
            deliveries: list[Delivery] = []
            buffer = self._buffer
            partition = self._tracker.partition
            while buffer and len(deliveries) < max_messages:
                record = buffer.popleft()
                offsets = partition(record.topic, record.partition)
                if offsets.hand_out(record.offset):
                    deliveries.append(KafkaDelivery(self, record, offsets))
            if deliveries:
                return deliveries
            await self._fetch()

    async def stop(self) -> None:
        self._stopped = True
        signal = self._stop_signal
        if signal is not None and not signal.done():
            signal.set_result(None)

    async def close(self) -> None:
        if self._closed:
            return
        await self.stop()
        self._closed = True
        for task in (self._commit_task, self._pending_fetch):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self._commit_task = self._pending_fetch = None
        client = self._client
        if client is not None and self._started:
            await self._commit()
        self._tracker.forget()
        self._buffer.clear()
        await self._dead_letters.close()
        if client is not None and self._owns_client:
            await _quiet_stop(client)
        self._started = False

    # -- settlement (called by KafkaDelivery) ------------------------------------------------

    def _settle(self, offsets: PartitionOffsets, offset: int) -> None:
        if offsets.settle(offset):
            self._settled_signal.set()
            self._settled_since_commit += 1
            if self._settled_since_commit >= self._commit_every:
                self._commit_wanted.set()

    def _redeliver(self, offsets: PartitionOffsets, offset: int, delay: float | None) -> None:
        if offsets.nack(offset) is None:
            return
        self._settled_signal.set()
        if delay:
            asyncio.get_running_loop().call_later(delay, self._seek_back, offsets)
        else:
            self._seek_back(offsets)

    def _seek_back(self, offsets: PartitionOffsets) -> None:
        """Read the partition again from its lowest nacked offset."""
        client = self._client
        if offsets.revoked or not offsets.redeliver or client is None or self._closed:
            return
        self._drop_buffered({(offsets.topic, offsets.partition)})
        try:
            client.seek(TopicPartition(offsets.topic, offsets.partition), min(offsets.redeliver))
        except (kafka_errors.IllegalStateError, ValueError, AssertionError) as exc:
            # the partition went away: not committed past, so its next owner reads it again
            log.debug("cannot seek %s[%s] back: %s", offsets.topic, offsets.partition, exc)

    async def _store_dead_letter(self, delivery: KafkaDelivery, reason: DeadLetterReason) -> None:
        await self._dead_letters.publish(
            delivery.topic, delivery.value, delivery.key, delivery.raw_headers, reason
        )

    # -- internals ---------------------------------------------------------------------------

    def _subscribe(
        self,
        client: AIOKafkaConsumer,
        subscriptions: Sequence[Subscription],
        listener: CommittingRebalanceListener,
    ) -> None:
        plan = plan_subscription(
            subscriptions, self._topics, self._pattern, self._dead_letter_suffix
        )
        if plan.pattern is not None:
            client.subscribe(pattern=plan.pattern, listener=listener)
        elif plan.topics:
            client.subscribe(topics=list(plan.topics), listener=listener)
        else:
            raise ValueError("KafkaConsumer has nothing to subscribe to: no topics, no handlers")

    def _check_wrapped_client(self, client: AIOKafkaConsumer) -> None:
        if getattr(client, "_group_id", None) is None:
            self._can_commit = False
            log.warning(
                "the Kafka consumer has no group_id: offsets cannot be committed, "
                "so a restart reads from its auto_offset_reset position again"
            )
        if getattr(client, "_enable_auto_commit", False):
            log.warning(
                "the Kafka consumer has enable_auto_commit=True: aiokafka commits offsets of "
                "events that are still being handled, so at-least-once cannot be guaranteed; "
                "create it with enable_auto_commit=False"
            )

    async def _fetch(self) -> None:
        """Wait for the next batch (or for `stop()`) and buffer it.

        The fetch runs in its own task that outlives a cancelled `receive()`: records it
        drained from aiokafka are buffered by the next call instead of being lost (a lost,
        never handed out record would be committed past)."""
        client = self._client
        signal = self._stop_signal
        assert client is not None
        assert signal is not None
        fetch = self._pending_fetch
        if fetch is None:
            fetch = self._pending_fetch = asyncio.ensure_future(
                client.getmany(timeout_ms=1000, max_records=self._fetch_batch)
            )
            self._fetch_generation = self._generation
        await asyncio.wait((fetch, signal), return_when=asyncio.FIRST_COMPLETED)
        if not fetch.done():
            return  # stopped: receive() raises on its next turn
        self._pending_fetch = None
        try:
            batches = fetch.result()
        except kafka_errors.ConsumerStoppedError as exc:
            raise ConsumerStoppedError("the Kafka client was stopped") from exc
        except KAFKA_EXCEPTIONS as exc:
            raise connection_error(exc, "fetching records") from exc
        if self._fetch_generation != self._generation:
            return  # fetched before a rebalance: read again from the committed offsets
        for records in batches.values():
            self._buffer.extend(records)

    def _drop_buffered(self, keys: set[PartitionKey]) -> None:
        if self._buffer:
            self._buffer = deque(r for r in self._buffer if (r.topic, r.partition) not in keys)

    async def _commit_loop(self) -> None:
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._commit_wanted.wait(), self._commit_interval)
            self._commit_wanted.clear()
            await self._commit()

    async def _commit(self, keys: Iterable[PartitionKey] | None = None) -> None:
        """Commit, for `keys` (default: every partition), what is settled without a gap."""
        client = self._client
        if client is None or not self._can_commit:
            return
        async with self._commit_lock:
            pending = self._tracker.pending_commits(keys)
            if not pending:
                return
            assigned = client.assignment()
            offsets = {}
            for (topic, partition), offset in list(pending.items()):
                tp = TopicPartition(topic, partition)
                if tp in assigned:
                    offsets[tp] = offset
                else:
                    del pending[(topic, partition)]
            if not offsets:
                return
            self._settled_since_commit = 0
            try:
                await client.commit(offsets)
            except COMMIT_EXCEPTIONS as exc:
                log.warning("committing Kafka offsets failed (retried later): %r", exc)
                return
            self._tracker.mark_committed(pending)

    async def _on_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        keys = {(tp.topic, tp.partition) for tp in revoked}
        self._generation += 1
        self._drop_buffered(keys)
        partitions = [p for key in keys if (p := self._tracker.get(*key)) is not None]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._revoke_timeout
        while any(p.in_flight for p in partitions) and loop.time() < deadline:
            self._settled_signal.clear()
            try:
                await asyncio.wait_for(self._settled_signal.wait(), deadline - loop.time())
            except asyncio.TimeoutError:
                break
        await self._commit(keys)
        self._tracker.forget(keys)

    def _on_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        # a new assignment starts afresh from the committed offsets
        self._tracker.forget({(tp.topic, tp.partition) for tp in assigned})

    def _connection_options(self) -> dict[str, Any]:
        """Connection settings for the dead-letter producer, from the consumer's own."""
        if self._create_options is not None:
            options = {k: v for k, v in self._create_options.items() if k in CONNECTION_OPTIONS}
            options["bootstrap_servers"] = self._create_options["bootstrap_servers"]
            return options
        kafka_client = getattr(self._client, "_client", None)
        if kafka_client is None:
            raise ValueError("pass dead_letter_producer= to KafkaConsumer to store dead letters")
        options = {"bootstrap_servers": kafka_client._bootstrap_servers}
        for name in CONNECTION_OPTIONS:
            value = getattr(kafka_client, "_" + name, None)
            if value is not None:
                options[name] = value
        return options


def _is_subscribed(client: AIOKafkaConsumer) -> bool:
    state = getattr(client, "_subscription", None)
    return state is not None and (
        state.subscription is not None or getattr(state, "_subscribed_pattern", None) is not None
    )


def _install_listener(client: AIOKafkaConsumer, listener: CommittingRebalanceListener) -> Any:
    """Put our rebalance listener in front of the one the user subscribed with (returned)."""
    state = client._subscription
    previous = getattr(state, "_listener", None)
    state._listener = listener
    return previous


def _is_started(client: AIOKafkaConsumer) -> bool:
    return getattr(client, "_fetcher", None) is not None


async def _quiet_stop(client: AIOKafkaConsumer) -> None:
    with contextlib.suppress(*KAFKA_EXCEPTIONS):
        await client.stop()
