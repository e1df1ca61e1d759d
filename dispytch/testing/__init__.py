"""Testing tools.

- `settled()` and `dead_letters()`: helpers for tests on the in-memory broker (no pytest
  needed).
- `dispytch.testing.conformance`: the backend conformance suite. It imports pytest, so it is
  only loaded when asked for.
"""

from dispytch.testing.helpers import dead_letters, settled

__all__ = ["dead_letters", "settled"]
