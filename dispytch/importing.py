"""Finding the object a command names: `package.module:attribute` (or a bare module)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any


class ImportTargetError(Exception):
    """The named module or attribute does not exist (the message says which)."""


def import_target(target: str, app_dir: str | Path | None = None) -> Any:
    """The object `target` names: `"myservice.app:listener"` gives the module's `listener`
    (dots after the colon walk attributes); `"myservice.events"` gives the module itself.

    `app_dir` goes first on `sys.path`, as the current directory does for `python -m`.
    Errors raised while the module runs (a missing import inside it, a syntax error)
    propagate unchanged: only a missing `target` itself is an `ImportTargetError`.
    """
    module_name, _, attribute = target.partition(":")
    if not module_name or (":" in target and not attribute):
        raise ImportTargetError(
            f"{target!r} is not a target: write 'package.module:attribute' or 'package.module'"
        )
    if app_dir is not None:
        folder = str(Path(app_dir).resolve())
        if folder not in sys.path:
            sys.path.insert(0, folder)
    try:
        found: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name is not None and (
            module_name == error.name or module_name.startswith(error.name + ".")
        ):
            raise ImportTargetError(
                f"no module named {module_name!r} (looked in {sys.path[0]!r} and the "
                "installed packages; --app-dir sets the folder)"
            ) from None
        raise
    for part in attribute.split(".") if attribute else ():
        try:
            found = getattr(found, part)
        except AttributeError:
            raise ImportTargetError(f"{module_name!r} has no attribute {attribute!r}") from None
    return found
