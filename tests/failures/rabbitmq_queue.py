"""A RabbitMQ queue's messages as the broker counts them, unacknowledged ones included.

Over AMQP a client learns only how many messages of a queue are ready (a passive
queue.declare); those delivered to a consumer and not acknowledged yet are counted by the
broker's own tools. The failure tests ask `rabbitmqctl` on this machine: their broker is the
local one of scripts/brokers.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from urllib.parse import unquote, urlsplit

from . import clients

#: `rabbitmqctl` starts an Erlang VM for each call: about half a second here, more under load
RABBITMQCTL_TIMEOUT = 60.0


def _vhost() -> str:
    return unquote(urlsplit(clients.RABBITMQ_URL).path[1:]) or "/"


def rabbitmqctl_problem() -> str | None:
    """Why `rabbitmqctl` cannot count the test broker's queues (None: it can)."""
    host = urlsplit(clients.RABBITMQ_URL).hostname or ""
    if host not in {"127.0.0.1", "localhost", "::1"}:
        return f"counting unacknowledged messages needs the local broker (it is at {host!r})"
    if shutil.which("rabbitmqctl") is None:
        return "counting unacknowledged messages needs rabbitmqctl (scripts/brokers installs it)"
    return None


async def queue_messages(queue: str) -> tuple[int, int]:
    """(ready, unacknowledged) messages of `queue`; fails when the broker cannot tell."""
    problem = rabbitmqctl_problem()
    assert problem is None, problem
    process = await asyncio.create_subprocess_exec(
        "rabbitmqctl", "-q", "list_queues", "--vhost", _vhost(), "--no-table-headers",
        "name", "messages_ready", "messages_unacknowledged",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "ERL_EPMD_ADDRESS": "127.0.0.1"},
    )
    try:
        output, errors = await asyncio.wait_for(process.communicate(), RABBITMQCTL_TIMEOUT)
    except asyncio.TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError(f"rabbitmqctl list_queues took over {RABBITMQCTL_TIMEOUT}s") from None
    assert process.returncode == 0, f"rabbitmqctl list_queues: {errors.decode(errors='replace')}"
    for line in output.decode(errors="replace").splitlines():
        name, _, counts = line.partition("\t")
        if name == queue:
            ready, _, unacknowledged = counts.partition("\t")
            return int(ready), int(unacknowledged)
    raise AssertionError(f"rabbitmqctl does not list the queue {queue!r}")
