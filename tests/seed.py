"""The seed's two examples, loaded from their one copy in tests/core/seed for backend tests.

The handler example imports `service`; the stand-in next to the examples provides it."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

SEED = Path(__file__).parent / "core" / "seed"


def load_seed(name: str, file: str) -> ModuleType:
    """Load `file` (`handler_example.py` or `emitter_example.py`) as module `name`, once."""
    if name in sys.modules:
        return sys.modules[name]
    if str(SEED) not in sys.path:
        sys.path.insert(0, str(SEED))
    spec = importlib.util.spec_from_file_location(name, SEED / file)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
