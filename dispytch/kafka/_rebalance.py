"""The rebalance listener that commits settled offsets before partitions move away."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiokafka import TopicPartition
from aiokafka.abc import ConsumerRebalanceListener


class CommittingRebalanceListener(ConsumerRebalanceListener):  # type: ignore[misc]
    """Calls `on_revoked` (commit what is settled, forget the rest) and `on_assigned`, then
    the user's listener (when the wrapped client had one)."""

    def __init__(
        self,
        on_revoked: Callable[[Iterable[TopicPartition]], Awaitable[None]],
        on_assigned: Callable[[Iterable[TopicPartition]], None],
    ) -> None:
        self._on_revoked = on_revoked
        self._on_assigned = on_assigned
        self._chained: Any = None

    def chain(self, listener: Any) -> None:
        self._chained = listener

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        await self._on_revoked(revoked)
        if self._chained is not None:
            result = self._chained.on_partitions_revoked(revoked)
            if asyncio.iscoroutine(result):
                await result

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        self._on_assigned(assigned)
        if self._chained is not None:
            result = self._chained.on_partitions_assigned(assigned)
            if asyncio.iscoroutine(result):
                await result
