"""Fixtures for the tests against the secured listeners of `scripts/brokers`: Kafka SASL_SSL
(SCRAM-SHA-512) and RabbitMQ amqps, both with the script's throwaway CA.

Where they are comes from `eval "$(scripts/brokers env)"`. When a listener does not complete a
verified TLS handshake the tests skip, except under CI=true where they fail (CI must run them).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

CA_FILE = os.environ.get("DISPYTCH_BROKERS_CA_FILE", "")
CLIENT_CERT_FILE = os.environ.get("DISPYTCH_BROKERS_CLIENT_CERT_FILE", "")
CLIENT_KEY_FILE = os.environ.get("DISPYTCH_BROKERS_CLIENT_KEY_FILE", "")
KAFKA_PLAIN = os.environ.get("DISPYTCH_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
RABBITMQ_PLAIN = os.environ.get("DISPYTCH_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")


@dataclass(frozen=True)
class Listener:
    """A secured listener: where it is, and the user that may log in."""

    host: str
    port: int
    username: str
    password: str
    ca_file: str

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def context(self, ca_file: str | None = None) -> ssl.SSLContext:
        """A client TLS context trusting `ca_file` (default: the brokers' CA)."""
        return ssl.create_default_context(cafile=ca_file or self.ca_file)


def _problem(host: str, port: int, password: str) -> str | None:
    """Why the listener cannot be tested (None: a verified TLS handshake succeeded)."""
    if not (CA_FILE and Path(CA_FILE).is_file()):
        return f"no CA file at DISPYTCH_BROKERS_CA_FILE={CA_FILE!r}"
    if not password:
        return "no password for the secured listeners"
    try:
        context = ssl.create_default_context(cafile=CA_FILE)
        with (
            socket.create_connection((host, port), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname=host),
        ):
            return None
    except (OSError, ssl.SSLError) as error:
        return f"no verified TLS handshake with {host}:{port}: {error!r}"


def _require(name: str, host: str, port: int, username: str, password: str) -> Listener:
    problem = _problem(host, port, password)
    if problem is not None:
        message = (
            f"the secured {name} listener cannot be used ({problem}); start it with "
            'scripts/brokers start, then eval "$(scripts/brokers env)"'
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return Listener(host, port, username, password, CA_FILE)


@pytest.fixture(scope="session")
def kafka_sasl_ssl() -> Listener:
    address = os.environ.get("DISPYTCH_KAFKA_SASL_SSL_BOOTSTRAP", "127.0.0.1:9094")
    host, _, port = address.split(",")[0].rpartition(":")
    return _require(
        "Kafka SASL_SSL",
        host,
        int(port),
        os.environ.get("DISPYTCH_KAFKA_SASL_USERNAME", "dispytch"),
        os.environ.get("DISPYTCH_KAFKA_SASL_PASSWORD", ""),
    )


@pytest.fixture(scope="session")
def rabbitmq_tls() -> Listener:
    from urllib.parse import urlsplit

    parts = urlsplit(os.environ.get("DISPYTCH_RABBITMQ_TLS_URL", "amqps://127.0.0.1:5671/"))
    return _require(
        "RabbitMQ amqps",
        parts.hostname or "127.0.0.1",
        parts.port or 5671,
        os.environ.get("DISPYTCH_RABBITMQ_TLS_USERNAME", "dispytch"),
        os.environ.get("DISPYTCH_RABBITMQ_TLS_PASSWORD", ""),
    )


@pytest.fixture(scope="session")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A CA certificate that did not sign the brokers' certificates."""
    folder = tmp_path_factory.mktemp("other-ca")
    subprocess.run(
        [
            "openssl", "req", "-x509", "-new", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=another CA", "-keyout", str(folder / "ca.key"),
            "-out", str(folder / "ca.pem"),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return str(folder / "ca.pem")


class Forwarder:
    """Forwards TCP connections from 127.0.0.2:<port> to a listener on 127.0.0.1: a client
    connecting through it reaches the broker under an address its certificate does not list
    (the certificate is for 127.0.0.1 and localhost). Threads, so synchronous code (the CLI
    runs its own event loop) can use it too."""

    HOST = "127.0.0.2"

    def __init__(self, target: tuple[str, int]) -> None:
        self._target = target
        self._server = socket.create_server((self.HOST, 0))
        self._server.settimeout(0.2)
        self.port = self._server.getsockname()[1]
        self._stopped = threading.Event()
        self._sockets: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        return f"{self.HOST}:{self.port}"

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self._target, timeout=5)
            except OSError:
                client.close()
                continue
            self._sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(source, sink), daemon=True).start()

    def close(self) -> None:
        self._stopped.set()
        self._server.close()
        for one in self._sockets:
            with contextlib.suppress(OSError):
                one.close()
        self._thread.join(timeout=5)


def _pump(source: socket.socket, sink: socket.socket) -> None:
    source.settimeout(None)
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


@contextlib.contextmanager
def forwarder_to(listener: Listener) -> Iterator[Forwarder]:
    forwarder = Forwarder((listener.host, listener.port))
    try:
        yield forwarder
    finally:
        forwarder.close()


@pytest.fixture
def all_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every log record, of every logger, from DEBUG up."""
    caplog.set_level(logging.DEBUG)
    return caplog


def assert_secret_nowhere(secrets: list[str], error: BaseException, logs: str) -> None:
    """None of `secrets` in the error's text, its repr, its chained errors' texts, or logs."""
    shown = [str(error), repr(error), logs]
    cause: BaseException | None = error
    while cause is not None:
        shown += [str(cause), repr(cause)]
        cause = cause.__cause__
    for secret in secrets:
        assert secret, "a secret to look for must not be empty"
        for text in shown:
            assert secret not in text
