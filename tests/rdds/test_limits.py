"""Per-source query limits of RDAP, WHOIS and the contact form (security/limits.py): GCRA
buckets on the injected clock, grouped by network, with a larger bucket per authenticated user."""

from __future__ import annotations

from datetime import timedelta

import pytest
from conftest import START

from regshield.clock import FakeClock
from regshield.security.limits import Limit, RateLimiter, network_of


def limiter(clock: FakeClock, per_minute: int = 60, burst: int = 5) -> RateLimiter:
    return RateLimiter("whois", Limit(per_minute, burst), Limit(600, 50), clock)


async def take(limiter: RateLimiter, count: int, source: str = "192.0.2.1",
               user: str | None = None) -> list[bool]:
    return [(await limiter.check(source, user=user)).allowed for _ in range(count)]


async def test_a_burst_is_answered_and_the_next_query_is_refused_with_a_wait() -> None:
    clock = FakeClock(START)
    limits = limiter(clock, per_minute=60, burst=5)

    assert await take(limits, 5) == [True] * 5
    refused = await limits.check("192.0.2.1")

    assert not refused.allowed and refused.retry_after == 1
    assert (limits.answered["anonymous"], limits.refused["anonymous"]) == (5, 1)


async def test_the_bucket_refills_at_the_rate_and_never_beyond_the_burst() -> None:
    clock = FakeClock(START)
    limits = limiter(clock, per_minute=6, burst=3)  # one query every ten seconds
    assert await take(limits, 3) == [True] * 3
    refused = await limits.check("192.0.2.1")
    assert refused.retry_after == 10

    clock.advance(timedelta(seconds=9))
    assert not (await limits.check("192.0.2.1")).allowed
    clock.advance(timedelta(seconds=1))
    assert (await limits.check("192.0.2.1")).allowed
    clock.advance(timedelta(hours=1))  # a long pause still gives only the burst
    assert await take(limits, 4) == [True, True, True, False]


async def test_other_sources_have_their_own_buckets() -> None:
    limits = limiter(FakeClock(START), burst=2)
    assert await take(limits, 3, "192.0.2.1") == [True, True, False]
    assert await take(limits, 2, "192.0.2.2") == [True, True]


async def test_ipv6_addresses_of_one_64_share_a_bucket_and_other_64s_do_not() -> None:
    limits = limiter(FakeClock(START), burst=2)
    assert await take(limits, 1, "2001:db8:1:2::1") == [True]
    assert await take(limits, 1, "2001:db8:1:2:ffff:ffff:ffff:ffff") == [True]
    assert await take(limits, 1, "2001:db8:1:2::abcd") == [False]
    assert await take(limits, 2, "2001:db8:1:3::1") == [True, True]
    assert network_of("2001:db8:1:2::abcd") == "2001:db8:1:2::/64"


async def test_an_ipv4_mapped_address_counts_as_its_ipv4_address() -> None:
    limits = limiter(FakeClock(START), burst=1)
    assert await take(limits, 1, "192.0.2.7") == [True]
    assert await take(limits, 1, "::ffff:192.0.2.7") == [False]


@pytest.mark.parametrize("source", [None, "", "not an address", "999.1.1.1"])
async def test_unparseable_sources_share_one_bucket(source: str | None) -> None:
    limits = limiter(FakeClock(START), burst=1)
    assert await take(limits, 1, "garbage") == [True]
    assert await take(limits, 1, source) == [False]  # type: ignore[arg-type]


async def test_an_authenticated_requester_has_a_larger_bucket_of_its_own() -> None:
    limits = limiter(FakeClock(START), burst=2)
    assert await take(limits, 3, "192.0.2.1") == [True, True, False]

    # The same network, authenticated: not throttled with its network, and allowed more.
    assert await take(limits, 50, "192.0.2.1", user="usr_1") == [True] * 50
    assert await take(limits, 1, "192.0.2.1", user="usr_1") == [False]
    assert await take(limits, 1, "192.0.2.1", user="usr_2") == [True]
    assert limits.answered["authenticated"] == 51
    assert limits.refused["authenticated"] == 1
    assert limits.refused["anonymous"] == 1


def test_a_limit_needs_at_least_one_query() -> None:
    with pytest.raises(ValueError, match="at least one"):
        Limit(0, 1)
