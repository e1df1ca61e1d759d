"""`PullFeed`: a continuous pull from one JetStream durable consumer.

Instead of nats-py's `fetch()` (one request, then a timer per message while the caller
waits), a feed keeps pull requests open for as many messages as its consumer has room for,
all answered into one inbox subscription. The next messages then arrive while handlers run,
and each costs a callback, not a timer. Credit accounting:

- `outstanding` = messages asked for and not yet received. A request is sent when the room
  left (`room()`, which subtracts every feed's `outstanding`) reaches a quarter of a batch
  (measured: half a batch left the consumer idle while the next messages were on their way,
  a tenth cost more requests than it saved), or when nothing is outstanding: the server
  never sends more than the listener has room for.
- A request expires on the server after `REQUEST_EXPIRES` seconds; the server then answers
  `408` with `Nats-Pending-Messages` (what it did not fill), which is credited back. A `409`
  (the consumer was deleted, too many waiting requests, ...) is credited back the same way,
  all of it when the header is missing.
- Requests lost with a connection get no answer: after `STALE_AFTER` seconds without any
  reply, the feed assumes nothing is outstanding and asks again.

A message arriving after `stop()` is given back by the consumer's callback (nak); `stop()`
waits (bounded) until every open request has ended, so that no message is sent to a
subscription that is gone (it would count a delivery no handler saw, and wait `ack_wait`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from dispytch.nats._client import NATS_ERRORS, Client

if TYPE_CHECKING:
    from nats.aio.msg import Msg
    from nats.aio.subscription import Subscription as NatsSubscription

logger = logging.getLogger("dispytch.nats")

#: seconds a pull request stays open on the server
REQUEST_EXPIRES = 1.0
#: seconds without any reply after which open requests are assumed lost (a reconnect)
STALE_AFTER = REQUEST_EXPIRES + 2.0
_PENDING_HEADER = "Nats-Pending-Messages"
_STATUS_HEADER = "Status"
_API_PREFIX = "$JS.API"


class PullFeed:
    """Pulls the messages of durable `durable` on `stream` and hands each to `on_message`.

    `room()`: how many more messages the consumer may take now (its capacity minus what it
    holds and what every feed has asked for). `batch`: the most one request asks for.
    """

    def __init__(
        self,
        client: Client,
        stream: str,
        durable: str,
        *,
        batch: int,
        room: Callable[[], int],
        on_message: Callable[[Msg], Awaitable[None]],
    ) -> None:
        self.client = client
        self.batch = max(1, batch)
        self.outstanding = 0
        self._next_subject = f"{_API_PREFIX}.CONSUMER.MSG.NEXT.{stream}.{durable}"
        self._room = room
        self._on_message = on_message
        self._threshold = max(1, self.batch // 4)
        self._wakeup = asyncio.Event()
        self._ended = asyncio.Event()
        self._stopping = False
        self._last_heard = time.monotonic()
        #: after an unexpected status, no request before this (monotonic seconds)
        self._hold_until = 0.0
        self._inbox = ""
        self._subscription: NatsSubscription | None = None
        self._requests: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._inbox = self.client.new_inbox()
        self._subscription = await self.client.subscribe(self._inbox, cb=self._on_reply)
        self._requests = asyncio.create_task(self._request_loop())

    def wake(self) -> None:
        """Room was freed: ask for more if a quarter of a batch fits, or if nothing is
        asked for (the conditions of `_request_loop`)."""
        if not self._wakeup.is_set():
            room = self._room()
            if room >= self._threshold or (room > 0 and self.outstanding == 0):
                self._wakeup.set()

    async def stop(self) -> None:
        """Send no more requests and wait (at most `STALE_AFTER` s) for the open ones to end."""
        self._stopping = True
        self._wakeup.set()
        if self._requests is not None:
            await asyncio.gather(self._requests, return_exceptions=True)
        if self.outstanding > 0:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._ended.wait(), STALE_AFTER)
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            with contextlib.suppress(*NATS_ERRORS):
                await subscription.unsubscribe()

    async def _request_loop(self) -> None:
        pause = 0.1
        while not self._stopping:
            now = time.monotonic()
            if self.outstanding > 0 and now - self._last_heard > STALE_AFTER:
                logger.debug("no answer to %d requested messages: asking again", self.outstanding)
                self._credit(self.outstanding)
            if now < self._hold_until:
                await asyncio.sleep(self._hold_until - now)
                continue
            ask = min(self._room(), self.batch)
            if ask >= self._threshold or (ask > 0 and self.outstanding == 0):
                request = {"batch": ask, "expires": int(REQUEST_EXPIRES * 1e9)}
                if self.outstanding == 0:
                    self._last_heard = now
                self.outstanding += ask
                self._ended.clear()
                try:
                    await self.client.publish(
                        self._next_subject, json.dumps(request).encode(), reply=self._inbox
                    )
                except NATS_ERRORS as exc:
                    self.outstanding = max(0, self.outstanding - ask)
                    logger.warning("asking NATS for messages failed (%r); trying again", exc)
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, 5.0)
                    continue
                pause = 0.1
                continue
            self._wakeup.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), REQUEST_EXPIRES)

    async def _on_reply(self, msg: Msg) -> None:
        self._last_heard = time.monotonic()
        if not msg.reply:  # a status from the server (JetStream messages carry an ack subject)
            self._status(msg)
            return
        self._credit(1)
        await self._on_message(msg)

    def _status(self, msg: Msg) -> None:
        headers = msg.headers or {}
        status = headers.get(_STATUS_HEADER)
        if status == "100":  # an idle heartbeat
            return
        pending: int | None = None
        with contextlib.suppress(ValueError, TypeError):
            pending = int(headers.get(_PENDING_HEADER, ""))
        if status not in ("404", "408"):  # 409: consumer deleted, too many requests, ...
            description = str(headers.get("Description", ""))[:200]
            logger.warning("NATS ended a pull request: %r %r", status, description)
            self._hold_until = time.monotonic() + REQUEST_EXPIRES
        if pending is None or pending < 0:
            self._credit(self.outstanding)
        else:
            self._credit(pending)
        self._wakeup.set()

    def _credit(self, count: int) -> None:
        self.outstanding = max(0, self.outstanding - count)
        if self.outstanding == 0:
            self._ended.set()
