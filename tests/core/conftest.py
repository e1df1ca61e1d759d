"""Guards for every core test: no task exception may go unretrieved."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _no_unretrieved_task_exceptions(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    yield
    gc.collect()  # "Task exception was never retrieved" is logged when the task is collected
    leaked = [r for r in caplog.get_records("call") if "never retrieved" in r.getMessage()]
    leaked += [r for r in caplog.get_records("teardown") if "never retrieved" in r.getMessage()]
    assert not leaked, [r.getMessage() for r in leaked]
