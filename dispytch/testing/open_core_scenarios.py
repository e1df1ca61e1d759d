"""Conformance scenarios for what the core lets users add (middleware, codecs, dependency
overrides): they must behave the same on every backend. Part of `ConformanceSuite`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any

from dispytch.backends.base import OutgoingMessage
from dispytch.reasons import DeadLetterReason
from dispytch.testing.harness import new_name

if TYPE_CHECKING:
    from dispytch.envelope import Envelope
    from dispytch.events import EventBase
    from dispytch.testing.harness import Session


def _real_tax_rate() -> float:
    raise RuntimeError("the scenario overrides this dependency")


class _Reversed:
    """A toy wire format: the JSON envelope, its bytes reversed."""

    content_type = "application/x-dispytch-reversed"

    def encode(
        self, envelope: Mapping[str, Any], event: EventBase
    ) -> tuple[bytes, Mapping[str, str]]:
        return json.dumps(envelope).encode()[::-1], {}

    def decode(self, value: bytes, headers: Mapping[str, str]) -> Envelope:
        from dispytch.envelope import read_envelope

        return read_envelope(json.loads(value[::-1]))


class OpenCoreScenarios:
    async def test_middleware_and_dependency_overrides_on_this_backend(
        self, session: Session
    ) -> None:
        """Emit middleware adds a header that arrives; handler-call middleware sees every
        attempt; message middleware sees each message's outcome after it was settled (handled,
        dead-lettered with the reason); an overridden dependency is the one handlers get."""
        from dispytch import Dependency, Event, EventBase, EventEmitter, EventListener
        from dispytch.middleware import CallNext, EmitContext, HandlerCall, MessageContext

        harness = session.harness
        topic = await harness.new_topic()

        class Priced(EventBase):
            __topic__ = topic
            __event_type__ = "priced"
            n: int

        consumer = await harness.consumer(new_name("open-core"), [topic])
        listener = EventListener(consumer, topic_delimiter=harness.delimiter)
        outcomes: dict[int, tuple[str, str | None]] = {}
        attempts: list[tuple[int, int]] = []
        taxed: list[tuple[int, float, str | None]] = []
        done = asyncio.Event()

        @listener.message_middleware
        async def watch(message: MessageContext, call_next: CallNext) -> None:
            await call_next()
            assert message.outcome is not None
            n = json.loads(message.value)["body"]["n"]
            reason = message.outcome.reason
            outcomes[n] = (message.outcome.kind, None if reason is None else reason.stage)
            if len(outcomes) == 3:
                done.set()

        @listener.handler_middleware
        async def count(call: HandlerCall, call_next: CallNext) -> Any:
            attempts.append((call.event.body.n, call.attempt))
            return await call_next()

        @listener.handler(topic=topic, event="priced", retries=1, retry_interval=0.01)
        async def on_priced(
            event: Event[Priced], rate: Annotated[float, Dependency(_real_tax_rate)]
        ) -> None:
            if event.body.n == 2:
                raise ValueError("cannot price")
            taxed.append((event.body.n, rate, event.headers.get("x-origin")))

        listener.dependency_overrides[_real_tax_rate] = lambda: 0.5

        async def stamp(emit: EmitContext, call_next: CallNext) -> None:
            emit.message.headers["x-origin"] = "conformance"
            await call_next()

        emitter = EventEmitter(await session.producer(), middleware=[stamp])
        async with listener:
            for n in range(3):
                await emitter.emit(Priced(n=n))
            await asyncio.wait_for(done.wait(), harness.receive_timeout)
            letters = await harness.read_dead_letters(topic, 1, harness.receive_timeout)
        assert sorted(taxed) == [(0, 0.5, "conformance"), (1, 0.5, "conformance")]
        assert sorted(attempts) == [(0, 1), (1, 1), (2, 1), (2, 2)]
        assert outcomes == {
            0: ("handled", None),
            1: ("handled", None),
            2: ("dead_lettered", "handler"),
        }
        reason = DeadLetterReason.from_headers(letters[0][1])
        assert reason is not None
        assert reason.attempts == 2

    async def test_codecs_are_chosen_by_content_type_on_this_backend(
        self, session: Session
    ) -> None:
        """A codec given to the listener decodes its content type, JSON stays the default, and
        a content type without a codec is dead-lettered (stage decode) with its bytes kept."""
        from dispytch import Event, EventBase, EventEmitter, EventListener

        harness = session.harness
        topic = await harness.new_topic()

        class Reading(EventBase):
            __topic__ = topic
            __event_type__ = "reading"
            n: int

        class ReversedReading(Reading):
            __codec__ = _Reversed()

        consumer = await harness.consumer(new_name("codecs"), [topic])
        listener = EventListener(consumer, topic_delimiter=harness.delimiter, codecs=[_Reversed()])
        handled: list[int] = []
        both = asyncio.Event()

        @listener.handler(topic=topic, event="reading")
        async def on_reading(event: Event[Reading]) -> None:
            handled.append(event.body.n)
            if len(handled) == 2:
                both.set()

        producer = await session.producer()
        emitter = EventEmitter(producer)
        unknown = json.dumps({"id": "u", "type": "reading", "body": {"n": 3}}).encode()
        async with listener:
            await emitter.emit(Reading(n=1))
            await emitter.emit(ReversedReading(n=2))
            await producer.send(
                OutgoingMessage(topic, unknown, headers={"content-type": "application/x-nobody"})
            )
            letters = await harness.read_dead_letters(topic, 1, harness.receive_timeout)
            await asyncio.wait_for(both.wait(), harness.receive_timeout)
        assert sorted(handled) == [1, 2]
        value, headers = letters[0]
        assert value == unknown
        reason = DeadLetterReason.from_headers(headers)
        assert reason is not None
        assert (reason.stage, reason.error_type) == ("decode", "UnknownContentTypeError")

