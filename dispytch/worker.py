"""One worker: load the application's listener and run it in this process until a signal.

The exit status says how it ended (the supervisor and `dispytch run` use these):

- 0: stopped on SIGTERM/SIGINT (or `stop()`), every in-flight handler finished;
- 1: the listener failed (its consumer raised, it could not connect, the factory raised);
- 3: stopped, but handlers still running after `shutdown_grace` were cancelled (their
  messages are delivered again);
- 4: the application could not be loaded: the target is missing or is not a listener
  (restarting would not help).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
from pathlib import Path

from dispytch.importing import ImportTargetError, import_target
from dispytch.listener import EventListener

logger = logging.getLogger("dispytch.run")

EXIT_DRAINED = 0
EXIT_FAILED = 1
EXIT_NOT_DRAINED = 3
EXIT_LOAD_FAILED = 4

#: how often a supervised worker checks that its supervisor is still alive
_PARENT_CHECK_SECONDS = 1.0


class LoadError(Exception):
    """The target is not there, or is not (and does not make) an `EventListener`."""


async def load_listener(target: str, app_dir: str | Path | None = None) -> EventListener:
    """The listener `target` names: an `EventListener`, or a factory (a function, sync or
    async, taking no arguments) that returns one."""
    try:
        found = import_target(target, app_dir)
    except ImportTargetError as error:
        raise LoadError(str(error)) from None
    if not isinstance(found, EventListener) and callable(found):
        found = found()
        if inspect.isawaitable(found):
            found = await found
    if not isinstance(found, EventListener):
        raise LoadError(
            f"{target!r} is a {type(found).__name__}, not an EventListener "
            "(or a function that returns one)"
        )
    return found


class _CancelledHandlers(logging.Handler):
    """Notices the listener's report that the grace period ended with handlers running."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.seen = False

    def emit(self, record: logging.LogRecord) -> None:
        if "still running after" in str(record.msg):
            self.seen = True


async def serve(target: str, app_dir: str | Path | None = None, supervised: bool = False) -> int:
    """Load and run the listener until SIGINT/SIGTERM; the exit status (see the module)."""
    try:
        listener = await load_listener(target, app_dir)
    except LoadError as error:
        logger.error("cannot load %s: %s", target, error)
        return EXIT_LOAD_FAILED
    except Exception:
        logger.exception("worker %d: making the listener failed", os.getpid())
        return EXIT_FAILED
    watch = _CancelledHandlers()
    listener_logger = logging.getLogger("dispytch.listener")
    listener_logger.addHandler(watch)
    orphan_watch = asyncio.create_task(_stop_when_orphaned(listener)) if supervised else None
    try:
        logger.info("worker %d listening (%s)", os.getpid(), target)
        await listener.listen(handle_signals=True)
    except Exception:
        logger.exception("worker %d: the listener failed", os.getpid())
        return EXIT_FAILED
    finally:
        listener_logger.removeHandler(watch)
        if orphan_watch is not None:
            orphan_watch.cancel()
    if watch.seen:
        logger.warning("worker %d stopped with handlers cancelled (not drained)", os.getpid())
        return EXIT_NOT_DRAINED
    logger.info("worker %d stopped; every handler finished", os.getpid())
    return EXIT_DRAINED


async def _stop_when_orphaned(listener: EventListener) -> None:
    """A supervised worker whose supervisor died (SIGKILL) stops gracefully on its own."""
    parent = os.getppid()
    while os.getppid() == parent:
        await asyncio.sleep(_PARENT_CHECK_SECONDS)
    logger.warning("worker %d: the supervisor (pid %d) is gone; stopping", os.getpid(), parent)
    await listener.stop()


def run_worker(target: str, app_dir: str | Path | None = None, supervised: bool = False) -> int:
    return asyncio.run(serve(target, app_dir, supervised))


def describe_exit(status: int) -> str:
    """What a worker's exit status (negative: killed by that signal) says, in words."""
    if status < 0:
        import signal

        try:
            name = signal.Signals(-status).name
        except ValueError:
            name = f"signal {-status}"
        return f"was killed by {name}"
    return {
        EXIT_DRAINED: "stopped cleanly",
        EXIT_FAILED: "failed (status 1: the listener raised; see its log)",
        EXIT_NOT_DRAINED: "stopped with handlers cancelled after the grace period (status 3)",
        EXIT_LOAD_FAILED: "could not load the application (status 4)",
    }.get(status, f"exited with status {status}")


