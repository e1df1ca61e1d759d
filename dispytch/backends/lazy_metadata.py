"""`LazyMetadata`: a delivery's `metadata` read from the client's message when asked for.

A helper for backends, not part of the contract: building a dict of broker facts for every
message costs more than most handlers ever read from it. A subclass names its keys in `KEYS`
and reads each in `__getitem__`; iterating, `len()`, `dict(metadata)` and `repr()` go by
`KEYS`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar


class LazyMetadata(Mapping[str, Any]):
    __slots__ = ()

    #: every key the mapping has, in the order it lists them
    KEYS: ClassVar[tuple[str, ...]] = ()

    def __getitem__(self, name: str) -> Any:
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self.KEYS)

    def __len__(self) -> int:
        return len(self.KEYS)

    def __repr__(self) -> str:
        return repr(dict(self))
