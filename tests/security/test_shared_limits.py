"""Rate limits shared between processes (security/limits.py): two sets of services, as two
processes or instances would open them, take from the same buckets in Redis or in the
database, and a limit one of them used up holds at the other. A shared store that fails
leaves the decision to the process's own buckets, never to an error."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta

import pytest
import structlog

from regshield.clock import FakeClock
from regshield.config import Settings
from regshield.rdds.whois import WhoisServer
from regshield.security.limits import Buckets, DatabaseBuckets, Limit, RateLimiter, RedisBuckets
from regshield.services import Services

REDIS_URL = "redis://127.0.0.1:6379/0"
UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"  # nothing listens on port 1


# How long a check waits for the shared store here: these tests count on its answers, and a
# busy machine can take longer than the default (500 ms) for a first write, which would
# leave the decision to the process (the fallback, tested below with a store that fails).
STORE_WAIT_MS = 30_000


def limited(settings: Settings, store: str, redis_url: str | None = None) -> Settings:
    """Anonymous requesters: three at once, then one a minute."""
    return replace(settings, rdds=replace(settings.rdds, burst=3, per_minute=1),
                   limits=replace(settings.limits, store=store, redis_url=redis_url,
                                  store_timeout_ms=STORE_WAIT_MS))


@pytest.fixture(params=["redis", "database"])
async def two_processes(request: pytest.FixtureRequest, services: Services,
                        clock: FakeClock) -> AsyncIterator[tuple[Services, Services]]:
    """Two services on one installation, sharing Redis or the database; each has its own
    store engine, key ring copy and limiters, as two processes would."""
    store = str(request.param)
    settings = limited(services.settings, store, REDIS_URL if store == "redis" else None)
    first, second = Services.open(settings, clock), Services.open(settings, clock)
    yield first, second
    await first.close()
    await second.close()


async def allowed(services: Services, service: str, count: int,
                  source: str = "192.0.2.1") -> list[bool]:
    limiter = services.limiter(service)
    return [(await limiter.check(source)).allowed for _ in range(count)]


async def test_a_limit_used_up_in_one_process_holds_in_the_other(
        two_processes: tuple[Services, Services], clock: FakeClock) -> None:
    first, second = two_processes
    assert first.limiter("rdap").buckets.store_name == second.settings.limits.store

    assert await allowed(first, "rdap", 2) == [True, True]
    assert await allowed(second, "rdap", 2) == [True, False]
    refused = await first.limiter("rdap").check("192.0.2.1")
    assert not refused.allowed and 1 <= refused.retry_after <= 60
    # Another network, and another service of the same network, have buckets of their own.
    assert await allowed(second, "rdap", 1, "192.0.2.2") == [True]
    assert await allowed(second, "whois", 1) == [True]

    clock.advance(timedelta(seconds=refused.retry_after))
    assert await allowed(second, "rdap", 2) == [True, False]
    assert first.limiter("rdap").buckets.fallbacks == 0


async def test_concurrent_requests_from_two_processes_never_pass_the_burst(
        two_processes: tuple[Services, Services]) -> None:
    first, second = two_processes
    decisions = await asyncio.gather(*(
        process.limiter("whois").check("198.51.100.9")
        for _ in range(10) for process in (first, second)))
    assert sum(decision.allowed for decision in decisions) == 3


async def test_the_shared_keys_never_hold_the_address(services: Services,
                                                      clock: FakeClock) -> None:
    settings = limited(services.settings, "redis", REDIS_URL)
    process = Services.open(settings, clock)
    try:
        await process.limiter("whois").check("203.0.113.77")
        redis = RedisBuckets(REDIS_URL, 1.0)
        keys = [key async for key in redis.client.scan_iter("regshield:rate:*")]
        await redis.close()
        assert keys and not any(b"203.0.113" in key for key in keys)
    finally:
        await process.close()


async def test_an_unreachable_redis_leaves_the_limit_to_the_process_and_says_so_once(
        services: Services, clock: FakeClock) -> None:
    settings = limited(services.settings, "redis", UNREACHABLE_REDIS)
    process = Services.open(settings, clock)
    try:
        with structlog.testing.capture_logs() as logs:
            assert await allowed(process, "rdap", 4) == [True, True, True, False]
        limiter = process.limiter("rdap")
        assert limiter.buckets.fallbacks == 4
        assert limiter.refused["anonymous"] == 1
        warnings = [entry for entry in logs
                    if entry["event"] == "limits.shared_store_unavailable"]
        assert len(warnings) == 1 and warnings[0]["store"] == "redis"
        assert "127.0.0.1:1" not in str(logs)
    finally:
        await process.close()


async def test_a_failing_database_store_falls_back_and_recovers(
        services: Services, clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    buckets = Buckets(DatabaseBuckets(services.store), timeout=1.0)
    limiter = RateLimiter("rdap", Limit(1, 2), Limit(10, 5), clock, buckets)
    healthy = buckets.shared.take  # type: ignore[union-attr]

    async def broken(*_args: object) -> None:
        raise ConnectionRefusedError("database down")

    monkeypatch.setattr(buckets.shared, "take", broken)
    assert (await limiter.check("192.0.2.1")).allowed
    assert buckets.fallbacks == 1

    monkeypatch.setattr(buckets.shared, "take", healthy)
    monkeypatch.setattr("regshield.security.limits.RETRY_SHARED_SECONDS", 0.0)
    buckets._shared_down_until = 0.0
    assert (await limiter.check("192.0.2.1")).allowed  # the shared store again
    assert buckets.fallbacks == 1 and not buckets._down


async def query(server: WhoisServer, line: bytes) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(line)
    await writer.drain()
    answer = await reader.read()
    writer.close()
    return answer.decode()


async def test_two_whois_servers_on_one_redis_share_a_source_limit(
        two_processes: tuple[Services, Services]) -> None:
    first, second = (WhoisServer(process) for process in two_processes)
    await first.start("127.0.0.1", 0)
    await second.start("127.0.0.1", 0)
    try:
        answers = [await query(server, b"nothing.test\r\n")
                   for server in (first, second, first, second)]
    finally:
        await first.close()
        await second.close()
    assert [answer.startswith("Error: query rate exceeded") for answer in answers] == [
        False, False, False, True]


async def test_a_source_over_its_limit_is_refused_without_asking_the_store_again(
        two_processes: tuple[Services, Services], clock: FakeClock) -> None:
    first, second = two_processes
    limiter = first.limiter("whois")
    assert await allowed(first, "whois", 4) == [True, True, True, False]
    asked = limiter.buckets.shared_calls
    assert await allowed(first, "whois", 50) == [False] * 50
    assert limiter.buckets.shared_calls == asked  # a flood over its limit costs no round trip

    # The other process used the refill: the first still asks the store once it is due.
    clock.advance(timedelta(seconds=60))
    assert await allowed(second, "whois", 1) == [True]
    assert await allowed(first, "whois", 1) == [False]
    assert limiter.buckets.shared_calls == asked + 1


async def test_leases_cut_round_trips_and_the_fleet_never_passes_the_limit(
        services: Services, clock: FakeClock) -> None:
    """A burst of 100 leases 10 at a time: two processes asking in turn get exactly the
    burst between them, for about one round trip in ten."""
    settings = replace(services.settings,
                       rdds=replace(services.settings.rdds, burst=100, per_minute=1),
                       limits=replace(services.settings.limits, store="redis",
                                      redis_url=REDIS_URL, store_timeout_ms=STORE_WAIT_MS))
    first, second = Services.open(settings, clock), Services.open(settings, clock)
    try:
        source = "203.0.113.77"
        decisions = []
        for _ in range(80):
            for process in (first, second):
                decisions.append((await process.limiter("rdap").check(source)).allowed)
        calls = sum(p.limiter("rdap").buckets.shared_calls for p in (first, second))
    finally:
        await first.close()
        await second.close()
    assert sum(decisions) == 100
    assert decisions[:100] == [True] * 100
    # 10 leases of 10; near the end each process's lease asked for ahead is refused, then
    # one request each is refused (the retry for one more counts too).
    assert calls <= 16


async def test_concurrent_requests_of_one_bucket_make_one_trip_and_waste_no_lease(
        services: Services, clock: FakeClock) -> None:
    """32 requests of one source at once in one process: one asks the store, the others wait
    for its lease; none takes a lease of its own that would be lost."""
    settings = replace(services.settings,
                       rdds=replace(services.settings.rdds, burst=100, per_minute=1),
                       limits=replace(services.settings.limits, store="database",
                                      store_timeout_ms=STORE_WAIT_MS))
    first, second = Services.open(settings, clock), Services.open(settings, clock)
    try:
        decisions = await asyncio.gather(*(first.limiter("rdap").check("203.0.113.80")
                                           for _ in range(32)))
        calls = first.limiter("rdap").buckets.shared_calls
        # What the first did not take is left for the second process.
        later = await allowed(second, "rdap", 100, "203.0.113.80")
    finally:
        await first.close()
        await second.close()
    assert all(decision.allowed for decision in decisions)
    assert calls == 4  # 32 requests, leases of 10
    assert sum(later) == 100 - 40


async def test_a_busy_requester_is_decided_without_waiting_for_the_store(
        services: Services, clock: FakeClock) -> None:
    """The next lease is asked for while a quarter of the current one is left, so requests
    arriving a few milliseconds apart never wait for a round trip after the first."""
    settings = replace(services.settings,
                       rdds=replace(services.settings.rdds, burst=100, per_minute=1),
                       limits=replace(services.settings.limits, store="database",
                                      store_timeout_ms=STORE_WAIT_MS))
    process = Services.open(settings, clock)
    limiter = process.limiter("rdap")
    try:
        assert (await limiter.check("203.0.113.81")).allowed  # the first asks the store
        decided = []
        for _ in range(40):
            decided.append(limiter.check_now("203.0.113.81"))
            await asyncio.sleep(0.01)
        calls = limiter.buckets.shared_calls
    finally:
        await process.close()
    assert [decision.allowed if decision else None for decision in decided] == [True] * 40
    assert calls == 5  # 41 requests in leases of 10, each asked for ahead of need


async def test_a_lease_at_a_high_rate_is_not_spent_by_the_clock(
        services: Services, clock: FakeClock) -> None:
    """At a million requests a minute a lease of 100 lasts 6 ms at the average rate; it is
    kept for a second at least, so requests still cost a round trip per lease, not each."""
    settings = replace(services.settings,
                       rdds=replace(services.settings.rdds, burst=1000, per_minute=1_000_000),
                       limits=replace(services.settings.limits, store="redis",
                                      redis_url=REDIS_URL, store_timeout_ms=STORE_WAIT_MS))
    process = Services.open(settings, clock)
    try:
        for _ in range(200):
            assert (await process.limiter("rdap").check("203.0.113.78")).allowed
            clock.advance(timedelta(milliseconds=1))  # 200 ms in all
        calls = process.limiter("rdap").buckets.shared_calls
    finally:
        await process.close()
    assert calls <= 3  # leases of 100 (the next asked for when 25 are left), not one a request


async def test_a_busy_requesters_lease_grows_and_its_trips_stay_few(
        services: Services, clock: FakeClock) -> None:
    """Leases spent within a quarter second double (100, 200, 400, ...): 3,000 requests cost
    a handful of trips, and the fleet's limit still holds."""
    settings = replace(services.settings,
                       rdds=replace(services.settings.rdds, burst=100_000,
                                    per_minute=1_000_000),
                       limits=replace(services.settings.limits, store="database",
                                      store_timeout_ms=STORE_WAIT_MS))
    process = Services.open(settings, clock)
    limiter = process.limiter("rdap")
    try:
        decisions = [await limiter.check("203.0.113.82") for _ in range(3000)]
        await asyncio.sleep(0.1)  # a renewal still on its way is counted too
        calls = limiter.buckets.shared_calls
    finally:
        await process.close()
    assert all(decision.allowed for decision in decisions)
    assert calls <= 6  # 100 + 200 + 400 + 800 + 1,600 (+ the next one, asked for ahead)


def test_a_lease_grows_only_up_to_a_tenth_of_the_burst() -> None:
    small, large = Limit(60, 1000), Limit(6_000_000, 10_000_000)

    assert Buckets._next_size(small, 100, elapsed=0.01) == 100  # a tenth of 1,000
    assert Buckets._next_size(large, 100, elapsed=0.01) == 200
    assert Buckets._next_size(large, 8000, elapsed=0.01) == 10_000  # MAX_GROWN_LEASE
    assert Buckets._next_size(large, 800, elapsed=1.0) == 100  # spent slowly: back to the first
