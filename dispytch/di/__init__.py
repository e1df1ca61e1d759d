"""FastAPI-style dependency injection for handlers."""

from dispytch.di.compile import compile_handler
from dispytch.di.markers import Dependency, TopicSegment
from dispytch.di.plan import HandlerPlan

__all__ = ["Dependency", "HandlerPlan", "TopicSegment", "compile_handler"]
