"""What a rebalance does: commit settled offsets before partitions move away, start afresh
with the partitions assigned.

For each revoked partition: drop the records fetched but not handed out, stop its retry
timer, wait up to `revoke_timeout` seconds for its running deliveries, commit what is settled,
and forget it (late settlements do nothing; the next owner gets the unsettled ones again).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka import errors as kafka_errors
from aiokafka.abc import ConsumerRebalanceListener

from dispytch.kafka._commit import OffsetCommitter
from dispytch.kafka._errors import KAFKA_EXCEPTIONS
from dispytch.kafka._fetch import RecordFetcher
from dispytch.kafka._retry import RetryScheduler

log = logging.getLogger("dispytch.kafka")


class CommittingRebalanceListener(ConsumerRebalanceListener):  # type: ignore[misc]
    """Handles revoked and assigned partitions, then calls the user's listener (when the
    wrapped client had one)."""

    def __init__(
        self,
        client: AIOKafkaConsumer,
        fetcher: RecordFetcher,
        committer: OffsetCommitter,
        scheduler: RetryScheduler | None,
        revoke_timeout: float,
    ) -> None:
        self._client = client
        self._fetcher = fetcher
        self._committer = committer
        self._scheduler = scheduler
        self._revoke_timeout = revoke_timeout
        self._chained: Any = None

    def chain(self, listener: Any) -> None:
        self._chained = listener

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        keys = {(tp.topic, tp.partition) for tp in revoked}
        self._fetcher.rebalanced(keys)
        if self._scheduler is not None:
            self._scheduler.forget(keys)
        tracker = self._committer.tracker
        partitions = [p for key in keys if (p := tracker.get(*key)) is not None]
        await self._committer.wait_settled(partitions, self._revoke_timeout)
        await self._committer.commit(keys)
        tracker.forget(keys)
        await self._call_chained("on_partitions_revoked", revoked)

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        assigned = list(assigned)
        # a new assignment starts afresh from the committed offsets
        self._committer.tracker.forget({(tp.topic, tp.partition) for tp in assigned})
        if self._scheduler is not None:
            await self._read_retries_from_the_start(self._scheduler.topic, assigned)
        await self._call_chained("on_partitions_assigned", assigned)

    async def _read_retries_from_the_start(
        self, retry_topic: str, assigned: list[TopicPartition]
    ) -> None:
        """Retry records must not be skipped: a retry partition without a committed offset is
        read from its start, even when the client resets to "latest" (aiokafka does not say
        publicly what it resets to, so this asks for the committed offsets either way)."""
        client = self._client
        retries = [tp for tp in assigned if tp.topic == retry_topic]
        if not retries:
            return
        try:
            uncommitted = [tp for tp in retries if await client.committed(tp) is None]
            if uncommitted:
                starts = await client.beginning_offsets(uncommitted)
                for tp in uncommitted:
                    client.seek(tp, starts[tp])
        except (*KAFKA_EXCEPTIONS, kafka_errors.IllegalStateError, AssertionError) as exc:
            log.warning("could not position the retry partitions at their start: %r", exc)

    async def _call_chained(self, method: str, partitions: Iterable[TopicPartition]) -> None:
        if self._chained is None:
            return
        result = getattr(self._chained, method)(partitions)
        if asyncio.iscoroutine(result):
            await result
