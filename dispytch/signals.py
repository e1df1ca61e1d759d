"""SIGINT/SIGTERM stop every listener running in the process, gracefully."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Iterator
from typing import Protocol


class Stoppable(Protocol):
    """What a signal stops (an `EventListener`)."""

    async def stop(self) -> None: ...


logger = logging.getLogger("dispytch.listener")

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_listening: set[Stoppable] = set()
_stopping: set[asyncio.Task[None]] = set()


@contextlib.contextmanager
def stop_on_signals(listener: Stoppable) -> Iterator[None]:
    loop = asyncio.get_running_loop()
    if not _listening:
        try:
            for signum in _SIGNALS:
                loop.add_signal_handler(signum, _stop_all, signum)
        except (NotImplementedError, RuntimeError, ValueError):  # no signals here (Windows, thread)
            logger.debug("cannot install signal handlers; stop the listener yourself")
    _listening.add(listener)
    try:
        yield
    finally:
        _listening.discard(listener)
        if not _listening:
            for signum in _SIGNALS:
                with contextlib.suppress(Exception):
                    loop.remove_signal_handler(signum)


def _stop_all(signum: int) -> None:
    logger.info(
        "received %s; stopping %d listener(s)", signal.Signals(signum).name, len(_listening)
    )
    for listener in list(_listening):
        task = asyncio.get_running_loop().create_task(listener.stop())
        _stopping.add(task)  # the loop keeps only weak references to tasks
        task.add_done_callback(_stopping.discard)
