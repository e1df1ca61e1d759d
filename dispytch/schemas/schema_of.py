"""An event class's schema as a format holds it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class SchemaOf:
    """An event class's schema: as registered (`text`), parsed by its format, its full name
    (a foreign message's event type)."""

    text: str
    parsed: Any
    full_name: str
    has_enums: bool = False
    #: topic -> subject, computed once per topic
    subjects: dict[str, str] = field(default_factory=dict)
