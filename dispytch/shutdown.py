"""Steps of a listener's shutdown that must not hang.

A client waiting for a broker that is gone (a final commit, a consumer cancel, a connection
attempt) can wait forever; the process must still stop. So each step is waited for at most a
bound, and the shutdown goes on without it; what it did not settle is delivered again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable

logger = logging.getLogger("dispytch.listener")


async def limited(what: str, call: Awaitable[None], timeout: float) -> None:
    """Run a consumer call, for at most `timeout` seconds.

    The call runs in a task of its own, so that a `CancelledError` it raises (a client's
    future cancelled under it) is told apart from the cancellation of `listen()` on every
    Python version: the first is logged like any error, the second goes on up."""
    task = asyncio.ensure_future(call)
    task.add_done_callback(retrieve_outcome)
    try:
        await asyncio.wait({task}, timeout=timeout)
    except asyncio.CancelledError:
        task.cancel()
        raise
    if not task.done():
        task.cancel()
        logger.warning(
            "%s took longer than %.1fs (is the broker down?); going on without it", what, timeout
        )
    elif task.cancelled():
        logger.error("error while %s: the client raised CancelledError", what)
    elif (error := task.exception()) is not None:
        if not isinstance(error, Exception):
            raise error
        logger.error("error while %s", what, exc_info=error)


async def wait_cancelled(what: str, task: asyncio.Task[None], timeout: float) -> None:
    """Wait for a task that was cancelled to end, for at most `timeout` seconds (a task that
    does not give up when cancelled is left to finish on its own)."""
    if not task.done():
        await asyncio.wait({task}, timeout=timeout)
        if not task.done():
            logger.warning(
                "%s did not end within %.1fs of its cancellation; going on without it",
                what,
                timeout,
            )
    task.add_done_callback(retrieve_outcome)


def retrieve_outcome(task: asyncio.Future[None]) -> None:
    """Mark the outcome of a task given up on as seen (no "never retrieved" warning)."""
    if not task.cancelled():
        task.exception()
