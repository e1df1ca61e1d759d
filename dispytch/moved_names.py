"""Names that moved to another module and still import from the old one, with a warning.

A module whose names moved defines `__getattr__(name)` as `moved_attribute(__name__, name,
MOVED)`, where `MOVED` maps each old name to the module it lives in now.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Mapping
from typing import Any


def moved_attribute(module: str, name: str, moved: Mapping[str, str]) -> Any:
    """`name` from its new home (warning that it moved), or AttributeError for `module`."""
    home = moved.get(name)
    if home is None:
        raise AttributeError(f"module {module!r} has no attribute {name!r}")
    warnings.warn(
        f"{module}.{name} moved to {home}.{name}; import it from there",
        DeprecationWarning,
        stacklevel=3,
    )
    return getattr(importlib.import_module(home), name)
