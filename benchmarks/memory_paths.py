"""One path of `memory_throughput.py` over N events, for counting instructions with callgrind.

    valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        .venv/bin/python benchmarks/memory_paths.py dispytch 6000

Paths: `payloads` (make the events' bytes only), `publish` (make them and publish them to an
in-memory broker), `by-hand` (make them and run the hand-written loop), `dispytch` (make them
and run them through the listener, publishing included). Run a path with 2,000 and with 6,000
events and divide the difference by 4,000: start-up costs cancel, and subtracting `payloads`
and `publish` the same way leaves the cost per event of the loop or of Dispytch's path.
"""

from __future__ import annotations

import asyncio
import sys

import memory_throughput

from dispytch import InMemoryBroker
from dispytch.backends.base import OutgoingMessage


async def main(path: str, count: int) -> None:
    payloads = memory_throughput.make_payloads(count)
    if path == "publish":
        broker = InMemoryBroker()
        for raw in payloads:
            broker.publish(OutgoingMessage(memory_throughput.TOPIC, raw))
    elif path == "by-hand":
        await memory_throughput.hand_written(payloads)
    elif path == "dispytch":
        await memory_throughput.through_dispytch(
            payloads, chunk=min(count, memory_throughput.CHUNK)
        )
    elif path != "payloads":
        raise SystemExit(f"unknown path {path!r}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
