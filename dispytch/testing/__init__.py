"""Testing tools: the backend conformance suite (`dispytch.testing.conformance`).

It imports pytest, so it is only loaded when asked for."""
