"""Fixtures for the NATS backend's tests: the server's URL and a test topology.

Tests that need the server take the `nats_url` fixture. When the server does not answer they
skip, except under CI=true where they fail (CI must run them).
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit

import pytest

from dispytch.nats import JetStreamTopology

NATS_URL = os.environ.get("DISPYTCH_NATS_URL", "nats://127.0.0.1:4222")
#: the stream the tests use; its subjects start with `dtest.`
TEST_TOPOLOGY = JetStreamTopology(stream="DISPYTCH_TEST", subjects=("dtest.>",))


def _reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 4222), 2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def nats_url() -> str:
    """The server's URL, once it answers."""
    if not _reachable(NATS_URL):
        message = f"NATS is not reachable at {NATS_URL} (start it: scripts/brokers start nats)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return NATS_URL
