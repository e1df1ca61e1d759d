"""Runs one side of one NATS or Redis scenario once, for counting instructions with callgrind,
which a loaded machine does not move as it moves wall-clock time.

    valgrind --tool=callgrind --callgrind-out-file=out.N .venv/bin/python \\
        benchmarks/one_side.py nats emit dispytch N
    grep ^summary: out.N

Instructions per event = (count with N2 - count with N1) / (N2 - N1). Consuming includes
putting the events in the stream first: count that alone with the side `none` and take it
off. Sides: `dispytch`, `raw` (the hand-written one; for NATS consuming `raw` is the
`fetch()` loop and `push` the push consumer), `none`.
"""

from __future__ import annotations

import argparse
import asyncio

import nats_throughput
import redis.asyncio as aioredis
import redis_throughput


async def nats_side(scenario: str, side: str, events: int) -> None:
    module = nats_throughput
    async with module.fresh_stream(events if scenario == "consume" else 0):
        if scenario == "emit" and side != "none":
            publish = module.publish_dispytch if side == "dispytch" else module.publish_raw
            await publish(events, False)
        elif scenario == "consume" and side != "none":
            consume = {
                "dispytch": module.consume_dispytch,
                "raw": module.consume_raw,
                "push": module.consume_raw_push,
            }[side]
            await consume(events)


async def redis_side(scenario: str, side: str, events: int) -> None:
    module = redis_throughput
    client = aioredis.Redis.from_url(module.URL)
    try:
        async with module.fresh_streams(client, events if scenario == "consume" else 0) as s:
            if scenario == "emit" and side != "none":
                publish = module.publish_dispytch if side == "dispytch" else module.publish_raw
                await publish(s, events, False)
            elif scenario == "consume" and side != "none":
                consume = module.consume_dispytch if side == "dispytch" else module.consume_raw
                await consume(s, events)
    finally:
        await client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("broker", choices=["nats", "redis"])
    parser.add_argument("scenario", choices=["emit", "consume"])
    parser.add_argument("side", choices=["dispytch", "raw", "push", "none"])
    parser.add_argument("events", type=int)
    args = parser.parse_args()
    run = nats_side if args.broker == "nats" else redis_side
    asyncio.run(run(args.scenario, args.side, args.events))


if __name__ == "__main__":
    main()
