"""Middleware: code around a message, a handler call, or an emit (see docs/middleware.md)."""

from dispytch.middleware.context import (
    CallNext,
    EmitContext,
    EmitMiddleware,
    HandlerCall,
    HandlerMiddleware,
    MessageContext,
    MessageMiddleware,
)
from dispytch.middleware.filters import header_equals, skip_unless
from dispytch.middleware.locks import KeyLock
from dispytch.middleware.log import LogOutcomes
from dispytch.outcomes import Outcome

__all__ = [
    "CallNext",
    "EmitContext",
    "EmitMiddleware",
    "HandlerCall",
    "HandlerMiddleware",
    "KeyLock",
    "LogOutcomes",
    "MessageContext",
    "MessageMiddleware",
    "Outcome",
    "header_equals",
    "skip_unless",
]
