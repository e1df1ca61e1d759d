"""Which event loop a client belongs to.

Network clients (aiokafka, aio-pika) belong to the event loop they were started in: used from
another loop they wait for answers that never come. Producers remember their loop with
`LoopBinding`; one that finds itself in another loop either starts afresh (a client it owns,
whose old loop is closed: nothing else can use that client any more) or refuses at once with
`other_loop_error`, instead of waiting its whole timeout and blaming the broker.
"""

from __future__ import annotations

import asyncio

from dispytch.errors import ProducerError


class LoopBinding:
    """The event loop something was started in."""

    __slots__ = ("loop",)

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None

    def bind(self) -> None:
        """Belong to the running loop from now on."""
        self.loop = asyncio.get_running_loop()

    def clear(self) -> None:
        self.loop = None

    def other_loop(self) -> asyncio.AbstractEventLoop | None:
        """The loop this was started in, when that is not the running one (else None)."""
        loop = self.loop
        if loop is None or loop is asyncio.get_running_loop():
            return None
        return loop


def other_loop_error(what: str, loop: asyncio.AbstractEventLoop) -> ProducerError:
    state = "closed now" if loop.is_closed() else "still running in another thread"
    return ProducerError(
        f"{what} belongs to another event loop ({state}) and cannot be used in this one; "
        "create it (and the emitter) inside the event loop that uses it, for example in the "
        "coroutine given to asyncio.run()"
    )
