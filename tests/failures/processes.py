"""Worker processes as the tests drive them (start, SIGKILL, SIGTERM), and their records."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
_VENV_PYTHON = REPO / ".venv" / "bin" / "python"
PYTHON = str(_VENV_PYTHON) if _VENV_PYTHON.exists() else sys.executable


class Records:
    """The lines workers appended to one records file, read incrementally."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.touch()
        self._offset = 0
        self._partial = b""
        #: how many times each event id was recorded as done ("D" lines)
        self.done: Counter[str] = Counter()
        #: the same for "S" lines (handler started)
        self.started: Counter[str] = Counter()
        #: pids of workers whose listener handles SIGTERM ("R" lines)
        self.ready: set[int] = set()

    def refresh(self) -> Records:
        with self.path.open("rb") as file:
            file.seek(self._offset)
            chunk = file.read()
        self._offset += len(chunk)
        data = self._partial + chunk
        *lines, self._partial = data.split(b"\n")
        for line in lines:
            tag, _, value = line.decode().partition(" ")
            if tag == "D":
                self.done[value] += 1
            elif tag == "S":
                self.started[value] += 1
            else:
                self.ready.add(int(value))
        return self

    @property
    def unique(self) -> int:
        return len(self.done)

    @property
    def duplicates(self) -> int:
        """Handler runs beyond the first, summed over events."""
        return sum(self.done.values()) - len(self.done)


class Worker:
    """One run of `tests.failures.worker` (stderr goes to `log`, appended)."""

    def __init__(
        self, args: Sequence[str], log: Path, env: Mapping[str, str] | None = None
    ) -> None:
        self.args = list(args)
        self.log = log
        #: the process's environment variables (default: this process's)
        self.env = None if env is None else dict(env)
        self.process: asyncio.subprocess.Process | None = None
        self.started_at = 0.0

    async def start(self) -> Worker:
        with self.log.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                PYTHON,
                "-m",
                "tests.failures.worker",
                *self.args,
                cwd=REPO,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=self.env,
            )
        self.started_at = time.monotonic()
        return self

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def signal(self, signum: int) -> None:
        if self.alive:
            assert self.process is not None
            self.process.send_signal(signum)

    async def wait(self, timeout: float) -> int:
        assert self.process is not None
        try:
            return await asyncio.wait_for(self.process.wait(), timeout)
        except asyncio.TimeoutError:
            self.signal(signal.SIGUSR1)  # the worker prints where its tasks wait
            await asyncio.sleep(0.5)
            raise AssertionError(
                f"worker {self.pid} did not exit within {timeout}s\n{self.log_tail(150)}"
            ) from None

    async def kill(self) -> None:
        """SIGKILL, and wait until the process is gone."""
        self.signal(signal.SIGKILL)
        if self.process is not None:
            await self.wait(10)

    async def terminate(self, timeout: float) -> int:
        """SIGTERM (a graceful stop); the exit status."""
        self.signal(signal.SIGTERM)
        return await self.wait(timeout)

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return "(no worker log)"
        return "\n".join(["--- worker log (tail)", *text[-lines:]])


async def wait_for_records(
    records: Records,
    count: int,
    timeout: float,
    worker: Worker | None = None,
    what: str = "events handled",
) -> None:
    """Poll until `records` holds `count` distinct done events; fail on timeout, or
    when `worker` exits meanwhile."""
    deadline = time.monotonic() + timeout
    while records.refresh().unique < count:
        if worker is not None and not worker.alive:
            raise AssertionError(
                f"worker {worker.pid} exited early ({records.unique} {what})\n{worker.log_tail()}"
            )
        if time.monotonic() > deadline:
            tail = worker.log_tail() if worker is not None else ""
            raise AssertionError(
                f"only {records.unique}/{count} {what} after {timeout}s\n{tail}"
            )
        await asyncio.sleep(0.02)


async def wait_ready(records: Records, worker: Worker, timeout: float = 30.0) -> None:
    """Wait until `worker` listens (SIGTERM then stops it gracefully)."""
    deadline = time.monotonic() + timeout
    while worker.pid not in records.refresh().ready:
        if not worker.alive or time.monotonic() > deadline:
            raise AssertionError(f"worker {worker.pid} never got ready\n{worker.log_tail()}")
        await asyncio.sleep(0.02)


async def stop_gracefully(records: Records, worker: Worker, timeout: float = 30.0) -> int:
    """SIGTERM, once the worker listens; its exit status."""
    await wait_ready(records, worker)
    return await worker.terminate(timeout)
