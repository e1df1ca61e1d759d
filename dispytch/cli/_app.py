"""The click application: `dispytch` and its `dlq` group."""

from __future__ import annotations

import click

from dispytch.cli.dlq import dlq


@click.group()
def cli() -> None:
    """Dispytch's command line tools."""


cli.add_command(dlq)
