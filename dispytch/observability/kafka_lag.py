"""Kafka consumer lag per partition, refreshed periodically (never per message).

The lag of a partition is the broker's end offset minus the group's committed offset (or the
consumer's position when the group has committed nothing yet): the records not yet settled.
It is read with aiokafka's public API (`assignment()`, `end_offsets()`, `committed()`,
`position()`) from the listener's `KafkaConsumer.client`, every `interval` seconds, each
refresh bounded by `interval`, while the listener is receiving. Partitions no longer assigned
(and all of them once the listener stopped) are removed from the gauge.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from types import TracebackType
from typing import Any, Protocol

logger = logging.getLogger("dispytch.observability")

__all__ = ["KafkaLag", "LagRecorder"]


class LagRecorder(Protocol):
    def lag(self, topic: str, partition: int, records: int) -> None: ...

    def lag_gone(self, topic: str, partition: int) -> None: ...


class KafkaLag:
    """`async with KafkaLag(listener, metrics):` keeps `metrics`' lag gauge up to date while
    the listener runs. At most `max_partitions` partitions are reported."""

    def __init__(
        self,
        listener: Any,
        recorder: LagRecorder,
        *,
        interval: float = 15.0,
        max_partitions: int = 1000,
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        self.listener = listener
        self.recorder = recorder
        self.interval = interval
        self.max_partitions = max_partitions
        self._reported: set[tuple[str, int]] = set()
        self._task: asyncio.Task[None] | None = None

    async def refresh(self) -> None:
        """Read the offsets once and update the gauge (a listener that is not receiving has no
        partitions)."""
        client: Any = getattr(self.listener.consumer, "client", None)
        receiving = client is not None and self.listener.state == "receiving"
        partitions = client.assignment() if receiving else ()
        assigned = sorted(partitions, key=lambda tp: (tp.topic, tp.partition))
        assigned = assigned[: self.max_partitions]
        current: set[tuple[str, int]] = set()
        if assigned:
            ends = await client.end_offsets(assigned)
            committed = await asyncio.gather(*(client.committed(tp) for tp in assigned))
            for tp, settled in zip(assigned, committed, strict=True):
                if settled is None:  # the group has committed nothing here yet
                    settled = await client.position(tp)
                end = ends.get(tp)
                if end is None:
                    continue
                self.recorder.lag(tp.topic, tp.partition, max(end - settled, 0))
                current.add((tp.topic, tp.partition))
        for topic, partition in self._reported - current:
            self.recorder.lag_gone(topic, partition)
        self._reported = current

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self.refresh(), self.interval)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # a rebalance, a broker away: next time
                logger.debug("could not refresh the Kafka consumer lag: %r", error)
            await asyncio.sleep(self.interval)

    async def __aenter__(self) -> KafkaLag:
        self._task = asyncio.create_task(self._run(), name="dispytch-kafka-lag")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
