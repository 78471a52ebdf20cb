"""Response rate limiting (RRL) for UDP answers, so the server cannot be used as an amplifier.

Responses are counted per client prefix (IPv4 /24, IPv6 /56, as BIND does) in a token bucket
refilled at `responses_per_second` and holding at most `burst` tokens. A response that finds the
bucket empty is limited: every `slip`-th limited response goes out truncated (TC=1, no answer),
so that a real client behind a spoofed flood retries over TCP, which cannot be spoofed; the
others are dropped. `slip=0` drops them all, `slip=1` truncates them all. Addresses on the
allow-list (the secondaries that transfer from us, Knot #943) are never limited.

Defaults follow NSD (`nsd:rrl.h`): 200 responses per second per prefix, slip 2.

The buckets live in C (`regshield.dns._udp.Limiter`, a table of fixed size) where the
extension was built, so that the server's C loop decides a datagram's fate without Python;
this module's dict of buckets is the same rules where it was not (or with
`native_buckets=False`).
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum

from regshield.dns.udp import native

DEFAULT_RESPONSES_PER_SECOND = 200
DEFAULT_SLIP = 2
IPV4_PREFIX = 24
IPV6_PREFIX = 56
# Buckets kept before idle ones are forgotten; an idle bucket is a full one, so forgetting it
# changes nothing.
DEFAULT_TABLE_SIZE = 100_000


class Verdict(Enum):
    SEND = "send"
    SLIP = "slip"  # send a truncated response instead
    DROP = "drop"


@dataclass
class RateLimitCounters:
    """What the limiter decided since it started, for metrics."""

    answered: int = 0
    dropped: int = 0
    slipped: int = 0


@dataclass
class _Bucket:
    tokens: float
    updated: float
    limited: int = 0


class RateLimiter:
    """Token buckets per client prefix; `check(address)` decides the fate of one response."""

    def __init__(
        self,
        responses_per_second: float = DEFAULT_RESPONSES_PER_SECOND,
        *,
        burst: float | None = None,
        slip: int = DEFAULT_SLIP,
        allow: Iterable[str] = (),
        table_size: int = DEFAULT_TABLE_SIZE,
        clock: Callable[[], float] = time.monotonic,
        native_buckets: bool = True,
    ) -> None:
        if responses_per_second <= 0:
            raise ValueError("responses_per_second must be positive")
        if slip < 0:
            raise ValueError("slip must be 0 (drop all) or more")
        self.responses_per_second = float(responses_per_second)
        self.burst = float(burst if burst is not None else responses_per_second)
        self.slip = slip
        self.allowed = tuple(ipaddress.ip_network(entry, strict=False) for entry in allow)
        self._counters = RateLimitCounters()
        self._table_size = table_size
        self._clock = clock
        self._buckets: dict[str | bytes, _Bucket] = {}
        self._allowed_cache: dict[str, bool] = {}
        self.native = (
            native.Limiter(self.responses_per_second, self.burst, slip, table_size)
            if native is not None and native_buckets else None
        )
        if self.native is not None:
            self.native.allow_only(_pairs(self.allowed))

    @property
    def counters(self) -> RateLimitCounters:
        if self.native is not None:
            return RateLimitCounters(*self.native.counters())
        return self._counters

    @property
    def monotonic(self) -> bool:
        """Whether the limiter's clock is the system's monotonic clock (the C loop's)."""
        return self._clock is time.monotonic

    def check(self, address: str) -> Verdict:
        """Count one UDP response to `address` and say whether to send, slip or drop it."""
        if self.native is not None:
            return _VERDICTS[self.native.check(address, self._clock())]
        if self.allowed and self._is_allowed(address):
            self._counters.answered += 1
            return Verdict.SEND
        key = _prefix(address)
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._table_size:
                self._forget_idle(now)
            bucket = self._buckets[key] = _Bucket(self.burst, now)
        else:
            elapsed = now - bucket.updated
            bucket.tokens = min(self.burst, bucket.tokens + elapsed * self.responses_per_second)
            bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            self._counters.answered += 1
            return Verdict.SEND
        bucket.limited += 1
        if self.slip and bucket.limited % self.slip == 0:
            self._counters.slipped += 1
            return Verdict.SLIP
        self._counters.dropped += 1
        return Verdict.DROP

    def allow_only(self, entries: Iterable[str]) -> None:
        """Replace the allow-list (addresses or networks), as the set of secondaries changes."""
        self.allowed = tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)
        self._allowed_cache = {}
        if self.native is not None:
            self.native.allow_only(_pairs(self.allowed))

    def _is_allowed(self, address: str) -> bool:
        allowed = self._allowed_cache.get(address)
        if allowed is None:
            parsed = ipaddress.ip_address(address.split("%", 1)[0])
            allowed = any(parsed in network for network in self.allowed)
            if len(self._allowed_cache) >= self._table_size:
                self._allowed_cache.clear()
            self._allowed_cache[address] = allowed
        return allowed

    def _forget_idle(self, now: float) -> None:
        refill_time = self.burst / self.responses_per_second
        self._buckets = {
            key: bucket for key, bucket in self._buckets.items()
            if now - bucket.updated < refill_time
        }
        if len(self._buckets) >= self._table_size:
            self._buckets.clear()  # a flood from more prefixes than the table holds


_VERDICTS = (Verdict.SEND, Verdict.SLIP, Verdict.DROP)  # by the C limiter's number


def _pairs(networks: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network],
           ) -> list[tuple[str, int]]:
    return [(str(network.network_address), network.prefixlen) for network in networks]


def _prefix(address: str) -> str | bytes:
    if ":" not in address:
        return address.rpartition(".")[0]  # the /24
    packed = ipaddress.IPv6Address(address.split("%", 1)[0]).packed
    if packed[:12] == b"\0" * 10 + b"\xff\xff":
        return ".".join(str(octet) for octet in packed[12:15])  # an IPv4-mapped address
    return packed[: IPV6_PREFIX // 8]
