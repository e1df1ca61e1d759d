"""Dispytch: async-first event handling with FastAPI-style handlers and at-least-once delivery."""

from dispytch.di.markers import Dependency, TopicSegment
from dispytch.emitter import EventEmitter
from dispytch.events import Event, EventBase
from dispytch.listener import EventListener
from dispytch.memory.broker import InMemoryBroker
from dispytch.retry import ExponentialBackoff, FixedBackoff, RetryPolicy
from dispytch.routing.group import HandlerGroup

__version__ = "0.11.0"

__all__ = [
    "Dependency",
    "Event",
    "EventBase",
    "EventEmitter",
    "EventListener",
    "ExponentialBackoff",
    "FixedBackoff",
    "HandlerGroup",
    "InMemoryBroker",
    "RetryPolicy",
    "TopicSegment",
]
