"""`EventListener`: receives messages from a consumer and runs the matching handlers."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import threading
from collections.abc import Sequence
from types import TracebackType

from dispytch import signals
from dispytch.backends.base import Consumer, ListenerNeeds
from dispytch.dispatch import Dispatcher
from dispytch.errors import BackendError, ConsumerStoppedError
from dispytch.registry import HandlerRegistry
from dispytch.retry import ExponentialBackoff
from dispytch.routing.router import Router
from dispytch.scheduling import OrderedWorkerPool, withdraw_cancel_requests
from dispytch.serialization.base import Deserializer
from dispytch.serialization.codec import Codec, SerializerCodec, default_codecs
from dispytch.shutdown import limited, retrieve_outcome, wait_cancelled

logger = logging.getLogger("dispytch.listener")

#: the listener whose handler is running in the current task (None outside handlers)
handling_listener: contextvars.ContextVar[EventListener | None] = contextvars.ContextVar(
    "dispytch_handling_listener", default=None
)
#: seconds each of the consumer's stop() and close() may take once a second signal forced the exit
FORCED_CLOSE_TIMEOUT = 2.0
#: handler names the start-up line shows before "and N more"
_SHOWN_HANDLERS = 10
_RECEIVE_BACKOFF = ExponentialBackoff(initial=0.5, max_delay=15.0, jitter=True)


class EventListener(HandlerRegistry):
    """Runs handlers for the events a consumer receives.

    - `codecs`: wire formats besides the defaults, chosen by each message's `content-type`
      header (JSON, the default for messages without one, and MessagePack); a content type
      without a codec is dead-lettered. See docs/codecs.md.
    - `deserializer`: a 0.10-style deserializer that reads every message, whatever its
      `content-type` header.
    - `topic_delimiter`: splits topics into segments for `{name}` and `*` in handler topics;
      by default the consumer's (`capabilities.topic_delimiter`: "." on Kafka, else ":").
    - `max_concurrency`: deliveries handled (or waiting behind their key) at once; the listener
      fetches no more than that.
    - `shutdown_grace`: seconds `stop()` lets running handlers finish before cancelling them
      (their messages are then left unsettled, and the broker delivers them again).
    - `close_timeout`: seconds each of the consumer's `stop()` and `close()` may take during the
      shutdown (a broker that is down can make a final commit wait forever).
    - `dead_letter_unhandled`: dead-letter events no handler matches, instead of acking them.
    """

    def __init__(
        self,
        consumer: Consumer,
        deserializer: Deserializer | None = None,
        topic_delimiter: str | None = None,
        *,
        max_concurrency: int = 100,
        shutdown_grace: float = 30.0,
        close_timeout: float = 10.0,
        dead_letter_unhandled: bool = False,
        codecs: Sequence[Codec] = (),
    ) -> None:
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        self.consumer = consumer
        self.max_concurrency = max_concurrency
        self.shutdown_grace = shutdown_grace
        self.close_timeout = close_timeout
        if topic_delimiter is None:  # the backend's default: "." on Kafka, ":" elsewhere
            topic_delimiter = consumer.capabilities.topic_delimiter
        router = Router(topic_delimiter)
        super().__init__(
            router,
            Dispatcher(
                router,
                [*default_codecs(), *codecs],
                dead_letter_unhandled,
                None if deserializer is None else SerializerCodec(None, deserializer),
            ),
            consumer.check_subscription,
        )
        self._stopping = False
        #: set when the shutdown of the current (or last) listen() is complete; a new one per
        #: listen(), so that a listener can run again, in another event loop too
        self._finished: asyncio.Event | None = None
        self._start_task: asyncio.Task[None] | None = None
        self._stop_requested: asyncio.Future[None] | None = None
        self._fetch_task: asyncio.Task[None] | None = None
        self._listen_task: asyncio.Task[None] | None = None
        self._pool: OrderedWorkerPool | None = None
        #: what made the listener stop on its own (raised from `listen()` after the shutdown)
        self._failure: BaseException | None = None
        #: the signal that forced the shutdown (`force_stop`), if one did
        self._forced_by: int | None = None
        #: what bounds each consumer call of the shutdown (shorter once forced)
        self._close_bound = close_timeout

    # -- lifecycle ----------------------------------------------------------------------------

    async def listen(self, *, handle_signals: bool | None = None) -> None:
        """Receive and handle events until `stop()` (or SIGINT/SIGTERM when `handle_signals`;
        by default when running in the main thread). Returns after a graceful shutdown."""
        await self._listen(handle_signals, None)

    async def _listen(
        self, handle_signals: bool | None, started: asyncio.Future[None] | None
    ) -> None:
        if self._running:
            raise RuntimeError("this listener is already listening")
        if not self._router.specs:
            raise RuntimeError("the listener has no handlers: add a HandlerGroup or a handler")
        self._running = True
        self._stopping = False
        self._failure = None
        self._forced_by = None
        self._close_bound = self.close_timeout
        self._finished = asyncio.Event()
        self._dispatcher.retrier.reset()
        if handle_signals is None:
            handle_signals = threading.current_thread() is threading.main_thread()
        native_delay = self.consumer.capabilities.native_delay
        self._dispatcher.retrier.delayed_supported = native_delay
        delayed = [spec for spec in self._router.specs if spec.retry.delayed]
        for spec in delayed if not native_delay else ():
            logger.warning(
                "handler %r asks for delayed retries, which %s cannot do; it retries in place",
                spec.name,
                type(self.consumer).__name__,
            )
        # inherited by the workers (and the tasks they start): stop() knows it is called by one
        inside_handlers = handling_listener.set(self)
        # installed before the start (a broker slow to answer) and kept for the shutdown: a
        # second signal forces the exit
        with signals.stop_on_signals(self) if handle_signals else contextlib.nullcontext():
            try:
                self._bind_handlers()
                self.consumer.prepare(
                    ListenerNeeds(self.max_concurrency, bool(delayed), self.shutdown_grace)
                )
                if await self._start_consumer():
                    self._pool = OrderedWorkerPool(self._dispatcher.entry(), self.max_concurrency)
                    self._fetch_task = asyncio.create_task(
                        self._fetch(self._pool), name="dispytch-fetch"
                    )
                    logger.info("listening: %s", self.describe())
                    if started is not None and not started.done():
                        started.set_result(None)
                    await asyncio.wait({self._fetch_task})
            except asyncio.CancelledError:
                self._request_stop()
                raise
            finally:
                await self._shutdown()
                handling_listener.reset(inside_handlers)
        if self._forced_by is not None:
            raise SystemExit(128 + self._forced_by)
        if self._failure is not None:
            raise self._failure

    async def _start_consumer(self) -> bool:
        """Start the consumer in a task of its own, which `stop()` cancels. False when the
        listener was stopped meanwhile (it must not fetch then); raises what the start raised."""
        if self._stopping:
            return False
        start = asyncio.create_task(
            self.consumer.start(self._router.subscriptions), name="dispytch-consumer-start"
        )
        self._start_task = start
        stop_requested = asyncio.get_running_loop().create_future()
        self._stop_requested = stop_requested
        try:
            # a start that does not give up when cancelled is not waited for here: the shutdown
            # bounds its wait for it
            await asyncio.wait({start, stop_requested}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._stop_requested = None
        if self._stopping:
            # stopped while starting: whatever the interrupted start raised is no failure
            if start.done() and not start.cancelled() and start.exception() is not None:
                logger.debug("the consumer's interrupted start raised %r", start.exception())
            return False
        if start.cancelled():  # by the consumer itself: a failure to start, not a stop
            raise RuntimeError("the consumer's start was cancelled")
        start.result()  # the start-up error (an unreachable broker, ...)
        return True

    async def stop(self) -> None:
        """Stop fetching, let running handlers finish (up to `shutdown_grace`), settle, close.
        Called while the consumer is still starting, it cancels the start. Called from inside
        a handler, it only asks for the stop and returns at once. Does nothing when the
        listener is not running."""
        finished = self._finished
        if not self._running or finished is None:
            return
        self._request_stop()
        if handling_listener.get() is self:
            return  # called by one of our own handlers: waiting would wait for itself
        await finished.wait()

    def force_stop(self, signum: int) -> None:
        """Cut the shutdown short (a second SIGINT/SIGTERM): cancel the running handlers now
        (their messages stay unsettled: the broker delivers them again) and bound the
        consumer's stop and close by `FORCED_CLOSE_TIMEOUT`; `listen()` then raises
        `SystemExit(128 + signum)`."""
        if not self._running:
            return
        self._forced_by = signum
        self._close_bound = min(self.close_timeout, FORCED_CLOSE_TIMEOUT)
        self._request_stop()
        if self._pool is not None:
            self._pool.stop_draining()

    def run(self) -> None:
        """Run the listener as the main program until SIGINT or SIGTERM."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            asyncio.run(self.listen(handle_signals=True))
            return
        raise RuntimeError(
            "run() starts an event loop of its own and cannot be called from a running one: "
            "use `await listener.listen()` there"
        )

    async def __aenter__(self) -> EventListener:
        if self._running:
            raise RuntimeError("this listener is already listening")
        started = asyncio.get_running_loop().create_future()
        listening = asyncio.create_task(self._listen(False, started), name="dispytch-listen")
        self._listen_task = listening
        try:
            await asyncio.wait({listening, started}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            # given up while starting (a timeout around `async with`): nothing may stay running
            await self._abandon(listening)
            raise
        if not started.done():
            self._listen_task = None
            listening.result()  # raises the start-up error
            raise RuntimeError("the listener stopped while starting")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()
        if self._listen_task is not None:
            listening, self._listen_task = self._listen_task, None
            await listening

    @property
    def running(self) -> bool:
        return self._running

    @property
    def state(self) -> str:
        """"starting" (subscribing), "receiving", "stopping", "stopped", or "failed" (stopped
        by a failure of its consumer). Health checks read it."""
        if not self._running:
            return "stopped" if self._failure is None else "failed"
        if self._stopping:
            return "stopping"
        return "starting" if self._fetch_task is None else "receiving"

    def describe(self) -> str:
        """What the listener runs, in one line (logged at start): the consumer (backend, group,
        where; credentials masked), the subscriptions, the handlers and `max_concurrency`."""
        names = [spec.name for spec in self._router.specs]
        shown = ", ".join(names[:_SHOWN_HANDLERS])
        if len(names) > _SHOWN_HANDLERS:
            shown += f" and {len(names) - _SHOWN_HANDLERS} more"
        topics = ", ".join(repr(sub.pattern) for sub in self._router.subscriptions)
        return (
            f"{self.consumer.describe()}; subscriptions: {topics or 'none'}; "
            f"{len(names)} handler(s): {shown or 'none'}; max_concurrency={self.max_concurrency}"
        )

    # -- internals ----------------------------------------------------------------------------

    def _request_stop(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        self._dispatcher.retrier.stop()
        for task in (self._start_task, self._fetch_task):
            if task is not None:
                task.cancel()
        if self._stop_requested is not None and not self._stop_requested.done():
            self._stop_requested.set_result(None)

    async def _abandon(self, listening: asyncio.Task[None]) -> None:
        """Cancel a listen() task and wait for its shutdown (cancelled again, the caller stops
        waiting; the shutdown goes on in the task)."""
        self._listen_task = None
        listening.cancel()
        try:
            await asyncio.wait({listening})
        finally:
            listening.add_done_callback(retrieve_outcome)

    async def _fetch(self, pool: OrderedWorkerPool) -> None:
        receive_many = self.consumer.receive_many
        limit = self.max_concurrency
        failures = 0
        while True:
            try:
                if pool.in_flight >= limit:
                    await pool.wait_for_room()
                for delivery in await receive_many(limit - pool.in_flight):
                    pool.submit(delivery)
                failures = 0
            except ConsumerStoppedError:
                logger.info("consumer stopped; the listener stops fetching")
                return
            except (BackendError, asyncio.CancelledError) as exc:
                if isinstance(exc, asyncio.CancelledError):
                    if self._stopping:
                        return
                    # not our stop: the consumer awaited something someone else cancelled
                    withdraw_cancel_requests()
                # the broker went away: clients reconnect by themselves; keep asking, slower
                failures += 1
                delay = _RECEIVE_BACKOFF.delay(failures)
                logger.warning(
                    "receiving failed (%s: %s); trying again in %.1fs",
                    type(exc).__name__,
                    exc,
                    delay,
                )
                try:
                    await asyncio.sleep(delay)
                except asyncio.CancelledError:
                    return
            except Exception as exc:
                logger.exception("the consumer failed; the listener stops")
                self._failure = exc
                self._request_stop()
                return

    async def _shutdown(self) -> None:
        self._request_stop()
        try:
            if self._start_task is not None:
                # cancelled by _request_stop(), once: a second cancel could cut short the
                # start's own clean-up
                await wait_cancelled("the consumer's start", self._start_task, self._close_bound)
            fetch = self._fetch_task
            if fetch is not None:
                fetch.cancel()  # also when a stop was requested before the fetch began
                with contextlib.suppress(asyncio.CancelledError):
                    await fetch
            await limited("stopping the consumer", self.consumer.stop(), self._close_bound)
            pool = self._pool
            if pool is not None:
                if not await pool.drain(self.shutdown_grace) and self._forced_by is not None:
                    logger.warning(
                        "forced exit: cancelling %d running handler(s) now (their messages "
                        "stay unsettled and will be delivered again)",
                        pool.in_flight,
                    )
                elif pool.in_flight:
                    logger.warning(
                        "%d handler(s) still running after the %.1fs grace period; cancelling "
                        "them (their messages stay unsettled and will be delivered again)",
                        pool.in_flight,
                        self.shutdown_grace,
                    )
                await pool.close()
            await limited("closing the consumer", self.consumer.close(), self._close_bound)
        finally:
            self._pool = None
            self._start_task = None
            self._fetch_task = None
            self._running = False
            if self._finished is not None:
                self._finished.set()

