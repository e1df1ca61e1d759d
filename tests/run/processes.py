"""`dispytch run` as the tests drive it: a subprocess (the supervisor or a lone worker),
reusing the failure tests' `Worker` (signals, bounded waits, log tail) and `Records`."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import psutil

from tests.failures.processes import PYTHON, REPO, Records, Worker


class Service(Worker):
    """`python -m dispytch.cli run ARGS` with extra environment variables."""

    def __init__(
        self, args: Sequence[str], log: Path, env: Mapping[str, str], cwd: Path = REPO
    ) -> None:
        super().__init__(args, log)
        self.env = {**os.environ, **env}
        self.cwd = cwd

    async def start(self) -> Service:
        with self.log.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                PYTHON, "-m", "dispytch.cli", "run", *self.args,
                cwd=self.cwd, env=self.env,
                stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
            )
        self.started_at = time.monotonic()
        return self

    def worker_pids(self) -> set[int]:
        """The supervisor's live worker processes."""
        with contextlib.suppress(psutil.NoSuchProcess):
            return {child.pid for child in psutil.Process(self.pid).children()}
        return set()

    async def kill_all(self) -> None:
        """SIGKILL the supervisor and its workers (cleanup after a failed test)."""
        if self.process is None:
            return
        children: list[psutil.Process] = []
        with contextlib.suppress(psutil.NoSuchProcess):
            children = psutil.Process(self.pid).children(recursive=True)
        await self.kill()
        for child in children:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


class RecordSet:
    """The records files of every worker (`records-<pid>.log` in one folder)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.template = str(folder / "records-{pid}.log")
        self.by_pid: dict[int, Records] = {}

    def refresh(self) -> RecordSet:
        for path in self.folder.glob("records-*.log"):
            pid = int(path.stem.split("-")[1])
            if pid not in self.by_pid:
                self.by_pid[pid] = Records(path)
        for records in self.by_pid.values():
            records.refresh()
        return self

    @property
    def done(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for records in self.by_pid.values():
            total.update(records.done)
        return total

    @property
    def started(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for records in self.by_pid.values():
            total.update(records.started)
        return total

    @property
    def ready(self) -> set[int]:
        return {pid for records in self.by_pid.values() for pid in records.ready}


async def wait_for(condition: object, timeout: float, what: str, service: Service) -> None:
    """Poll `condition()` until true; fail with the service's log on timeout or early exit."""
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while not condition():
        if not service.alive:
            raise AssertionError(f"dispytch run exited early waiting for {what}\n"
                                 f"{service.log_tail(80)}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}\n"
                                 f"{service.log_tail(80)}")
        await asyncio.sleep(0.05)
