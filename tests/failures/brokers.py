"""Stopping and starting the real brokers (through scripts/brokers) for the outage scenarios."""

from __future__ import annotations

import asyncio
import os
import time
from urllib.parse import urlsplit

import pytest

from . import clients
from .processes import REPO

SCRIPT = REPO / "scripts" / "brokers"
#: stopping or starting a broker takes ~5-10 s here; allow for a slow machine
COMMAND_TIMEOUT = 240.0


def require_local(name: str) -> None:
    """Outage tests stop the broker: it must be the local one that scripts/brokers manages."""
    if name == "kafka":
        host = clients.KAFKA_BOOTSTRAP.split(",")[0].rpartition(":")[0]
    else:
        url = clients.REDIS_URL if name == "redis" else clients.RABBITMQ_URL
        host = urlsplit(url).hostname or ""
    if host in {"127.0.0.1", "localhost"} and SCRIPT.exists():
        return
    message = f"stopping {name} needs the local broker of scripts/brokers (it is at {host!r})"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


class BrokerControl:
    """Runs `scripts/brokers <action> <name>`; remembers what it stopped, to start it again."""

    def __init__(self) -> None:
        self.touched: set[str] = set()

    async def run(self, action: str, name: str) -> float:
        """The command's duration in seconds; fails the test when the command fails."""
        require_local(name)
        self.touched.add(name)
        began = time.monotonic()
        process = await asyncio.create_subprocess_exec(
            str(SCRIPT),
            action,
            name,
            cwd=REPO,
            # a restart in the middle of a test must keep the topics the test reads
            env={**os.environ, "DISPYTCH_KAFKA_KEEP_STORAGE": "1"},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            output, _ = await asyncio.wait_for(process.communicate(), COMMAND_TIMEOUT)
        except asyncio.TimeoutError:
            process.kill()
            raise AssertionError(
                f"scripts/brokers {action} {name} took over {COMMAND_TIMEOUT}s"
            ) from None
        assert process.returncode == 0, f"scripts/brokers {action} {name}: {output.decode()}"
        return time.monotonic() - began

    async def restore(self) -> None:
        """Start again whatever was touched (a no-op for brokers that are up)."""
        for name in sorted(self.touched):
            await self.run("start", name)
