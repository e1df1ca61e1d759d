"""Emitting ticks one at a time while the cluster loses a node: which emits the broker
confirmed, which raised, and the longest wait for a confirmation."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from dispytch.errors import EmitError
from tests.failures.events import tick_id, ticks

#: an emit waits this long for the broker's confirmation (failover takes ~6-10 s here)
EMIT_TIMEOUT = 60.0


@dataclass
class EmitLoop:
    stream: Any
    #: ids of the ticks the broker confirmed, in order
    confirmed: list[str] = field(default_factory=list)
    #: ids of the ticks whose emit raised, with the error
    failed: dict[str, str] = field(default_factory=dict)
    #: the longest time one emit took, in seconds
    longest: float = 0.0

    async def run(self, count: int, pause: float = 0.002) -> None:
        """Emit ticks 0..count-1, each awaited, with `pause` seconds between two."""
        async with self.stream.emitter(timeout=EMIT_TIMEOUT) as emitter:
            for seq in range(count):
                (event,) = ticks(self.stream.topic, [seq])
                began = time.monotonic()
                try:
                    await emitter.emit(event)
                except EmitError as error:
                    self.failed[tick_id(seq)] = repr(error)
                else:
                    self.confirmed.append(tick_id(seq))
                self.longest = max(self.longest, time.monotonic() - began)
                await asyncio.sleep(pause)

    def __str__(self) -> str:
        return (
            f"{len(self.confirmed)} emits confirmed, {len(self.failed)} raised, "
            f"longest emit {self.longest:.1f}s"
        )
