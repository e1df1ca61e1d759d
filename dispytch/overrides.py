"""`EventListener.dependency_overrides`: dependency functions replaced by others, as in FastAPI.

A change recompiles the listener's handlers at once (plans are compiled, never looked up per
message): a running listener uses the new functions from its next message, and an override
that does not fit a handler (a signature that cannot be resolved) is refused where it is set.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, MutableMapping
from typing import Any

Func = Callable[..., Any]


class DependencyOverrides(MutableMapping[Func, Func]):
    def __init__(self, changed: Callable[[], None]) -> None:
        self._overrides: dict[Func, Func] = {}
        self._changed = changed

    def __getitem__(self, original: Func) -> Func:
        return self._overrides[original]

    def __setitem__(self, original: Func, replacement: Func) -> None:
        _check(original, replacement)
        before = dict(self._overrides)
        self._overrides[original] = replacement
        self._apply(before)

    def __delitem__(self, original: Func) -> None:
        before = dict(self._overrides)
        del self._overrides[original]
        self._apply(before)

    def clear(self) -> None:
        before = dict(self._overrides)
        self._overrides.clear()
        self._apply(before)

    def replace(self, overrides: Mapping[Func, Func]) -> None:
        """All of them at once (`listener.dependency_overrides = {...}`)."""
        for original, replacement in overrides.items():
            _check(original, replacement)
        before = dict(self._overrides)
        self._overrides = dict(overrides)
        self._apply(before)

    def __iter__(self) -> Iterator[Func]:
        return iter(self._overrides)

    def __len__(self) -> int:
        return len(self._overrides)

    def __repr__(self) -> str:
        return f"DependencyOverrides({self._overrides!r})"

    def _apply(self, before: dict[Func, Func]) -> None:
        try:
            self._changed()
        except BaseException:
            self._overrides = before
            raise


def _check(original: Func, replacement: Func) -> None:
    if not callable(replacement):
        raise TypeError(f"the override of {original!r} must be callable, got {replacement!r}")
