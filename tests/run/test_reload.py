"""`dispytch run --reload`: editing a module of the service restarts its worker."""

from __future__ import annotations

import textwrap
from pathlib import Path

from .processes import Service, wait_for

MODULE = textwrap.dedent(
    """
    import os
    from pathlib import Path

    from dispytch import Event, EventListener, InMemoryBroker

    VERSION = {version}
    with Path(os.environ["RELOAD_LOG"]).open("a") as log:
        log.write(f"{{os.getpid()}} {{VERSION}}\\n")

    listener = EventListener(InMemoryBroker().consumer())


    @listener.handler(topic="t", event="e")
    async def handle(event: Event) -> None:
        pass
    """
)


def loads(log: Path) -> list[tuple[int, int]]:
    if not log.exists():
        return []
    return [(int(pid), int(version)) for pid, version in
            (line.split() for line in log.read_text().splitlines())]


async def test_editing_a_module_restarts_the_worker(tmp_path: Path) -> None:
    app = tmp_path / "app"
    app.mkdir()
    (app / "reloaded_service.py").write_text(MODULE.format(version=1))
    log = tmp_path / "loads.log"
    run = Service(
        ["reloaded_service:listener", "--reload", "--app-dir", str(app)],
        tmp_path / "service.log", {"RELOAD_LOG": str(log)},
    )
    await run.start()
    try:
        await wait_for(lambda: len(loads(log)) == 1, 60, "the first load", run)
        await wait_for(lambda: "listening" in run.log_text(), 30, "the worker to listen", run)
        (app / "reloaded_service.py").write_text(MODULE.format(version=2))
        await wait_for(lambda: len(loads(log)) == 2, 60, "the reload", run)
        (first_pid, first), (second_pid, second) = loads(log)
        assert (first, second) == (1, 2)
        assert first_pid != second_pid, "the new code runs in a new worker process"
        assert "restarting the workers" in run.log_text()
        assert await run.terminate(60) == 0, run.log_tail()
    finally:
        await run.kill_all()


async def test_a_broken_edit_waits_for_the_fix(tmp_path: Path) -> None:
    """A syntax error makes the worker fail (restarted with backoff, the supervisor goes on);
    the edit that fixes it brings the service back."""
    app = tmp_path / "app"
    app.mkdir()
    module = app / "reloaded_service.py"
    module.write_text(MODULE.format(version=1))
    log = tmp_path / "loads.log"
    run = Service(
        ["reloaded_service:listener", "--reload", "--app-dir", str(app)],
        tmp_path / "service.log", {"RELOAD_LOG": str(log)},
    )
    await run.start()
    try:
        await wait_for(lambda: "listening" in run.log_text(), 60, "the worker to listen", run)
        module.write_text("this is not python\n")
        await wait_for(lambda: run.log_text().count("restarting it in") >= 2, 60,
                       "the broken module to fail twice", run)
        module.write_text(MODULE.format(version=3))
        await wait_for(lambda: [v for _, v in loads(log)] == [1, 3], 20, "the fixed module", run)
        assert await run.terminate(60) == 0, run.log_tail()
    finally:
        await run.kill_all()
