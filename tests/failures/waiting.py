"""Bounded waits for the failure tests."""

from __future__ import annotations

import asyncio
import functools
import operator
import time
from collections.abc import Callable, Container, Sized
from typing import Any


async def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `predicate` until it holds; fail when `timeout` seconds pass first."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)


async def wait_for_member(container: Container[Any], item: Any, timeout: float, what: str) -> None:
    """Wait until `item in container`."""
    await wait_until(functools.partial(operator.contains, container, item), timeout, what)


async def wait_for_length(items: Sized, length: int, timeout: float, what: str) -> None:
    """Wait until `len(items) >= length`."""
    await wait_until(lambda: len(items) >= length, timeout, what)
