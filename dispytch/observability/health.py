"""Liveness and readiness of listeners, for probes (`ObservabilityServer` serves them) and for
apps that embed Dispytch (`await health.ready()` in a route of their own).

- live: no listener has stopped on a failure of its own (its consumer failed, `listen()`
  raised). A process that is not live should be restarted. A listener that is starting,
  stopping or was stopped on purpose is live.
- ready: every listener has subscribed and is receiving ("receiving", not "starting" or
  "stopping"), and its consumer says the broker connection is up (`Consumer.
  check_connection`; a backend that cannot tell counts as up). Not ready while the broker is
  down or the listener is stopping: send no work, but do not restart.

Checking the connection may ask the broker (Kafka: a metadata request), so answers are
cached for `cache_for` seconds and each check is bounded by `timeout`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dispytch.listener import EventListener

__all__ = ["Health", "HealthReport"]


@dataclass(frozen=True)
class HealthReport:
    ok: bool
    #: one entry per listener: its `state` and (for readiness) `connected`
    listeners: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"status": "ok" if self.ok else "unavailable", "listeners": self.listeners}


class Health:
    def __init__(
        self, *listeners: EventListener, timeout: float = 3.0, cache_for: float = 1.0
    ) -> None:
        if not listeners:
            raise ValueError("give Health the listeners it watches")
        self.listeners: Sequence[EventListener] = listeners
        self.timeout = timeout
        self.cache_for = cache_for
        self._connected: dict[int, tuple[float, bool | None]] = {}
        self._lock = asyncio.Lock()

    async def live(self) -> HealthReport:
        states = [{"state": listener.state} for listener in self.listeners]
        return HealthReport(all(entry["state"] != "failed" for entry in states), states)

    async def ready(self) -> HealthReport:
        entries: list[dict[str, Any]] = []
        for index, listener in enumerate(self.listeners):
            state = listener.state
            connected = await self._connection(index, listener) if state == "receiving" else None
            entries.append({"state": state, "connected": connected})
        ok = all(e["state"] == "receiving" and e["connected"] is not False for e in entries)
        return HealthReport(ok, entries)

    async def _connection(self, index: int, listener: EventListener) -> bool | None:
        """The consumer's answer, cached; one check at a time (probes may come together)."""
        async with self._lock:
            now = time.monotonic()
            cached = self._connected.get(index)
            if cached is not None and now - cached[0] < self.cache_for:
                return cached[1]
            try:
                answer = await asyncio.wait_for(
                    listener.consumer.check_connection(self.timeout), self.timeout
                )
            except Exception:  # a check that raised or overran: the connection is not up
                answer = False
            self._connected[index] = (time.monotonic(), answer)
            return answer
