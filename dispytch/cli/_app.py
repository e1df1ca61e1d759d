"""The click application: `dispytch` and its commands."""

from __future__ import annotations

import click

from dispytch.cli.asyncapi import asyncapi
from dispytch.cli.dlq import dlq
from dispytch.cli.run import run


@click.group()
def cli() -> None:
    """Dispytch's command line tools."""


cli.add_command(asyncapi)
cli.add_command(dlq)
cli.add_command(run)
