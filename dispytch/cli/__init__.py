"""The `dispytch` command (needs the `cli` extra: `pip install 'dispytch[cli]'`)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    try:
        from dispytch.cli._app import cli
    except ImportError as error:
        if getattr(error, "name", None) != "click":
            raise
        print(
            "the dispytch command needs the 'click' package: pip install 'dispytch[cli]'",
            file=sys.stderr,
        )
        raise SystemExit(1) from None
    cli.main(args=argv, prog_name="dispytch")


__all__ = ["main"]
