"""`dispytch run` on the in-memory broker (no broker needed): signals, exit statuses, the
supervisor's restarts and forwarding, options from the environment, loading errors."""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from dispytch.cli._app import cli
from tests.failures.processes import Records

from .processes import Service, wait_for

APP = "tests.run.memory_app:make_listener"
MakeService = Callable[..., Service]


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[MakeService]:
    started: list[Service] = []

    def make(*args: str, **env: str) -> Service:
        made = Service(args, tmp_path / "service.log", env)
        started.append(made)
        return made

    yield make
    for made in started:
        await made.kill_all()


def env(records: Records, **more: str) -> dict[str, str]:
    return {"MEMORY_RECORDS": str(records.path), **more}


async def test_sigterm_lets_the_running_handler_finish(
    service: MakeService, tmp_path: Path
) -> None:
    records = Records(tmp_path / "records.log")
    run = await service(APP, **env(records, MEMORY_DELAY="1")).start()
    await wait_for(lambda: records.refresh().started, 30, "the handler to start", run)
    assert await run.terminate(30) == 0, run.log_tail()
    assert records.refresh().done == {"ping-0": 1}


async def test_handlers_cut_at_the_grace_period_give_status_3(
    service: MakeService, tmp_path: Path
) -> None:
    records = Records(tmp_path / "records.log")
    run = service(APP, **env(records, MEMORY_DELAY="60", MEMORY_GRACE="0.2"))
    await run.start()
    await wait_for(lambda: records.refresh().started, 30, "the handler to start", run)
    assert await run.terminate(30) == 3, run.log_tail()
    assert not records.refresh().done


@pytest.mark.parametrize("workers", ["1", "2"])
async def test_a_target_that_does_not_load_gives_status_4_at_once(
    service: MakeService, workers: str
) -> None:
    run = await service("tests.run.memory_app:not_a_listener", "--workers", workers).start()
    assert await run.wait(60) == 4, run.log_tail()
    log = run.log_text()
    assert "is a int, not an EventListener" in log
    assert "restarting" not in log


async def test_the_supervisor_forwards_sigterm_and_every_worker_drains(
    service: MakeService, tmp_path: Path
) -> None:
    records = Records(tmp_path / "records.log")
    # the worker count from the environment, as DISPYTCH_WORKERS documents
    run = service(APP, **env(records, MEMORY_DELAY="1", DISPYTCH_WORKERS="2"))
    await run.start()
    await wait_for(lambda: len(records.refresh().started) >= 1 and len(records.ready) == 2,
                   60, "two workers handling", run)
    assert records.ready == run.worker_pids()
    assert await run.terminate(60) == 0, run.log_tail()
    records.refresh()
    assert records.done == records.started, "a handler was cut short"
    assert sum(records.done.values()) == 2, "each worker's own broker had one event"
    assert "all drained" in run.log_text()


async def test_a_killed_worker_is_restarted_and_the_supervisor_says_why(
    service: MakeService, tmp_path: Path
) -> None:
    records = Records(tmp_path / "records.log")
    run = await service(APP, "--workers", "2", **env(records)).start()
    await wait_for(lambda: len(records.refresh().ready) == 2, 60, "two workers", run)
    victim = min(records.ready)
    os.kill(victim, signal.SIGKILL)
    await wait_for(lambda: len(records.refresh().ready) == 3, 60, "a new worker", run)
    assert victim not in run.worker_pids()
    assert len(run.worker_pids()) == 2
    assert f"(pid {victim}) was killed by SIGKILL" in run.log_text()
    assert await run.terminate(60) == 0, run.log_tail()


async def test_workers_stop_when_the_supervisor_is_killed(
    service: MakeService, tmp_path: Path
) -> None:
    records = Records(tmp_path / "records.log")
    run = await service(APP, "--workers", "2", **env(records)).start()
    await wait_for(lambda: len(records.refresh().ready) == 2, 60, "two workers", run)
    workers = run.worker_pids()
    await run.kill()
    gone = [pid for pid in workers if not _wait_gone(pid, 30)]
    assert not gone, f"workers {gone} outlived their supervisor"


def _wait_gone(pid: int, timeout: float) -> bool:
    import psutil

    try:
        psutil.Process(pid).wait(timeout)
    except psutil.NoSuchProcess:
        return True
    except psutil.TimeoutExpired:
        return False
    return True


def test_help_shows_the_environment_variables() -> None:
    result = CliRunner().invoke(cli, ["run", "--help"])
    assert result.exit_code == 0
    for variable in ("DISPYTCH_WORKERS", "DISPYTCH_RELOAD", "DISPYTCH_APP_DIR",
                     "DISPYTCH_STOP_TIMEOUT", "DISPYTCH_LOG_LEVEL", "DISPYTCH_APP"):
        assert variable in result.output


async def test_the_supervisor_exits_1_when_a_worker_did_not_drain(
    service: MakeService, tmp_path: Path
) -> None:
    records = Records(tmp_path / "records.log")
    run = service(APP, "--workers", "2", **env(records, MEMORY_DELAY="60", MEMORY_GRACE="0.2"))
    await run.start()
    await wait_for(lambda: sum(records.refresh().started.values()) == 2, 60,
                   "both handlers running", run)
    assert await run.terminate(60) == 1, run.log_tail()
    log = run.log_text()
    assert "handlers cancelled after the grace period" in log
    assert "NOT all drained cleanly" in log


async def test_workers_still_draining_after_the_stop_timeout_are_killed(
    service: MakeService, tmp_path: Path
) -> None:
    records = Records(tmp_path / "records.log")
    run = service(APP, "--workers", "2", "--stop-timeout", "1",
                  **env(records, MEMORY_DELAY="60", MEMORY_GRACE="60"))
    await run.start()
    await wait_for(lambda: sum(records.refresh().started.values()) == 2, 60,
                   "both handlers running", run)
    workers = run.worker_pids()
    assert await run.terminate(30) == 1, run.log_tail()
    assert "still running 1s after SIGTERM; killing them" in run.log_text()
    assert not [pid for pid in workers if not _wait_gone(pid, 10)]
