"""SIGINT/SIGTERM stop every listener running in the process, gracefully; a second signal
forces a quick exit.

The first signal asks each listener to stop: it stops fetching, lets running handlers finish
within `shutdown_grace`, settles and closes. The handlers stay installed for the whole shutdown,
so that a second signal (Ctrl-C twice) does not end the process with a raw `KeyboardInterrupt`
and an unclosed client: it cancels the running handlers at once, closes the consumer within a
short bound, and `listen()` then raises `SystemExit(128 + signal number)` (130 for SIGINT). What
was not settled is delivered again by the broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Iterator
from typing import Protocol

logger = logging.getLogger("dispytch.listener")


class Stoppable(Protocol):
    """What a signal stops (an `EventListener`)."""

    async def stop(self) -> None: ...

    def force_stop(self, signum: int) -> None: ...


_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_listening: set[Stoppable] = set()
_stopping: set[asyncio.Task[None]] = set()
#: a signal already asked the listeners to stop: the next one forces the exit
_signalled = False


@contextlib.contextmanager
def stop_on_signals(listener: Stoppable) -> Iterator[None]:
    global _signalled
    loop = asyncio.get_running_loop()
    if not _listening:
        _signalled = False
        try:
            for signum in _SIGNALS:
                loop.add_signal_handler(signum, _on_signal, signum)
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


def _on_signal(signum: int) -> None:
    global _signalled
    name = signal.Signals(signum).name
    if _signalled:
        logger.warning(
            "received %s again: forcing the exit; running handlers are cancelled now and the "
            "consumer is closed within a short bound (what was not settled is delivered again)",
            name,
        )
        for listener in list(_listening):
            listener.force_stop(signum)
        return
    _signalled = True
    logger.info(
        "received %s; stopping %d listener(s) gracefully (send it again to force the exit)",
        name,
        len(_listening),
    )
    for listener in list(_listening):
        task = asyncio.get_running_loop().create_task(listener.stop())
        _stopping.add(task)  # the loop keeps only weak references to tasks
        task.add_done_callback(_stopping.discard)
