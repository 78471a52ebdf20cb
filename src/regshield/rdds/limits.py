"""Per-source query limits for RDAP, WHOIS and the contact form.

A token bucket per source network (an IPv4 /32 or IPv6 /64 by default: one host, or one
customer's LAN), per service. Authenticated requesters get their own, larger bucket keyed by
their user, so a disclosure requester or a staff search is not throttled with its network.
A refusal says when to come back (`retry_after`, whole seconds, for RDAP's Retry-After).

The buckets live in the process: each instance limits what it answers. Counters of what was
answered and refused per service are kept for metrics.
"""

from __future__ import annotations

import ipaddress
import math
from collections import Counter, OrderedDict
from dataclasses import dataclass, field

from regshield.clock import Clock

MAX_BUCKETS = 100_000  # the least recently used buckets are forgotten past this


@dataclass(frozen=True)
class Limit:
    """`per_minute` queries a minute on average, with bursts of up to `burst`."""

    per_minute: int
    burst: int

    def __post_init__(self) -> None:
        if self.per_minute < 1 or self.burst < 1:
            raise ValueError("a limit needs at least one query a minute and a burst of one")


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after: int = 0  # seconds until one query is allowed again (refusals only)


@dataclass
class _Bucket:
    tokens: float
    at: float


@dataclass
class RateLimiter:
    """Buckets for one service (`rdap`, `whois`, `contact`)."""

    service: str
    anonymous: Limit
    authenticated: Limit
    clock: Clock
    answered: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)
    _buckets: OrderedDict[str, _Bucket] = field(default_factory=OrderedDict)

    def check(self, source: str | None, *, user: str | None = None) -> Decision:
        """Take one query from the bucket of `user` (when authenticated) or of `source`'s
        network. An unparseable or missing source shares one bucket with all such requests."""
        kind = "authenticated" if user else "anonymous"
        limit = self.authenticated if user else self.anonymous
        key = f"user:{user}" if user else f"net:{network_of(source)}"
        now = self.clock.now().timestamp()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = _Bucket(float(limit.burst), now)
            self._buckets[key] = bucket
            if len(self._buckets) > MAX_BUCKETS:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            rate = limit.per_minute / 60.0
            bucket.tokens = min(float(limit.burst), bucket.tokens + (now - bucket.at) * rate)
            bucket.at = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            self.answered[kind] += 1
            return Decision(True)
        self.refused[kind] += 1
        wait = (1.0 - bucket.tokens) * 60.0 / limit.per_minute
        return Decision(False, max(1, math.ceil(wait)))


def network_of(source: str | None) -> str:
    """The network a source address is limited as: the address itself for IPv4, its /64 for
    IPv6 (one host's many privacy addresses)."""
    if not source:
        return "unknown"
    try:
        address = ipaddress.ip_address(source)
    except ValueError:
        return "unknown"
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is None:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    mapped = getattr(address, "ipv4_mapped", None)
    return str(mapped or address)
