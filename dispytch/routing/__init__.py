"""Handler registration and routing."""

from dispytch.routing.group import ANY_EVENT, HandlerGroup, HandlerSpec
from dispytch.routing.router import Router

__all__ = ["ANY_EVENT", "HandlerGroup", "HandlerSpec", "Router"]
