"""`RedisStreamConsumer`: one member of a Redis Streams consumer group (at least once).

Each topic is a stream of the same name; the group reads it with XREADGROUP in batches.
Entries stay pending until settled. Pending entries idle for `claim_idle` seconds (their
consumer died, or a nack made them claimable) are taken over with XAUTOCLAIM, which counts
the delivery: that count is `Delivery.delivery_count`. Delayed copies wait in a sorted set
of the group and come back through the group's retry stream (`dispytch:retry:<group>`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections import deque
from collections.abc import Sequence
from typing import Any

from dispytch.backends.base import Capabilities, Consumer, Delivery, ListenerNeeds, Subscription
from dispytch.credentials import masked_url
from dispytch.errors import ConsumerStoppedError
from dispytch.redis._acks import AckBatcher
from dispytch.redis._client import (
    CONNECTION_ERRORS,
    aioredis,
    connect,
    redis_errors,
    unavailable,
)
from dispytch.redis._layout import delayed_copy, delayed_set, id_order, retry_stream
from dispytch.redis._leaving import finished, give_back_pending
from dispytch.redis._scripts import MOVE_DUE
from dispytch.redis.delivery import RedisStreamDelivery

logger = logging.getLogger("dispytch.redis")

CAPABILITIES = Capabilities(
    persistent=True,
    ordered_per_key=False,
    consumer_groups=True,
    redelivers_on_nack=True,
    native_delay=True,
)

_MOVE_BATCH = 100


class RedisStreamConsumer(Consumer):
    """Reads `topics` (or the listener's handler topics) as consumer group `group`.

    `RedisStreamConsumer(client, group)` uses your `redis.asyncio.Redis` (created without
    `decode_responses`) and leaves it open; `RedisStreamConsumer.create(url, group)` owns its
    client. Topics are literal stream keys: Redis has no stream wildcards, so a handler topic
    with `*` or `{name}` is refused at start.
    """

    capabilities = CAPABILITIES

    def __init__(
        self,
        client: aioredis.Redis,
        group: str,
        topics: Sequence[str] | None = None,
        *,
        consumer_name: str | None = None,
        claim_idle: float = 60.0,
        claim_interval: float | None = None,
        batch_size: int = 100,
        block: float = 1.0,
        start_from: str = "0",
    ) -> None:
        """`claim_idle`: seconds an entry stays pending with a consumer before another member
        takes it over (longer than your slowest handler, retries in process included, or an
        entry is handled twice). `claim_interval`: how often to look for such entries
        (default: a tenth of `claim_idle`). `start_from`: where a new group starts on an
        existing stream (`"0"`: its first entry; `"$"`: only new entries)."""
        #: redis-py's replies are typed as unions of every decoding: we check what we read
        self.client: Any = client
        self.group = group
        self.acks = AckBatcher(group)
        self.name = consumer_name or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.topics = None if topics is None else list(topics)
        self.claim_idle_ms = max(1, int(claim_idle * 1000))
        self.claim_interval = claim_idle / 10 if claim_interval is None else claim_interval
        self.give_back_idle_ms = max(10**9, 2 * self.claim_idle_ms)
        self.batch_size = batch_size
        self.block_ms = max(1, int(block * 1000))
        self.start_from = start_from
        self._streams: list[str] = []
        self._ready: deque[RedisStreamDelivery] = deque()
        self._unsettled: dict[RedisStreamDelivery, None] = {}
        self._stop = asyncio.Event()
        self._stopped = False
        self.closed = False
        self._owns_client = False
        self._url: str | None = None
        self._connect_timeout = 10.0
        self._next_claim = 0.0
        self._recover = False
        self._next_due: float | None = 0.0
        self._mover: Any = None
        #: the last fetch: close() waits for it to end (a cancelled one may still be running)
        self._fetching: asyncio.Future[list[RedisStreamDelivery]] | None = None

    @classmethod
    def create(
        cls,
        url: str,
        group: str,
        topics: Sequence[str] | None = None,
        *,
        connect_timeout: float = 10.0,
        **options: Any,
    ) -> RedisStreamConsumer:
        """A consumer that connects to `url` (`redis://host:6379/0`, `rediss://` for TLS) on
        start and closes its client on close. `options`: those of the constructor."""
        consumer = cls(None, group, topics, **options)  # type: ignore[arg-type]
        consumer._url = url
        consumer._owns_client = True
        consumer._connect_timeout = connect_timeout
        return consumer

    def describe(self) -> str:
        where = "a client you passed" if self._url is None else masked_url(self._url)
        return f"RedisStreamConsumer(group={self.group!r}, url={where!r}, name={self.name!r})"

    def prepare(self, needs: ListenerNeeds) -> None:
        self.batch_size = max(1, min(self.batch_size, needs.max_in_flight))

    async def start(self, subscriptions: Sequence[Subscription]) -> None:
        if self.topics is None:
            wild = [s.pattern for s in subscriptions if not s.is_literal]
            if wild:
                raise ValueError(
                    f"Redis streams have no wildcards; topics {wild} are patterns. "
                    "Give the consumer literal topics (RedisStreamConsumer(..., topics=[...]))"
                )
            topics = [s.pattern for s in subscriptions]
        else:
            topics = self.topics
        if self._url is not None and self.client is None:
            self.client = await connect(
                self._url, timeout=self._connect_timeout, what="the Redis consumer"
            )
        self._streams = list(dict.fromkeys([*topics, retry_stream(self.group)]))
        self._mover = self.client.register_script(MOVE_DUE)
        self._stopped = False
        self._stop.clear()
        self.closed = False
        try:
            await self._create_groups()
        except CONNECTION_ERRORS as error:
            raise unavailable("the Redis consumer could not create its group", error) from error

    async def _create_groups(self) -> None:
        for stream in self._streams:
            try:
                await self.client.xgroup_create(stream, self.group, self.start_from, mkstream=True)
            except redis_errors.ResponseError as error:
                if "BUSYGROUP" not in str(error):
                    raise

    # -- receiving ----------------------------------------------------------------------------

    async def receive(self) -> Delivery:
        return (await self.receive_many(1))[0]

    async def receive_many(self, max_messages: int) -> list[Delivery]:
        while True:
            if self._stopped:
                raise ConsumerStoppedError("the Redis consumer was stopped")
            if self._ready:
                return self._take(max_messages)
            fetch = asyncio.ensure_future(self._fetch(max(max_messages, self.batch_size)))
            stopping = asyncio.ensure_future(self._stop.wait())
            self._fetching = fetch
            try:
                await asyncio.wait({fetch, stopping}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopping.cancel()
                if not fetch.done():
                    fetch.cancel()
                    # entries that XREADGROUP had read are pending with us: find them again
                    self._recover = True
            if not fetch.done():
                await finished(fetch)
            if fetch.cancelled():
                continue  # stopped while fetching: the loop raises
            error = fetch.exception()
            if error is not None:
                if isinstance(error, CONNECTION_ERRORS):
                    raise unavailable("the Redis consumer lost its connection", error) from error
                if not (isinstance(error, redis_errors.ResponseError) and "NOGROUP" in str(error)):
                    raise error
                try:  # the stream or the group was deleted (or the server restarted empty)
                    await self._create_groups()
                except CONNECTION_ERRORS as lost:
                    raise unavailable("the Redis consumer lost its connection", lost) from lost
                continue
            self._ready.extend(fetch.result())

    def _take(self, count: int) -> list[Delivery]:
        batch: list[Delivery] = []
        while self._ready and len(batch) < count:
            delivery = self._ready.popleft()
            self._unsettled[delivery] = None
            batch.append(delivery)
        return batch

    async def _fetch(self, count: int) -> list[RedisStreamDelivery]:
        now = time.monotonic()
        if self._next_due is not None and time.time() >= self._next_due:
            await self._move_due()
        if self._recover:
            self._recover = False
            found = await self._recover_own()
            if found:
                return found
        if now >= self._next_claim:
            self._next_claim = now + self.claim_interval
            claimed = await self._claim(count)
            if claimed:
                return claimed
        block = self.block_ms
        if self._next_due is not None:
            block = max(1, min(block, int((self._next_due - time.time()) * 1000) + 1))
        read = await self.client.xreadgroup(
            self.group, self.name, {s: ">" for s in self._streams}, count=count, block=block
        )
        retry = retry_stream(self.group)
        deliveries = []
        for raw_stream, entries in read or ():
            stream = raw_stream.decode() if isinstance(raw_stream, bytes) else raw_stream
            for entry_id, fields in entries:
                if fields:
                    deliveries.append(
                        RedisStreamDelivery(self, stream, entry_id, fields, 1, stream == retry)
                    )
        return deliveries

    async def _claim(self, count: int) -> list[RedisStreamDelivery]:
        """Take over entries pending longer than `claim_idle` (from any member, us included)."""
        claimed: list[RedisStreamDelivery] = []
        retry = retry_stream(self.group)
        for stream in self._streams:
            if len(claimed) >= count:
                break
            result = await self.client.xautoclaim(
                stream, self.group, self.name, self.claim_idle_ms, "0-0", count=count - len(claimed)
            )
            entries = [(i, f) for i, f in result[1] if f]
            if not entries:
                continue
            counts = await self._counts(stream, [i for i, _ in entries])
            for entry_id, fields in entries:
                claimed.append(
                    RedisStreamDelivery(
                        self, stream, entry_id, fields, counts.get(entry_id), stream == retry
                    )
                )
        return claimed

    async def _recover_own(self) -> list[RedisStreamDelivery]:
        """Entries pending with us that no delivery holds (a cancelled XREADGROUP read them)."""
        held = {(d.stream, d.entry_id) for d in self._unsettled}
        held |= {(d.stream, d.entry_id) for d in self._ready}
        found: list[RedisStreamDelivery] = []
        retry = retry_stream(self.group)
        for stream in self._streams:
            pending = await self.client.xpending_range(
                stream, self.group, "-", "+", 1000, consumername=self.name
            )
            lost = [p["message_id"] for p in pending if (stream, p["message_id"]) not in held]
            if not lost:
                continue
            entries = await self.client.xclaim(stream, self.group, self.name, 0, lost)
            counts = await self._counts(stream, [i for i, f in entries if f])
            found.extend(
                RedisStreamDelivery(self, stream, i, f, counts.get(i), stream == retry)
                for i, f in entries
                if f
            )
        return found

    async def _counts(self, stream: str, ids: list[bytes]) -> dict[bytes, int]:
        """The delivery counts of pending entries (XPENDING over their id range)."""
        if not ids:
            return {}
        pending = await self.client.xpending_range(
            stream, self.group, min(ids, key=id_order), max(ids, key=id_order), len(ids) * 2 + 10
        )
        wanted = set(ids)
        counts: dict[bytes, int] = {}
        for entry in pending:
            times = entry.get("times_delivered")
            if entry["message_id"] in wanted and isinstance(times, int):
                counts[entry["message_id"]] = times
        return counts

    async def _move_due(self) -> None:
        group = self.group
        moved, following = await self._mover(
            keys=[delayed_set(group), retry_stream(group)],
            args=[int(time.time() * 1000), _MOVE_BATCH, delayed_copy(group, "")],
        )
        if moved >= _MOVE_BATCH:
            self._next_due = 0.0
        elif following is None:
            self._next_due = None
        else:
            self._next_due = float(following) / 1000

    # -- settlement bookkeeping (used by the deliveries) ----------------------------------------

    def settled(self, delivery: RedisStreamDelivery) -> bool:
        """Forget a settled delivery; False when the consumer had given it back already."""
        return self._unsettled.pop(delivery, False) is not False and not self.closed

    def claim_soon(self) -> None:
        self._next_claim = 0.0

    def delayed_stored(self, due_unix_ms: int) -> None:
        due = due_unix_ms / 1000
        if self._next_due is None or due < self._next_due:
            self._next_due = due

    async def check_connection(self, timeout: float) -> bool | None:
        """Whether the server answers PING within `timeout` (what readiness checks ask)."""
        client = self.client
        if client is None or self._stopped or self.closed:
            return False
        try:
            return bool(await asyncio.wait_for(client.ping(), timeout))
        except (asyncio.TimeoutError, redis_errors.RedisError):
            return False
        except CONNECTION_ERRORS:
            return False

    # -- stopping -----------------------------------------------------------------------------

    async def stop(self) -> None:
        self._stopped = True
        self._stop.set()

    async def close(self) -> None:
        if self.closed:
            return
        await self.stop()
        self.closed = True
        if self._fetching is not None:
            self._fetching.cancel()
            await finished(self._fetching)
            self._fetching = None
        client = self.client
        if client is None:
            return
        await self.acks.drain()
        try:
            await give_back_pending(
                self.client, self._streams, self.group, self.name, self.give_back_idle_ms
            )
        except CONNECTION_ERRORS as error:
            logger.warning(
                "could not give back the unsettled entries of %r (%s): other members take "
                "them over after %s s",
                self.name,
                error,
                self.claim_idle_ms / 1000,
            )
        finally:
            self._unsettled.clear()
            self._ready.clear()
            if self._owns_client:
                self.client = None
                await client.aclose()
