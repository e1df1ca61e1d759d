"""The supervisor of `dispytch run --workers N` and `--reload`: worker processes kept alive.

Each worker is a new interpreter running `dispytch run TARGET --supervised` (so nothing of the
supervisor's state is inherited). SIGTERM or SIGINT to the supervisor reaches every worker as
SIGTERM, and each drains its in-flight events; a second SIGINT (Ctrl-C twice) kills them, a
second SIGTERM changes nothing. A worker that dies
while the supervisor is not stopping is started again after a backoff (0.5 s doubling to 30 s;
back to 0.5 s once a worker has run for a minute), and the supervisor logs why it died. A
worker that cannot load the application stops everything (restarting would not help).

The supervisor's exit status: 0 when every worker stopped cleanly (status 0), 4 when the
application could not be loaded, 1 otherwise (a worker failed, did not drain, or had to be
killed after `stop_timeout`).

With `--reload`, a worker that cannot load the application (a typo being fixed) is started
again when a file changes, or after its backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from dispytch.worker import EXIT_DRAINED, EXIT_LOAD_FAILED, describe_exit

logger = logging.getLogger("dispytch.supervisor")

_FIRST_RESTART_DELAY = 0.5
_MAX_RESTART_DELAY = 30.0
#: a worker that ran this long before dying starts the backoff from the beginning again
_STABLE_SECONDS = 60.0
#: environment variables the supervisor sets for each worker
WORKER_INDEX_VARIABLE = "DISPYTCH_WORKER_INDEX"


@dataclass
class _Slot:
    index: int
    process: asyncio.subprocess.Process | None = None
    started_at: float = 0.0
    failures: int = 0
    restart_now: bool = False
    #: the exit status of the last process, once the supervisor is stopping
    final_status: int | None = None
    history: list[int] = field(default_factory=list)
    #: set by a source change (--reload): ends a backoff wait at once
    wake: asyncio.Event = field(default_factory=asyncio.Event)


class Supervisor:
    """Runs `command` (a worker's argv) `workers` times and keeps each one running."""

    def __init__(
        self,
        command: Sequence[str],
        workers: int,
        *,
        stop_timeout: float = 60.0,
        reload_dirs: Sequence[Path] = (),
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.command = list(command)
        self.stop_timeout = stop_timeout
        self.reload_dirs = list(reload_dirs)
        self._slots = [_Slot(index) for index in range(workers)]
        self._stopping = asyncio.Event()
        self._load_failed = False

    def run(self) -> int:
        return asyncio.run(self.supervise())

    async def supervise(self) -> int:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._on_signal, signum)
        keepers = [asyncio.create_task(self._keep(slot)) for slot in self._slots]
        watcher = asyncio.create_task(self._watch()) if self.reload_dirs else None
        logger.info(
            "supervisor %d: %d worker(s)%s", os.getpid(), len(self._slots),
            ", reloading on changes" if watcher else "",
        )
        try:
            await self._stopping.wait()
            _, pending = await asyncio.wait(keepers, timeout=self.stop_timeout)
            if pending:
                logger.error(
                    "%d worker(s) still running %.0fs after SIGTERM; killing them",
                    len(pending), self.stop_timeout,
                )
                self._kill_all()
                await asyncio.wait(pending, timeout=10)
        finally:
            if watcher is not None:
                watcher.cancel()
            for task in keepers:
                task.cancel()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
        return self._exit_status()

    def _exit_status(self) -> int:
        if self._load_failed:
            return EXIT_LOAD_FAILED
        statuses = [slot.final_status for slot in self._slots]
        clean = all(status == EXIT_DRAINED for status in statuses)
        logger.info(
            "supervisor %d: workers stopped (%s); %s", os.getpid(),
            ", ".join("killed" if s is None else describe_exit(s) for s in statuses),
            "all drained" if clean else "NOT all drained cleanly",
        )
        return 0 if clean else 1

    # -- one worker slot ------------------------------------------------------------------

    async def _keep(self, slot: _Slot) -> None:
        while True:
            if self._stopping.is_set():  # stopped while this slot waited to restart
                slot.final_status = slot.history[-1] if slot.history else EXIT_DRAINED
                return
            process = await self._start(slot)
            status = await process.wait()
            ran = time.monotonic() - slot.started_at
            slot.history.append(status)
            if self._stopping.is_set():
                # killed by our SIGTERM before its listener took the signal: nothing in flight
                slot.final_status = EXIT_DRAINED if status == -signal.SIGTERM else status
                return
            if slot.restart_now:
                slot.restart_now = False
                slot.failures = 0
                continue
            if status == EXIT_LOAD_FAILED and not self.reload_dirs:
                logger.error(
                    "worker %d (pid %d) could not load the application; stopping",
                    slot.index, process.pid,
                )
                self._load_failed = True
                slot.final_status = status
                self._stop()
                return
            slot.failures = 1 if ran >= _STABLE_SECONDS else slot.failures + 1
            delay = min(_FIRST_RESTART_DELAY * 2 ** (slot.failures - 1), _MAX_RESTART_DELAY)
            logger.warning(
                "worker %d (pid %d) %s after %.1fs; restarting it in %.1fs%s",
                slot.index, process.pid, describe_exit(status), ran, delay,
                " (or when a file changes)" if self.reload_dirs else "",
            )
            await self._pause(slot, delay)
            slot.restart_now = False
            if self._stopping.is_set():
                slot.final_status = status
                return

    async def _pause(self, slot: _Slot, delay: float) -> None:
        """Wait `delay` seconds, less if the supervisor stops or a source file changes."""
        slot.wake.clear()
        waiters = {
            asyncio.ensure_future(self._stopping.wait()),
            asyncio.ensure_future(slot.wake.wait()),
        }
        try:
            await asyncio.wait(waiters, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    async def _start(self, slot: _Slot) -> asyncio.subprocess.Process:
        env = dict(os.environ)
        env[WORKER_INDEX_VARIABLE] = str(slot.index)
        slot.process = await asyncio.create_subprocess_exec(
            *self.command,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            # its own process group: a terminal's Ctrl-C reaches the supervisor alone, which
            # forwards one SIGTERM (rather than every worker getting SIGINT twice)
            start_new_session=True,
        )
        slot.started_at = time.monotonic()
        logger.info("worker %d started (pid %d)", slot.index, slot.process.pid)
        return slot.process

    # -- stopping and reloading -----------------------------------------------------------

    def _on_signal(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if not self._stopping.is_set():
            logger.info("supervisor received %s; stopping the workers (they drain)", name)
            self._stop()
        elif signum == signal.SIGINT:
            # Ctrl-C twice: the user does not want to wait
            logger.warning("supervisor received SIGINT again; killing the workers")
            self._kill_all()
        else:
            # process managers may send SIGTERM more than once (or to the whole group)
            logger.info("supervisor received %s again; the workers are already draining", name)

    def _stop(self) -> None:
        self._stopping.set()
        self._send_all(signal.SIGTERM)

    def _kill_all(self) -> None:
        self._send_all(signal.SIGKILL)

    def _send_all(self, signum: int) -> None:
        for slot in self._slots:
            process = slot.process
            if process is not None and process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signum)

    async def _watch(self) -> None:
        from watchfiles import PythonFilter, awatch

        async for changes in awatch(
            *self.reload_dirs, watch_filter=PythonFilter(), stop_event=self._stopping
        ):
            if self._stopping.is_set():
                return
            changed = sorted({path for _, path in changes})
            logger.info("changes in %s; restarting the workers", ", ".join(changed[:5]))
            for slot in self._slots:
                slot.restart_now = True
                slot.wake.set()
            self._send_all(signal.SIGTERM)


def worker_command(target: str, app_dir: str | None, log_level: str) -> list[str]:
    """The argv of one supervised worker (this interpreter, running `dispytch run`)."""
    command = [sys.executable, "-m", "dispytch.cli", "run", target, "--supervised"]
    command += ["--log-level", log_level]
    if app_dir is not None:
        command += ["--app-dir", app_dir]
    return command
