"""`dispytch run`: run a service's listener, in one process or under a supervisor."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import click

from dispytch.supervisor import Supervisor, worker_command
from dispytch.worker import run_worker

LOG_LEVELS = ["critical", "error", "warning", "info", "debug"]


@click.command()
@click.argument("target", envvar="DISPYTCH_APP", metavar="MODULE:LISTENER")
@click.option(
    "--workers", "-w", type=click.IntRange(min=1), default=1, show_default=True,
    envvar="DISPYTCH_WORKERS", show_envvar=True,
    help="Worker processes, all in the listener's consumer group, under one supervisor.",
)
@click.option(
    "--reload", is_flag=True, envvar="DISPYTCH_RELOAD", show_envvar=True,
    help="Restart the workers when a .py file changes (development only; needs watchfiles).",
)
@click.option(
    "--reload-dir", "reload_dirs", multiple=True, type=click.Path(exists=True, file_okay=False),
    envvar="DISPYTCH_RELOAD_DIRS", show_envvar=True,
    help="Folder to watch with --reload (repeatable; default: --app-dir).",
)
@click.option(
    "--app-dir", default=".", show_default=True, type=click.Path(file_okay=False),
    envvar="DISPYTCH_APP_DIR", show_envvar=True,
    help="Folder put first on sys.path before importing the target.",
)
@click.option(
    "--stop-timeout", type=click.FloatRange(min=0), default=60.0, show_default=True,
    envvar="DISPYTCH_STOP_TIMEOUT", show_envvar=True,
    help="Seconds the supervisor waits for workers to drain after SIGTERM before killing "
    "them (keep it above the listener's shutdown_grace).",
)
@click.option(
    "--log-level", type=click.Choice(LOG_LEVELS, case_sensitive=False), default="info",
    show_default=True, envvar="DISPYTCH_LOG_LEVEL", show_envvar=True,
)
@click.option("--supervised", is_flag=True, hidden=True)
def run(
    target: str,
    workers: int,
    reload: bool,
    reload_dirs: tuple[str, ...],
    app_dir: str,
    stop_timeout: float,
    log_level: str,
    supervised: bool,
) -> None:
    """Run the EventListener MODULE:LISTENER until SIGINT or SIGTERM.

    MODULE:LISTENER names an EventListener, or a function (sync or async, no arguments) that
    returns one: `myservice.app:listener`, `myservice.app:make_listener`. It may also come from
    $DISPYTCH_APP. Every option may be given by its environment variable.

    On SIGTERM or SIGINT every worker stops fetching, lets its in-flight handlers finish
    (the listener's shutdown_grace) and settles them. Exit status: 0 when every worker
    drained cleanly; 1 when a worker failed or did not drain; 3 (one process) when handlers
    were cancelled after the grace period; 4 when the target could not be loaded.
    """
    _configure_logging(log_level, supervised)
    if supervised or (workers == 1 and not reload):
        sys.exit(run_worker(target, app_dir, supervised=supervised))
    watched: list[Path] = []
    if reload:
        try:
            import watchfiles  # noqa: F401
        except ImportError:
            raise click.UsageError(
                "--reload needs the 'watchfiles' package: pip install 'dispytch[reload]'"
            ) from None
        watched = [Path(folder) for folder in reload_dirs or (app_dir,)]
    command = worker_command(target, app_dir, log_level)
    supervisor = Supervisor(command, workers, stop_timeout=stop_timeout, reload_dirs=watched)
    sys.exit(supervisor.run())


def _configure_logging(level: str, supervised: bool) -> None:
    role = "worker" if supervised else "dispytch"
    logging.basicConfig(
        stream=sys.stderr,
        level=level.upper(),
        format=f"%(asctime)s %(levelname)s {role}[{os.getpid()}] %(name)s: %(message)s",
    )
