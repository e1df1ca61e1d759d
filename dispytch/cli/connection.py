"""The CLI's connection options: credentials and TLS files, kept out of the command line.

A password is never an option's value (it would sit in the shell's history and in `ps`): it
comes from a file (`--password-file`), from `DISPYTCH_BROKER_PASSWORD`, or from the URL. Every
option can also be set from the environment.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

PASSWORD_VARIABLE = "DISPYTCH_BROKER_PASSWORD"


def connection_options(command: F) -> F:
    options = [
        click.option(
            "--username",
            envvar="DISPYTCH_BROKER_USERNAME",
            metavar="NAME",
            help="The user to log in as (Kafka: with SASL). Replaces the URL's "
            "(default: $DISPYTCH_BROKER_USERNAME).",
        ),
        click.option(
            "--password-file",
            envvar="DISPYTCH_BROKER_PASSWORD_FILE",
            type=click.Path(dir_okay=False, path_type=Path),
            help="Read the password from this file (its first line). Without it: "
            f"${PASSWORD_VARIABLE}, else the URL's password.",
        ),
        click.option(
            "--sasl-mechanism",
            envvar="DISPYTCH_BROKER_SASL_MECHANISM",
            type=click.Choice(["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]),
            help="Kafka: the SASL mechanism (default SCRAM-SHA-512 when a user is given).",
        ),
        click.option(
            "--ca-file",
            envvar="DISPYTCH_BROKER_CA_FILE",
            type=click.Path(dir_okay=False, path_type=Path),
            help="TLS: the CA certificates (PEM) to verify the broker with, instead of the "
            "system's. Needs a kafka+ssl:// or amqps:// URL.",
        ),
        click.option(
            "--cert-file",
            envvar="DISPYTCH_BROKER_CERT_FILE",
            type=click.Path(dir_okay=False, path_type=Path),
            help="TLS: a client certificate (PEM), for brokers that ask for one.",
        ),
        click.option(
            "--key-file",
            envvar="DISPYTCH_BROKER_KEY_FILE",
            type=click.Path(dir_okay=False, path_type=Path),
            help="TLS: the client certificate's private key (PEM), when not in --cert-file.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def connection_settings(options: dict[str, Any]) -> dict[str, Any]:
    """`open_store()` keyword arguments from the parsed options."""
    return {
        "username": options.get("username") or None,
        "password": _password(options.get("password_file")),
        "ssl_context": _ssl_context(
            options.get("ca_file"), options.get("cert_file"), options.get("key_file")
        ),
        "sasl_mechanism": options.get("sasl_mechanism"),
    }


def _password(password_file: Path | None) -> str | None:
    if password_file is not None:
        try:
            text = password_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise click.UsageError(
                f"cannot read --password-file {str(password_file)!r}: {type(error).__name__}"
            ) from None
        password = text.splitlines()[0] if text else ""
        if not password:
            raise click.UsageError(f"--password-file {str(password_file)!r} is empty")
        return password
    return os.environ.get(PASSWORD_VARIABLE) or None


def _ssl_context(
    ca_file: Path | None, cert_file: Path | None, key_file: Path | None
) -> ssl.SSLContext | None:
    if ca_file is None and cert_file is None and key_file is None:
        return None
    if key_file is not None and cert_file is None:
        raise click.UsageError("--key-file needs --cert-file")
    try:
        context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
        if cert_file is not None:
            context.load_cert_chain(str(cert_file), str(key_file) if key_file else None)
    except (OSError, ssl.SSLError) as error:
        raise click.UsageError(f"cannot load the TLS files: {error}") from None
    return context
