"""The clusters of scripts/brokers (kafka-cluster, rabbitmq-cluster), as the cluster tests
drive them: is the cluster there, kill one node (SIGKILL), start it again."""

from __future__ import annotations

import asyncio
import os

import pytest

from tests.failures.processes import REPO

SCRIPT = REPO / "scripts" / "brokers"
#: starting a node waits until the cluster sees it (scripts/brokers bounds it at 180 s)
COMMAND_TIMEOUT = 240.0


async def brokers(*args: str, timeout: float = COMMAND_TIMEOUT) -> tuple[int, str]:
    """`scripts/brokers <args>`: the exit status and the output."""
    process = await asyncio.create_subprocess_exec(
        str(SCRIPT),
        *args,
        cwd=REPO,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), timeout)
    except asyncio.TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError(f"scripts/brokers {' '.join(args)} took over {timeout}s") from None
    assert process.returncode is not None
    return process.returncode, output.decode(errors="replace")


class ClusterControl:
    """Kills and starts the nodes of one cluster; `restore()` starts what it killed."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.killed: set[int] = set()

    async def require(self) -> None:
        """Skip (fail under CI=true) when the cluster does not answer."""
        status, output = await brokers("status", self.name, timeout=60)
        if status == 0:
            return
        message = (
            f"{self.name} does not answer ({output.strip()}); "
            f"start it with scripts/brokers start {self.name}"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)

    async def kill(self, node: int) -> None:
        self.killed.add(node)
        await self._node("kill", node)

    async def start(self, node: int) -> None:
        await self._node("start", node)
        self.killed.discard(node)

    async def restore(self) -> None:
        for node in sorted(self.killed):
            await self.start(node)

    async def _node(self, action: str, node: int) -> None:
        status, output = await brokers("node", self.name, action, str(node))
        assert status == 0, f"scripts/brokers node {self.name} {action} {node}: {output}"
