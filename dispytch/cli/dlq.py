"""`dispytch dlq list | show | replay`: inspect and replay dead letters.

Exit codes: 0 done, 1 an error (broker, missing topic or queue, letters not replayed),
2 wrong usage.

Whatever is printed, log lines included, shows the broker URL's password masked, and text that
came from a broker with its control characters escaped (`terminal.printable`).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import io
import logging
import sys
from collections.abc import Callable, Coroutine, Iterable, Iterator
from typing import Any, TextIO, TypeVar

import click

from dispytch.cli import render
from dispytch.cli.connection import connection_options, connection_settings
from dispytch.cli.terminal import printable, printable_lines
from dispytch.credentials import masked, url_secrets
from dispytch.deadletters import (
    DeadLetter,
    DeadLetterStore,
    LetterFilter,
    StoreUsageError,
    find_letters,
    open_store,
    replay_letters,
    select_letters,
)
from dispytch.errors import DispytchError

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


@click.group()
def dlq() -> None:
    """List, show and replay dead letters.

    Select the broker with --broker (or DISPYTCH_BROKER_URL): kafka://host:9092 reads a
    dead-letter topic (--topic orders.dlq, or --source-topic orders); amqp://user@host:5672/
    reads a dead-letter queue (--queue, default dispytch.dlq); redis://host:6379/0 reads a
    dead-letter stream (--topic orders.dlq, or --source-topic orders). kafka+ssl://, amqps://
    and rediss:// use TLS. Other backends add their own schemes (the entry point group
    dispytch.dead_letter_stores). Give the password with --password-file or
    DISPYTCH_BROKER_PASSWORD rather than in the URL, so that it stays out of the shell's
    history (docs/security.md).
    """


def source_options(command: F) -> F:
    options = [
        click.option(
            "--broker",
            envvar="DISPYTCH_BROKER_URL",
            required=True,
            metavar="URL",
            help="kafka://host:port[,host:port], kafka+ssl://..., amqp://user@host:port/vhost, "
            "amqps://..., redis://host:port/db or rediss://... (default: $DISPYTCH_BROKER_URL).",
        ),
        click.option("--topic", help="Kafka: the dead-letter topic; Redis: the stream."),
        click.option(
            "--source-topic",
            help="Kafka: read <SOURCE_TOPIC>.dlq. RabbitMQ: only letters from this topic.",
        ),
        click.option("--queue", help="RabbitMQ: the dead-letter queue (default dispytch.dlq)."),
        click.option(
            "--exchange",
            help="RabbitMQ: the exchange replays go to (default: the queue name without .dlq).",
        ),
        click.option(
            "--replay-group",
            help="Kafka: the consumer group recording replay progress "
            "(default dispytch-dlq-replay).",
        ),
    ]
    command = connection_options(command)  # listed after these in --help
    for option in reversed(options):
        command = option(command)
    return command


def filter_options(command: F) -> F:
    options = [
        click.option("--event-type", multiple=True, help="Only this event type (repeatable)."),
        click.option(
            "--group",
            multiple=True,
            help="RabbitMQ: only letters of this consumer group (or its queue; repeatable).",
        ),
        click.option(
            "--error-type", multiple=True, help="Only this exception class name (repeatable)."
        ),
        click.option(
            "--error-contains", metavar="TEXT", help="Only errors whose message contains TEXT."
        ),
        click.option(
            "--stage",
            multiple=True,
            type=click.Choice(["decode", "validation", "handler", "unhandled", "middleware"]),
            help="Only this stage (repeatable).",
        ),
        click.option("--limit", type=click.IntRange(min=1), help="At most this many letters."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@dlq.command("list")
@source_options
@filter_options
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.option("--all", "include_replayed", is_flag=True, help="Kafka: include replayed letters.")
def list_command(as_json: bool, include_replayed: bool, **options: Any) -> None:
    """List dead letters (without consuming them)."""

    async def run(store: DeadLetterStore, selection: LetterFilter) -> None:
        letters = await select_letters(
            store, selection, limit=options["limit"], include_replayed=include_replayed
        )
        if as_json:
            for letter in letters:
                click.echo(render.json_line(letter))
        elif letters:
            click.echo(render.table(letters))
        else:
            click.echo(f"no dead letters in {printable(store.source)}", err=True)

    _run(run, options)


@dlq.command("show")
@source_options
@click.argument("letter")
@click.option("--json", "as_json", is_flag=True, help="As one JSON object.")
@click.option("--all", "include_replayed", is_flag=True, help="Kafka: include replayed letters.")
def show_command(letter: str, as_json: bool, include_replayed: bool, **options: Any) -> None:
    """Show one dead letter in full: LETTER is its event id, a unique start of it (77ab), or
    its index in `list`."""

    async def run(store: DeadLetterStore, selection: LetterFilter) -> None:
        letters = await select_letters(store, selection, include_replayed=include_replayed)
        found = find_letters(letters, letter)
        if not found:
            raise click.ClickException(printable(f"no dead letter {letter!r} in {store.source}"))
        for number, one in enumerate(found):
            if as_json:
                click.echo(render.json_line(one, full=True))
            else:
                click.echo(("\n" if number else "") + render.details(one))

    _run(run, options)


@dlq.command("replay")
@source_options
@filter_options
@click.option("--dry-run", is_flag=True, help="Print what would be replayed; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print letters as JSON lines.")
@click.option(
    "--progress/--no-progress",
    default=None,
    help="A progress bar on stderr (default: when stderr is a terminal).",
)
def replay_command(as_json: bool, dry_run: bool, progress: bool | None, **options: Any) -> None:
    """Replay dead letters to their original topic, then remove them.

    Each letter's original bytes are published to its original topic, without the
    dispytch-dlq-* and dispytch-attempt headers; once the broker confirmed it, the dead letter
    is removed (RabbitMQ: acked; Kafka: recorded in the replay group's committed offsets).
    """

    async def run(store: DeadLetterStore, selection: LetterFilter) -> None:
        show_bar = sys.stderr.isatty() if progress is None else progress
        total = await store.pending() if show_bar else 0
        with _progress_bar(show_bar, total, "dry run" if dry_run else "replaying") as step:
            report = await replay_letters(
                store,
                selection,
                limit=options["limit"],
                dry_run=dry_run,
                on_scanned=lambda _letter: step(),
            )
        shown = report.selected if dry_run else report.replayed
        if as_json:
            for letter in shown:
                click.echo(render.json_line(letter))
        elif dry_run and shown:
            click.echo(render.table(shown))
        for letter, why in report.failed:
            click.echo(_shown(f"not replayed: {_name(letter)}: {why}"), err=True)
        verb = "would replay" if dry_run else "replayed"
        summary = (
            f"{verb} {len(shown)} of {len(report.selected)} selected dead letters "
            f"(read {report.scanned}) from {printable(store.source)}"
        )
        click.echo(summary, err=as_json)
        if report.aborted is not None:
            raise click.ClickException(_shown(f"replay stopped: {report.aborted}"))
        if report.failed:
            raise SystemExit(1)

    _run(run, options)


def _name(letter: DeadLetter) -> str:
    return f"{letter.location} (event {letter.event_id or '?'})"


def _run(
    body: Callable[[DeadLetterStore, LetterFilter], Coroutine[Any, Any, None]],
    options: dict[str, Any],
) -> None:
    """Open the store the options name, run `body` with it and the filter, map errors."""

    def shown(error: BaseException) -> str:
        return _shown(str(error))

    settings = connection_settings(options)
    password = settings["password"]
    with _masking(url_secrets(options["broker"]) + ((password,) if password else ())):
        try:
            store = open_store(
                options["broker"],
                topic=options["topic"],
                source_topic=options["source_topic"],
                queue=options["queue"],
                exchange=options["exchange"],
                replay_group=options["replay_group"],
                **settings,
            )
        except StoreUsageError as error:
            raise click.UsageError(shown(error)) from None
        except ImportError as error:  # a backend's extra is missing
            raise click.ClickException(shown(error)) from None
        source_topic = options["source_topic"]
        selection = LetterFilter.of(
            event_types=options.get("event_type", ()),
            error_types=options.get("error_type", ()),
            stages=options.get("stage", ()),
            # one destination for every topic: --source-topic selects letters, not the store
            original_topics=[source_topic] if source_topic and store.holds_every_topic else [],
            error_contains=options.get("error_contains"),
            groups=options.get("group", ()),
        )

        async def main() -> None:
            async with store:
                await body(store, selection)

        try:
            asyncio.run(main())
        except DispytchError as error:
            raise click.ClickException(shown(error)) from None
        except (click.ClickException, SystemExit, KeyboardInterrupt):
            raise
        except Exception as error:  # a client library's own error (a URL it cannot parse, ...)
            logging.getLogger("dispytch.cli").debug("unexpected error", exc_info=True)
            raise click.ClickException(f"{type(error).__name__}: {shown(error)}") from None


#: the secrets of the broker URL the running command uses
_secrets: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar(
    "dispytch_cli_secrets", default=()
)


def _shown(text: str) -> str:
    """Text from an error or a broker as it may be printed: credentials masked, control
    characters escaped."""
    return printable(masked(text, _secrets.get()))


class _MaskingFormatter(logging.Formatter):
    """Formats log records (tracebacks included) with credentials masked."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__("%(levelname)s %(name)s: %(message)s")
        self._secrets = tuple(secrets)

    def format(self, record: logging.LogRecord) -> str:
        return "\n".join(printable_lines(masked(super().format(record), self._secrets)))


@contextlib.contextmanager
def _masking(secrets: tuple[str, ...]) -> Iterator[None]:
    """While a command runs, `_shown` masks `secrets`, and the warnings and errors that the
    clients log go to stderr through the masking formatter (instead of Python's last-resort
    handler, which would print them as they are)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.WARNING)
    handler.setFormatter(_MaskingFormatter(secrets))
    root = logging.getLogger()
    root.addHandler(handler)
    showing = _secrets.set(secrets)
    try:
        yield
    finally:
        _secrets.reset(showing)
        root.removeHandler(handler)


class _Steps:
    """What `_progress_bar` yields: call it once per letter read."""

    def __init__(self, bar: Any) -> None:
        self._bar = bar

    def __call__(self) -> None:
        if self._bar is not None:
            self._bar.update(1)

    def __enter__(self) -> _Steps:
        if self._bar is not None:
            self._bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)


def _progress_bar(show: bool, total: int, label: str) -> _Steps:
    if not show:
        return _Steps(None)
    stream: Any = sys.stderr if sys.stderr.isatty() else _Terminal(sys.stderr)
    return _Steps(click.progressbar(length=max(total, 1), label=label, file=stream, show_pos=True))


class _Terminal(io.TextIOBase):
    """A stream that says it is a terminal, so `--progress` draws the bar on any stderr."""

    def __init__(self, target: TextIO) -> None:
        self._target = target

    def write(self, text: str) -> int:
        return self._target.write(text)

    def flush(self) -> None:
        self._target.flush()

    def isatty(self) -> bool:
        return True
