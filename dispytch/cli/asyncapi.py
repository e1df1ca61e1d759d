"""`dispytch asyncapi`: write the AsyncAPI 3.0 document of a service."""

from __future__ import annotations

import asyncio
import inspect
import sys
from pathlib import Path
from typing import Any

import click

from dispytch.asyncapi import Server, build_asyncapi, dump
from dispytch.asyncapi.html import render_html
from dispytch.asyncapi.html import serve as serve_html
from dispytch.emitter import EventEmitter
from dispytch.importing import ImportTargetError, import_target
from dispytch.listener import EventListener
from dispytch.routing.group import HandlerGroup


@click.command()
@click.argument("targets", nargs=-1, required=True, metavar="TARGET...")
@click.option(
    "--output", "-o", type=click.Path(dir_okay=False, writable=True),
    help="File to write (default: standard output).",
)
@click.option(
    "--format", "output_format", type=click.Choice(["json", "yaml", "html"]),
    help="Output format (default: from the file's extension, else json). YAML needs PyYAML; "
    "html is one self-contained page.",
)
@click.option(
    "--serve", is_flag=True,
    help="Serve the document as an HTML page (and /asyncapi.json) until Ctrl-C; the page "
    "loads nothing from elsewhere.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address for --serve.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="Port for --serve (0: any free port).")
@click.option("--title", default="Dispytch service", show_default=True,
              envvar="DISPYTCH_ASYNCAPI_TITLE", show_envvar=True)
@click.option("--version", "doc_version", default="1.0.0", show_default=True,
              envvar="DISPYTCH_ASYNCAPI_VERSION", show_envvar=True,
              help="The API's version (info.version).")
@click.option("--description", help="info.description.")
@click.option(
    "--server", "servers", multiple=True, metavar="NAME=URL",
    help="A broker: production=kafka://broker:9092 or events=amqp://host:5672/vhost "
    "(repeatable; user names and passwords are never written).",
)
@click.option("--exchange", default="dispytch", show_default=True,
              help="The RabbitMQ exchange named in AMQP bindings.")
@click.option(
    "--app-dir", default=".", show_default=True, type=click.Path(file_okay=False),
    envvar="DISPYTCH_APP_DIR", show_envvar=True,
    help="Folder put first on sys.path before importing the targets.",
)
def asyncapi(
    targets: tuple[str, ...],
    output: str | None,
    output_format: str | None,
    serve: bool,
    host: str,
    port: int,
    title: str,
    doc_version: str,
    description: str | None,
    servers: tuple[str, ...],
    exchange: str,
    app_dir: str,
) -> None:
    """Write the AsyncAPI 3.0 document of TARGET... (JSON or YAML).

    Each TARGET is `module:attribute` or a module. An EventListener (or a function returning
    one) or a HandlerGroup gives a receive operation per handler; an EventEmitter gives its
    broker, and the EventBase classes of its module give send operations; a module gives
    its EventBase classes, listeners, handler groups and emitters. Example:

        dispytch asyncapi myservice.app:listener myservice.events -o asyncapi.yaml
    """
    found: list[Any] = []
    for target in targets:
        try:
            found.extend(_objects(target, app_dir))
        except ImportTargetError as error:
            raise click.UsageError(str(error)) from None
    try:
        described = [_server(text, exchange) for text in servers]
        document = build_asyncapi(
            *found, title=title, version=doc_version, description=description,
            servers=described,
        )
    except (ValueError, TypeError) as error:
        raise click.UsageError(str(error)) from None
    if serve:
        serve_html(document, host, port)
        return
    chosen = output_format or _format_of(output)
    try:
        text = render_html(document) if chosen == "html" else dump(document, chosen)
    except ImportError:
        raise click.UsageError(
            "YAML output needs PyYAML: pip install 'dispytch[asyncapi]'"
        ) from None
    if output is None:
        sys.stdout.write(text)
    else:
        Path(output).write_text(text, encoding="utf-8")


def _objects(target: str, app_dir: str) -> list[Any]:
    found = import_target(target, app_dir)
    if ":" not in target:
        return [found]
    if not isinstance(found, (type, EventListener, HandlerGroup)) and callable(found):
        found = found()
        if inspect.isawaitable(found):
            found = asyncio.run(_awaited(found))
    objects = [found]
    if isinstance(found, EventEmitter):  # the events it sends live next to it
        objects.append(import_target(target.partition(":")[0]))
    return objects


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


def _server(text: str, exchange: str) -> Server:
    name, separator, url = text.partition("=")
    if not separator or not name or not url:
        raise ValueError(f"--server {text!r}: write NAME=URL, as production=kafka://host:9092")
    return Server.from_url(name, url, exchange=exchange)


def _format_of(output: str | None) -> str:
    suffix = Path(output).suffix.lower() if output is not None else ""
    return {".yaml": "yaml", ".yml": "yaml", ".html": "html"}.get(suffix, "json")
