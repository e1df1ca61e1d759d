"""`NatsConsumer`: a member of a listener group, over JetStream durable pull consumers.

Pull, not push: the consumer asks for at most as many messages as the listener has room for
(`ListenerNeeds.max_in_flight`), so backpressure is the request size, and members of a group
share a durable without a queue group (docs/backends/nats.md has the measurements). Each
subscribed subject has its own durable (NATS 2.9 filters a consumer by one subject) and its
own `PullFeed`, which keeps requests open while handlers run; the feeds fill one local list
that `receive_many()` takes from. While a message is unsettled (buffered or in a handler) the
consumer tells the server `in_progress()` every `ack_wait / 3` seconds, so a long handler is
not redelivered to another member; a process that dies stops doing so and its messages come
back after `ack_wait`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING

from dispytch.backends.base import Consumer, Delivery, ListenerNeeds, Subscription
from dispytch.errors import BackendError, ConsumerStoppedError, ProducerError
from dispytch.nats._client import (
    NATS_ERRORS,
    Client,
    JetStreamContext,
    connect,
    ensure_consumer,
    ensure_stream,
)
from dispytch.nats._pull import PullFeed
from dispytch.nats._subject_names import check_subscription
from dispytch.nats.delivery import NatsDelivery
from dispytch.nats.headers import due_at_ms, from_nats
from dispytch.nats.topology import NATS_CAPABILITIES, JetStreamTopology, subject_of, topic_of

if TYPE_CHECKING:
    from nats.aio.msg import Msg

logger = logging.getLogger("dispytch.nats")

#: subjects whose topic the consumer remembers (a stream of many subjects starts over)
_TOPICS_KEPT = 4096
#: the longest a not-yet-due retry copy is put back for at once (untrusted header)
_MAX_RETRY_WAIT = 3600.0


class NatsConsumer(Consumer):
    """Receives the events of `topology.stream` for listener group `group`.

    `topics`: explicit subjects (else the listener's subscriptions, with the listener's
    delimiter mapped to `.` and each wildcard to `*`). `ack_wait`: seconds before the server
    redelivers a message nobody settled or reported in progress. `max_deliver`: the server's
    own delivery limit; -1 (default) leaves giving up to the core (dead-letter after the
    handler's retries), since a message JetStream stops delivering is dropped, not
    dead-lettered.
    """

    capabilities = NATS_CAPABILITIES

    def __init__(
        self,
        url: str,
        group: str,
        *,
        topology: JetStreamTopology | None = None,
        topics: Sequence[str] | None = None,
        ack_wait: float = 30.0,
        max_deliver: int = -1,
        batch_size: int = 100,
        connect_timeout: float = 10.0,
    ) -> None:
        if ack_wait < 1.0:
            raise ValueError("ack_wait must be at least 1 second")
        self.url = url
        self.group = group
        self.topology = topology or JetStreamTopology()
        self.topics = None if topics is None else list(topics)
        self.ack_wait = ack_wait
        self.max_deliver = max_deliver
        self.batch_size = max(1, batch_size)
        self.connect_timeout = connect_timeout
        self._capacity = max(self.batch_size, 1)
        self._client: Client | None = None
        self._js: JetStreamContext | None = None
        #: insertion-ordered: fetched and not settled (buffered or handed out)
        self._unsettled: dict[NatsDelivery, None] = {}
        self._ready: deque[NatsDelivery] = deque()
        self._arrived = asyncio.Event()
        self._feeds: list[PullFeed] = []
        #: messages that arrived after stop(), given back once no request is open
        self._held_back: list[Msg] = []
        self._event_feeds: list[PullFeed] = []
        self._retry_feed: PullFeed | None = None
        #: subject -> the listener's topic (subjects repeat: mapped once each)
        self._topics: dict[str, str] = {}
        self._heartbeat: asyncio.Task[None] | None = None
        self._closed = False
        self._stopped = False
        #: the listener's topic delimiter; subjects use "."
        self._delimiter = "."
        self._subscriptions: list[Subscription] = []

    def __repr__(self) -> str:
        return f"NatsConsumer(group={self.group!r}, stream={self.topology.stream!r})"

    def prepare(self, needs: ListenerNeeds) -> None:
        self._capacity = max(needs.max_in_flight, 1)

    def check_subscription(self, subscription: Subscription) -> None:
        check_subscription(subscription)

    async def start(self, subscriptions: Sequence[Subscription]) -> None:
        if self.topics is not None:
            subscriptions = [Subscription.parse(topic, ".") for topic in self.topics]
        for subscription in subscriptions:
            check_subscription(subscription)
        subjects = [sub.glob("*", ".") for sub in subscriptions]
        if not subjects:
            raise BackendError("the NATS consumer has nothing to subscribe to")
        self._stopped = False
        self._retry_feed = None
        self._event_feeds = []
        self._topics = {}
        self._subscriptions = list(subscriptions)
        self._delimiter = subscriptions[0].delimiter
        client = await connect(self.url, connect_timeout=self.connect_timeout)
        self._client = client
        js = client.jetstream()
        self._js = js
        try:
            topology = self.topology
            await ensure_stream(js, topology.stream, topology.subjects)
            dead_letters = [topology.dead_letter_prefix + ".>"]
            await ensure_stream(js, topology.dead_letter_stream, dead_letters)
            await ensure_stream(
                js, topology.retry_stream, [topology.retry_prefix + ".>"], work_queue=True
            )
            retry_filter = topology.retry_subject_prefix(self.group) + ".>"
            for subject, stream in [
                *((subject, topology.stream) for subject in dict.fromkeys(subjects)),
                (retry_filter, topology.retry_stream),
            ]:
                durable = topology.durable_name(self.group, subject)
                await ensure_consumer(
                    js,
                    stream,
                    durable,
                    subject,
                    ack_wait=self.ack_wait,
                    max_deliver=self.max_deliver,
                )
                await self._add_feed(client, stream, durable, stream == topology.retry_stream)
        except BaseException:
            await self.close()
            raise
        self._closed = False
        self._heartbeat = asyncio.create_task(self._heartbeat_loop())

    async def receive(self) -> Delivery:
        return (await self.receive_many(1))[0]

    async def receive_many(self, max_messages: int) -> list[Delivery]:
        if self._client is None and not self._stopped:
            raise RuntimeError("start() the consumer before receiving")
        while True:
            if self._stopped:
                raise ConsumerStoppedError("the NATS consumer was stopped")
            if self._ready:
                count = min(max(max_messages, 1), len(self._ready))
                return [self._ready.popleft() for _ in range(count)]
            self._arrived.clear()
            await self._arrived.wait()

    async def check_connection(self, timeout: float) -> bool | None:
        """Whether the server answers a PING within `timeout` (what readiness checks ask);
        False while nats-py reconnects."""
        client = self._client
        if client is None or self._stopped or not client.is_connected:
            return False
        try:
            # nats-py's own bound is whole seconds: ours, `timeout`, cuts it short
            await asyncio.wait_for(client.flush(timeout=int(timeout) + 1), timeout)
        except asyncio.TimeoutError:
            return False
        except NATS_ERRORS:
            return False
        return True

    async def stop(self) -> None:
        """Wakes `receive()`, then waits (bounded, see `PullFeed.stop`) for the open pull
        requests to end: one left open while the listener gives messages back would be
        answered with messages nobody takes, each counting a delivery (`num_delivered`).
        What they still bring (a message the listener gave back meanwhile, say) is given back
        once they ended."""
        self._stopped = True
        self._arrived.set()
        feeds, self._feeds, self._event_feeds = self._feeds, [], []
        if feeds:
            await asyncio.gather(*(feed.stop() for feed in feeds), return_exceptions=True)
        held, self._held_back = self._held_back, []
        for msg in held:
            with contextlib.suppress(Exception):
                await msg.nak()

    async def close(self) -> None:
        await self.stop()
        self._closed = True
        heartbeat, self._heartbeat = self._heartbeat, None
        if heartbeat is not None:
            heartbeat.cancel()
            await asyncio.gather(heartbeat, return_exceptions=True)
        unsettled = list(self._unsettled)
        self._unsettled.clear()
        self._ready.clear()
        client, self._client = self._client, None
        if client is None:
            return
        for delivery in unsettled:
            delivery._settled = True
            with contextlib.suppress(Exception):
                await delivery._msg.nak()
        # flush, not drain: the naks above (and earlier acks) must reach the server, and a
        # drain would wait for the pull subscriptions' inboxes for no gain
        with contextlib.suppress(Exception):
            await client.flush(timeout=5)
        with contextlib.suppress(Exception):
            await client.close()

    def _settled(self, delivery: NatsDelivery) -> None:
        self._unsettled.pop(delivery, None)
        for feed in self._event_feeds:
            feed.wake()

    def _subject_of(self, topic: str) -> str:
        return subject_of(topic, self._delimiter)

    def _topic_of(self, subject: str) -> str:
        topic = self._topics.get(subject)
        if topic is None:
            topic = next(
                (t for s in self._subscriptions if (t := topic_of(subject, s)) is not None),
                subject,
            )
            if len(self._topics) >= _TOPICS_KEPT:
                self._topics.clear()
            self._topics[subject] = topic
        return topic

    def _retry_subject(self, topic: str) -> str:
        return f"{self.topology.retry_subject_prefix(self.group)}.{topic}"

    async def _publish_owned(self, subject: str, value: bytes, headers: dict[str, str]) -> None:
        """Publish a dead letter or retry copy and wait for the stream to store it."""
        js = self._js
        if js is None:
            raise ProducerError("the NATS consumer is closed")
        try:
            await js.publish(subject, value, timeout=30.0, headers=headers)
        except NATS_ERRORS as exc:
            raise ProducerError(f"NATS did not store a message on {subject!r}: {exc!r}") from exc

    async def _add_feed(self, client: Client, stream: str, durable: str, is_retry: bool) -> None:
        """Start pulling from `durable`. Retry copies are few: their feed asks for a tenth
        of a batch at a time, is not counted against the events' room, and is not woken by
        settlements (its requests expire every second, and it asks again then)."""

        async def on_message(msg: Msg) -> None:
            if self._stopped:
                # given back once the open requests ended: a nak now would send it straight
                # back to one of them, again and again, counting a delivery each time
                self._held_back.append(msg)
            elif is_retry:
                await self._received_retry(msg)
            else:
                self._received(msg, msg.subject)

        def retry_room() -> int:
            asked = 0 if self._retry_feed is None else self._retry_feed.outstanding
            return self._capacity - len(self._unsettled) - asked

        batch = min(self.batch_size, self._capacity)  # what the listener can hold at most

        feed = PullFeed(
            client,
            stream,
            durable,
            batch=max(1, batch // 10) if is_retry else batch,
            room=retry_room if is_retry else self._event_room,
            on_message=on_message,
        )
        if is_retry:
            self._retry_feed = feed
        else:
            self._event_feeds.append(feed)
        self._feeds.append(feed)
        await feed.start()

    def _event_room(self) -> int:
        feeds = self._event_feeds
        asked = feeds[0].outstanding if len(feeds) == 1 else sum(f.outstanding for f in feeds)
        return self._capacity - len(self._unsettled) - asked

    def _received(self, msg: Msg, subject: str) -> None:
        headers, key = from_nats(msg.headers)
        delivery = NatsDelivery(self, msg, self._topic_of(subject), headers, key)
        self._unsettled[delivery] = None
        self._ready.append(delivery)
        self._arrived.set()

    async def _received_retry(self, msg: Msg) -> None:
        """A delayed-retry copy: handed out once due, else put back for the time left."""
        prefix = self.topology.retry_subject_prefix(self.group) + "."
        subject = msg.subject
        subject = subject[len(prefix) :] if subject.startswith(prefix) else subject
        due = due_at_ms(msg.headers)
        wait = 0.0 if due is None else due / 1000 - time.time()
        if wait > 0.01:
            with contextlib.suppress(Exception):
                await msg.nak(delay=min(wait, _MAX_RETRY_WAIT))
            return
        self._received(msg, subject)

    async def _heartbeat_loop(self) -> None:
        """Tell the server the unsettled messages are being worked on, so that ack_wait bounds
        how long a dead member holds them, not how long a handler may run."""
        while not self._closed:  # on after stop(): the listener drains its handlers then
            await asyncio.sleep(self.ack_wait / 3)
            for delivery in list(self._unsettled):
                if delivery._settled:
                    continue
                try:
                    await delivery._msg.in_progress()
                except NATS_ERRORS as exc:
                    logger.debug("in_progress failed: %r", exc)
                    break
