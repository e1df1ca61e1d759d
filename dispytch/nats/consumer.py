"""`NatsConsumer`: a member of a listener group, over JetStream durable pull consumers.

Pull, not push: a pull consumer fetches at most as many messages as the listener has room
for (`ListenerNeeds.max_in_flight`), so backpressure is the fetch size, members of a group
share a durable without a queue group, and a batch costs one request. Each subscribed subject
has its own durable (NATS 2.9 filters a consumer by one subject) and its own fetch task; the
tasks fill one local list that `receive_many()` takes from, so a cancelled `receive()` never
cancels a fetch. While a message is unsettled (buffered or in a handler) the consumer tells
the server `in_progress()` every `ack_wait / 3` seconds, so a long handler is not redelivered
to another member; a process that dies stops doing so and its messages come back after
`ack_wait`.
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
    nats,
)
from dispytch.nats.delivery import NatsDelivery
from dispytch.nats.headers import due_at_ms, from_nats
from dispytch.nats.topology import NATS_CAPABILITIES, JetStreamTopology, subject_of, topic_of

if TYPE_CHECKING:
    from nats.aio.msg import Msg

logger = logging.getLogger("dispytch.nats")

#: how long one fetch waits for a first message; bounds how long stop() waits for a fetch
_FETCH_WAIT = 1.0
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
        self._room = asyncio.Event()
        self._fetches: list[asyncio.Task[None]] = []
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

    async def start(self, subscriptions: Sequence[Subscription]) -> None:
        if self.topics is not None:
            subscriptions = [Subscription.parse(topic, ".") for topic in self.topics]
        subjects = [sub.glob("*", ".") for sub in subscriptions]
        if not subjects:
            raise BackendError("the NATS consumer has nothing to subscribe to")
        self._stopped = False
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
                pull = await js.pull_subscribe_bind(durable=durable, stream=stream)
                is_retry = stream == topology.retry_stream
                self._fetches.append(asyncio.create_task(self._fetch_loop(pull, is_retry)))
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

    async def stop(self) -> None:
        """Wakes `receive()`, then waits (at most `_FETCH_WAIT` + 2 s) for the fetch in
        flight to end: a fetch running on while the listener gives messages back would fetch
        them again and count a delivery (`num_delivered`) no handler saw. A fetch is not
        cancelled, since messages the server sends to a cancelled fetch wait `ack_wait`."""
        self._stopped = True
        self._arrived.set()
        self._room.set()
        fetches, self._fetches = self._fetches, []
        if fetches:
            _, pending = await asyncio.wait(fetches, timeout=_FETCH_WAIT + 2)
            for task in pending:
                task.cancel()
            await asyncio.gather(*fetches, return_exceptions=True)

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
        self._room.set()

    def _subject_of(self, topic: str) -> str:
        return subject_of(topic, self._delimiter)

    def _topic_of(self, subject: str) -> str:
        for subscription in self._subscriptions:
            topic = topic_of(subject, subscription)
            if topic is not None:
                return topic
        return subject

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

    async def _fetch_loop(self, pull: JetStreamContext.PullSubscription, is_retry: bool) -> None:
        pause = 0.1
        while not self._stopped:
            room = self._capacity - len(self._unsettled)
            if room <= 0:
                self._room.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._room.wait(), _FETCH_WAIT)
                continue
            try:
                msgs = await pull.fetch(min(room, self.batch_size), timeout=_FETCH_WAIT)
            except (nats.errors.TimeoutError, asyncio.TimeoutError):
                continue
            except NATS_ERRORS as exc:
                logger.warning("fetching from NATS failed (%r); trying again", exc)
                await asyncio.sleep(pause)
                pause = min(pause * 2, 5.0)
                continue
            pause = 0.1
            for msg in msgs:
                delivery = await self._delivery(msg, is_retry)
                if delivery is None:
                    continue
                if self._stopped:
                    with contextlib.suppress(Exception):
                        await msg.nak()
                    continue
                self._unsettled[delivery] = None
                self._ready.append(delivery)
            if self._ready:
                self._arrived.set()

    async def _delivery(self, msg: Msg, is_retry: bool) -> NatsDelivery | None:
        headers, key = from_nats(msg.headers)
        topic = msg.subject
        if is_retry:
            prefix = self.topology.retry_subject_prefix(self.group) + "."
            topic = topic[len(prefix) :] if topic.startswith(prefix) else topic
            due = due_at_ms(msg.headers)
            wait = 0.0 if due is None else due / 1000 - time.time()
            if wait > 0.01:
                with contextlib.suppress(Exception):
                    await msg.nak(delay=min(wait, _MAX_RETRY_WAIT))
                return None
        return NatsDelivery(self, msg, self._topic_of(topic), headers, key)

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
