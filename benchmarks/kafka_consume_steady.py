"""Kafka consume in steady state, for counting instructions per event with callgrind.

`kafka_throughput.py` times both consumers from the first event handled to the last; under
callgrind the cost of the group join and of the first fetch would swamp a short run. Here one
process fills a topic, and the consumer runs in processes of its own over two event counts:
the difference of their instruction totals, divided by the difference of the counts, is the
cost of one event with start-up cancelled out.

    T=$(../.venv/bin/python kafka_consume_steady.py fill 6000)
    for side in hand dispytch; do for n in 2000 6000; do
      PYTHONHASHSEED=0 valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        ../.venv/bin/python kafka_consume_steady.py $side $T $n 2>&1 | grep Collected
    done; done

`hand` is `kafka_throughput.consume_by_hand` (getmany, decode, validate, commit every 0.5 s),
`dispytch` is `kafka_throughput.consume_dispytch`; both read the topic from its start.
"""

from __future__ import annotations

import asyncio
import sys

import kafka_throughput


async def main(argv: list[str]) -> None:
    if argv[0] == "fill":
        topic = await kafka_throughput.create_topic(kafka_throughput.PARTITIONS)
        await kafka_throughput.fill(topic, int(argv[1]))
        print(topic)
        return
    side, topic, count = argv[0], argv[1], int(argv[2])
    if side == "dispytch":
        await kafka_throughput.consume_dispytch(topic, count)
    elif side == "hand":
        await kafka_throughput.consume_by_hand(topic, count)
    else:
        raise SystemExit(f"unknown side {side!r} (fill, hand or dispytch)")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
