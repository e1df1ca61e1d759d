"""FastAPI integration: listeners and an emitter that start and stop with the app's lifespan,
and the emitter as an endpoint dependency (needs the `fastapi` extra).

    events = FastAPIEvents(emitter=emitter, listeners=[listener])
    app = FastAPI(lifespan=events.lifespan)
    Emitter = Annotated[EventEmitter, Depends(events.emitter)]

On startup the emitter starts first (handlers may emit), then each listener; on shutdown the
listeners stop first (each drains its in-flight handlers, up to its `shutdown_grace`), then
the emitter closes. The server (uvicorn, hypercorn) handles SIGTERM and runs the shutdown.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

try:
    from fastapi import HTTPException
except ImportError as error:  # pragma: no cover - the extra is installed for the tests
    if getattr(error, "name", None) != "fastapi":
        raise
    raise ImportError(
        "dispytch.fastapi needs FastAPI: pip install 'dispytch[fastapi]'"
    ) from None

from dispytch.emitter import EventEmitter
from dispytch.listener import EventListener


class FastAPIEvents:
    """The event side of a FastAPI app (see the module)."""

    def __init__(
        self,
        *,
        emitter: EventEmitter | None = None,
        listeners: Sequence[EventListener] = (),
    ) -> None:
        self._emitter = emitter
        self.listeners = list(listeners)
        self._running = False

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Start the emitter and the listeners; stop them on exit (for your own lifespan:
        `async with events.running(): yield`)."""
        async with contextlib.AsyncExitStack() as stack:
            if self._emitter is not None:
                await stack.enter_async_context(self._emitter)
            for listener in self.listeners:
                await stack.enter_async_context(listener)
            self._running = True
            try:
                yield
            finally:
                self._running = False

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Any) -> AsyncIterator[None]:
        """`FastAPI(lifespan=events.lifespan)`."""
        async with self.running():
            yield

    def emitter(self) -> EventEmitter:
        """The dependency: `emitter: Annotated[EventEmitter, Depends(events.emitter)]`.
        Answers 503 while the app is not running (before startup, after shutdown)."""
        if self._emitter is None:
            raise RuntimeError("FastAPIEvents was given no emitter")
        if not self._running:
            raise HTTPException(status_code=503, detail="the event emitter is not running")
        return self._emitter

    def health(self) -> dict[str, Any]:
        """`{"status": "ok" | "unavailable", "listeners": [...], "emitter": bool}`: ok while
        the app runs and every listener listens (a listener whose consumer failed stops)."""
        listeners = [
            {"running": listener.running, "handlers": len(listener.handlers)}
            for listener in self.listeners
        ]
        ok = self._running and all(entry["running"] for entry in listeners)
        return {
            "status": "ok" if ok else "unavailable",
            "listeners": listeners,
            "emitter": self._running and self._emitter is not None,
        }


__all__ = ["FastAPIEvents"]
