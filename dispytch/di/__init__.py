"""FastAPI-style dependency injection for handlers."""

from dispytch.di.markers import Dependency, TopicSegment
from dispytch.di.plan import HandlerPlan, compile_handler

__all__ = ["Dependency", "HandlerPlan", "TopicSegment", "compile_handler"]
