"""Rate-limit store benchmark: the cost of one shared limit check, per store, beside a peer.

For each store of security/limits.py (the process's own buckets, Redis, the database on SQLite
and on PostgreSQL) it runs C concurrent tasks that check N requests over 500 requesters with a
limit no requester reaches: first straight against the store (every check a round trip), then
through the process's `Buckets` (a lease of a tenth of the burst per round trip, as a server
takes them), then one requester flooding past its limit (the refusals that the process decides
without the store).
The peer is the usual fixed-window limiter done by hand in Redis: INCR and EXPIRE of a
per-minute key in one pipeline, on the same Redis.

    .venv/bin/python bench/limits.py [--requests 2000] [--concurrency 16]

Only 127.0.0.1 is contacted: Redis on 6379, PostgreSQL at --postgres (a database of its own is
made and dropped).
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import tempfile
import time
from collections.abc import Awaitable, Callable

import asyncpg
from redis.asyncio import Redis

from regshield.security.limits import (
    Buckets,
    DatabaseBuckets,
    Limit,
    RedisBuckets,
)
from regshield.store.engine import Store

REDIS_URL = "redis://127.0.0.1:6379/0"
GENEROUS = Limit(10_000_000, 10_000_000)
TIGHT = Limit(1, 1)


async def measure(check: Callable[[int], Awaitable[object]], requests: int,
                  concurrency: int) -> float:
    """Checks a second."""
    counter = iter(range(requests))

    async def worker() -> None:
        for number in counter:
            await check(number)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return requests / (time.perf_counter() - started)


async def run_store(name: str, buckets: Buckets, requests: int, concurrency: int) -> None:
    run = secrets.token_hex(4)
    shared = buckets.shared

    async def trip(number: int) -> object:
        if shared is None:
            return await buckets.take(f"{run}:trip:{number % 500}", GENEROUS, time.time())
        return await shared.take(f"{run}:trip:{number % 500}", GENEROUS, time.time())

    async def spread(number: int) -> object:
        return await buckets.take(f"{run}:{number % 500}", GENEROUS, time.time())

    async def flood(_number: int) -> object:
        return await buckets.take(f"{run}:flood", TIGHT, time.time())

    trips = await measure(trip, requests, concurrency)
    allowed = await measure(spread, requests * 10, concurrency)
    refused = await measure(flood, requests * 10, concurrency)
    print(f"{name:24} {trips:12.0f} {allowed:12.0f} {refused:12.0f}")


async def run_peer(requests: int, concurrency: int) -> None:
    redis = Redis.from_url(REDIS_URL)
    run = secrets.token_hex(4)

    async def fixed_window(number: int) -> object:
        key = f"bench:peer:{run}:{number % 500}:{int(time.time() // 60)}"
        async with redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, 60)
            return await pipe.execute()

    rate = await measure(fixed_window, requests, concurrency)
    print(f"{'peer: Redis INCR+EXPIRE':24} {rate:12.0f} {'-':>12} {'-':>12}")
    await redis.aclose()


async def main(requests: int, concurrency: int, postgres: str) -> None:
    print(f"{'store':24} {'trips/s':>12} {'checks/s':>12} {'refusals/s':>12}")
    print(f"{'':24} {'(no lease)':>12} {'(leases)':>12} {'(flood)':>12}")
    await run_store("process", Buckets(None), requests, concurrency)
    redis = RedisBuckets(REDIS_URL, 1.0)
    await run_store("redis", Buckets(redis, timeout=5.0), requests, concurrency)
    await redis.close()
    await run_peer(requests, concurrency)
    with tempfile.TemporaryDirectory() as directory:
        sqlite = Store(f"sqlite+aiosqlite:///{directory}/bench.db")
        await sqlite.migrate()
        await run_store("database (SQLite)", Buckets(DatabaseBuckets(sqlite), timeout=30.0),
                        requests, concurrency)
        await sqlite.close()
    name = f"bench_limits_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(postgres)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        base = postgres.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
        store = Store(f"{base}/{name}")
        await store.migrate()
        await run_store("database (PostgreSQL)", Buckets(DatabaseBuckets(store), timeout=30.0),
                        requests, concurrency)
        await store.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.requests, arguments.concurrency, arguments.postgres))
