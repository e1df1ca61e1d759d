"""Fixtures of the cluster tests: the clusters (skip, or fail under CI=true, when one does not
answer), their nodes restarted after each test, and the figures the tests measure."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from .nodes import ClusterControl

#: (test id, figure) lines that the tests report, printed at the end of the session
FIGURES: list[tuple[str, str]] = []


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if FIGURES:
        terminalreporter.section("cluster failover: measured figures")
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
async def kafka_cluster() -> AsyncIterator[ClusterControl]:
    control = ClusterControl("kafka-cluster")
    await control.require()
    try:
        yield control
    finally:
        await control.restore()


@pytest.fixture
async def rabbitmq_cluster() -> AsyncIterator[ClusterControl]:
    control = ClusterControl("rabbitmq-cluster")
    await control.require()
    try:
        yield control
    finally:
        await control.restore()
