"""A worker for the Ctrl-C-twice tests: its one handler never finishes by itself.

    python tests/core/forced_exit_worker.py memory
    python tests/core/forced_exit_worker.py kafka BOOTSTRAP TOPIC GROUP

It prints `handling` once the handler runs; the listener runs as the main program
(`listener.run()`), with the default `shutdown_grace` of 30 s.
"""

from __future__ import annotations

import asyncio
import logging
import sys

from dispytch import Event, EventBase, EventEmitter, EventListener, InMemoryBroker


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
    backend = sys.argv[1]
    topic = sys.argv[3] if backend == "kafka" else "orders"

    class Placed(EventBase):
        __topic__ = topic
        __event_type__ = "placed"
        n: int

    if backend == "kafka":
        from dispytch.kafka import KafkaConsumer, KafkaProducer

        bootstrap, group = sys.argv[2], sys.argv[4]
        consumer = KafkaConsumer.create(bootstrap, group)
        producer = KafkaProducer.create(bootstrap)
    else:
        broker = InMemoryBroker()
        consumer, producer = broker.consumer("svc"), broker.producer()

    listener = EventListener(consumer)

    @listener.handler(topic=topic, event="placed")
    async def place(event: Event[dict[str, int]]) -> None:
        print("handling", flush=True)
        await asyncio.Event().wait()  # never finishes by itself

    async def run() -> None:
        emitter = EventEmitter(producer)
        await emitter.emit(Placed(n=1))
        await emitter.close()
        await listener.listen()

    asyncio.run(run())


if __name__ == "__main__":
    main()


async def interrupt_twice(args: list[str]) -> tuple[int, str]:
    """Run the worker with `args`, press Ctrl-C once its handler runs and again once it says it
    stops gracefully; its exit status and its log (stderr). Every wait is bounded."""
    import signal
    import time

    process = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    log: list[str] = []

    async def read_log() -> None:
        assert process.stderr is not None
        async for line in process.stderr:
            log.append(line.decode(errors="replace"))

    reading = asyncio.create_task(read_log())
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 60.0)
        assert line.strip() == b"handling", "".join(log)
        process.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 20.0
        while not any("stopping 1 listener(s)" in entry for entry in log):
            assert time.monotonic() < deadline, "".join(log)
            await asyncio.sleep(0.05)
        process.send_signal(signal.SIGINT)
        status = await asyncio.wait_for(process.wait(), 15.0)
        await asyncio.wait_for(reading, 5.0)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        reading.cancel()
    return status, "".join(log)
