"""Fixtures of the failure tests: the brokers (skip, or fail under CI=true, when one is
missing), unique streams on them, and the figures the tests measure.

Tests marked `broker_outage` stop or restart a broker. They are moved to the end of the
session, so that no other test runs against a broker that is going away.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from .brokers import BrokerControl
from .streams import Stream, new_stream

#: (test id, figure) lines that the tests report, printed at the end of the session
FIGURES: list[tuple[str, str]] = []


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "broker_outage: stops or restarts a real broker; runs at the end of the session",
    )


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    outages = [item for item in items if item.get_closest_marker("broker_outage")]
    if outages:
        kept = [item for item in items if not item.get_closest_marker("broker_outage")]
        items[:] = kept + outages


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not FIGURES:
        return
    terminalreporter.section("failure scenarios: measured figures")
    for test, figure in FIGURES:
        terminalreporter.write_line(f"{test}: {figure}")


@pytest.fixture
def report(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """`report("duplicates: 12")`: print a figure now and again in the session's summary."""

    def add(figure: str) -> None:
        print(f"[{request.node.name}] {figure}")
        FIGURES.append((request.node.name, figure))

    return add


@pytest.fixture
async def streams() -> AsyncIterator[Callable[..., Any]]:
    """`await streams("kafka", partitions=4)`: a fresh topic and group on that backend, with
    what the test needs to reach them; deleted from the broker after the test."""
    made: list[Stream] = []

    async def make(backend: str, partitions: int = 1) -> Stream:
        stream = new_stream(backend)
        made.append(stream)
        await stream.prepare(partitions)
        return stream

    yield make
    for stream in made:
        await stream.cleanup()


@pytest.fixture
async def brokers() -> AsyncIterator[BrokerControl]:
    """Stops and starts real brokers; whatever happens, they are up again after the test."""
    control = BrokerControl()
    try:
        yield control
    finally:
        await control.restore()
