"""The markers users put on handler parameters: `Dependency(...)` and `TopicSegment(...)`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class Dependency:
    """A value computed for each event by calling `func` (FastAPI's `Depends`).

    `func` may be a sync or async function, a sync or async generator (code after `yield` runs
    after the handler and sees its exception), or a class. Its own parameters are resolved the
    same way as a handler's. Without `func`, the parameter's annotated type is called.

    `use_cache`: within one call of a handler (one attempt, for one event), a dependency used
    in several places is called once. Each handler, and each retry, gets its own value.
    `enter_context`: enter the returned object as a (sync or async) context manager and exit it
    after the handler. Objects made by `@contextmanager` / `@asynccontextmanager` functions are
    always entered.
    `run_in_thread`: call a sync function (or run a sync generator's setup and teardown, or
    enter and exit a sync context manager) in a worker thread (`asyncio.to_thread`), so that a
    blocking call does not stop the event loop.
    """

    __slots__ = ("enter_context", "func", "run_in_thread", "use_cache")

    def __init__(
        self,
        func: Callable[..., Any] | None = None,
        *,
        use_cache: bool = True,
        enter_context: bool = False,
        run_in_thread: bool = False,
    ) -> None:
        self.func = func
        self.use_cache = use_cache
        self.enter_context = enter_context
        self.run_in_thread = run_in_thread

    def __repr__(self) -> str:
        name = getattr(self.func, "__qualname__", repr(self.func))
        return f"Dependency({name}, use_cache={self.use_cache})"


class TopicSegment:
    """Binds a parameter to a `{name}` segment of the handler's topic pattern.

    The segment is named by `alias`, or else by the parameter's name. Its text is converted to
    the parameter's annotated type and checked against pydantic constraints in the annotation
    (`Annotated[int, TopicSegment(), Field(gt=0)]`).
    """

    __slots__ = ("alias",)

    def __init__(self, alias: str | None = None) -> None:
        self.alias = alias

    def __repr__(self) -> str:
        return f"TopicSegment(alias={self.alias!r})"
