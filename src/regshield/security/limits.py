"""Rate limits that hold across processes and instances: RDAP, WHOIS, the contact form and the
API.

Each limit is a bucket per requester: a source network (an IPv4 /32 or IPv6 /64: one host, or
one customer's LAN), or, for authenticated requesters, their user or token, so a disclosure
requester or a staff search is not throttled with its network. The algorithm is GCRA (the
generic cell rate algorithm, a token bucket kept as one number: the theoretical arrival time
of the next request): `per_minute` on average, `burst` at once. A refusal says when to come
back (`retry_after`, whole seconds, for Retry-After).

Where the buckets live (`[limits] store`):
- `redis` (the default when `[limits] redis_url` or REGSHIELD_REDIS_URL is set): one Lua
  script per request, atomic in Redis, keys that expire when the bucket is full again;
- `database` (the default otherwise): the `rate_buckets` table, one atomic
  `INSERT ... ON CONFLICT DO UPDATE ... WHERE ... RETURNING` per request (SQLite and
  PostgreSQL), idle rows deleted now and then;
- `process`: the buckets of this process only (one process, or tests).

A shared store is asked for a lease of several requests at once (`lease_size`: a tenth of
the burst, at most `MAX_LEASE`; doubled, up to a tenth of the burst and `MAX_GROWN_LEASE`,
for a requester that spends leases within a quarter second), which the process then spends
on its own until they run out or their time passes, so a busy requester costs a few round
trips a second, not one a request. One request per bucket asks the store at a time; the
others wait for its lease (a crowd of one source's requests is one trip, and no lease is
taken only to be lost). The next lease is asked for in the background when a quarter of
the current one is left, so a steady requester's requests are decided without waiting
(`take_now`, which the HTTP listener uses to answer from memory). Leased requests are
taken from the shared bucket when leased: the fleet never allows more than the limit; a
requester spread over several processes may be refused up to a lease and a quarter early.

Every instance then counts against the same buckets. Once the shared store refuses a bucket,
the process refuses it on its own until the moment the store said it would allow one again (no
process can bring that moment closer), so a flood over its limit costs no round trip. Keys
are keyed hashes (the key ring's index key, purpose `rate-limit`) of the service and the
requester, never an address or a token. When the shared store does not answer within
`[limits] store_timeout_ms`, or fails, the request is decided by this process's own buckets
instead (never an error to the requester); the outage is logged once, counted (`fallbacks`,
published by /metrics) and the shared store is tried again after `RETRY_SHARED_SECONDS`.
During an outage each instance limits on its own, so the whole fleet allows at most its number
of instances times the rate.

Counters of what was answered and refused per service and requester kind are kept for
metrics.
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import structlog
from sqlalchemy import case, delete, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from regshield.clock import Clock
from regshield.config import Settings
from regshield.security.keyring import KeyRing
from regshield.store.engine import Store
from regshield.store.models import RateBucket

MAX_BUCKETS = 100_000  # the least recently used buckets of a process are forgotten past this
MAX_KEYS = 10_000  # requesters whose bucket keys a process keeps worked out (oldest out first)
MAX_LEASE = 100  # requests a first lease of a shared bucket holds, at most
MAX_GROWN_LEASE = 10_000  # and a lease grown for a busy requester (see `Buckets._next_size`)
GROW_SECONDS = 0.25  # a lease three quarters spent sooner than this doubles the next one
LEASE_SHARE = 10  # a lease is at most this fraction of the burst
LEASE_SECONDS = 1.0  # a lease's requests may be spent this long at least
RENEW_AT = 4  # the next lease is asked for when this fraction of one is left
RETRY_SHARED_SECONDS = 5.0  # after a failure, the shared store is left alone this long
PRUNE_SECONDS = 300.0  # how often the database store deletes idle rows
REDIS_PREFIX = "regshield:rate:"
log = structlog.get_logger("regshield.limits")


@dataclass(frozen=True)
class Limit:
    """`per_minute` requests a minute on average, with bursts of up to `burst`."""

    per_minute: int
    burst: int

    def __post_init__(self) -> None:
        if self.per_minute < 1 or self.burst < 1:
            raise ValueError("a limit needs at least one request a minute and a burst of one")

    @property
    def interval(self) -> float:
        """Seconds between two requests at the average rate."""
        return 60.0 / self.per_minute

    @property
    def tolerance(self) -> float:
        """How far ahead of now the bucket's arrival time may run: the burst."""
        return self.interval * self.burst


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after: int = 0  # seconds until one request is allowed again (refusals only)
    wait: float = 0.0  # the same, exactly


def refusal(wait: float) -> Decision:
    return Decision(False, max(1, math.ceil(wait - 1e-6)), wait)


def lease_size(limit: Limit) -> int:
    """How many requests to take from a shared bucket at once."""
    return max(1, min(limit.burst // LEASE_SHARE, MAX_LEASE))


def gcra(tat: float | None, now: float, limit: Limit,
         count: int = 1) -> tuple[Decision, float | None]:
    """`count` requests at once against a bucket whose arrival time is `tat` (None: a new
    bucket): the decision, and the new arrival time to keep (None: unchanged)."""
    start = now if tat is None or tat < now else tat
    new_tat = start + limit.interval * count
    if new_tat - now > limit.tolerance + 1e-9:
        return refusal(new_tat - now - limit.tolerance), None
    return Decision(True), new_tat


class BucketStore(Protocol):
    """Where buckets are kept; `take` is atomic for every process that shares the store."""

    name: str

    async def take(self, key: str, limit: Limit, now: float, count: int = 1) -> Decision:
        """Take `count` requests at once from the bucket `key`, all or none."""
        ...

    async def close(self) -> None: ...


@dataclass
class ProcessBuckets:
    """The buckets of this process (least recently used forgotten past `MAX_BUCKETS`)."""

    name: str = "process"
    _tats: OrderedDict[str, float] = field(default_factory=OrderedDict)

    def take_now(self, key: str, limit: Limit, now: float, count: int = 1) -> Decision:
        decision, new_tat = gcra(self._tats.get(key), now, limit, count)
        if new_tat is not None:
            self._tats[key] = new_tat
            self._tats.move_to_end(key)
            if len(self._tats) > MAX_BUCKETS:
                self._tats.popitem(last=False)
        return decision

    async def take(self, key: str, limit: Limit, now: float, count: int = 1) -> Decision:
        return self.take_now(key, limit, now, count)

    async def close(self) -> None:
        self._tats.clear()


# KEYS[1] the bucket; ARGV: now, interval, tolerance (seconds), count. Returns {allowed, wait};
# the wait is text, as Redis would cut a Lua number to an integer.
GCRA_SCRIPT = """
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local tolerance = tonumber(ARGV[3])
local count = tonumber(ARGV[4])
local tat = tonumber(redis.call('GET', KEYS[1]))
if not tat or tat < now then tat = now end
local new_tat = tat + interval * count
if new_tat - now > tolerance + 1e-9 then
  return {0, tostring(new_tat - now - tolerance)}
end
redis.call('SET', KEYS[1], string.format('%.6f', new_tat), 'PX',
           math.ceil((new_tat - now) * 1000) + 1)
return {1, '0'}
"""


class RedisBuckets:
    """Buckets in Redis, one GCRA script run per request."""

    name = "redis"

    def __init__(self, url: str, timeout: float) -> None:
        # Imported here: Redis's client takes a tenth of a second to import, which every
        # start of `serve` and of each command paid when the limits were not kept in Redis.
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        # No retries: a check that fails is decided by the process at once (see Buckets).
        self.client = Redis.from_url(url, socket_timeout=timeout,
                                     socket_connect_timeout=timeout, retry_on_timeout=False,
                                     retry=Retry(NoBackoff(), 0))
        self.script = self.client.register_script(GCRA_SCRIPT)

    async def take(self, key: str, limit: Limit, now: float, count: int = 1) -> Decision:
        allowed, wait = await self.script(keys=[REDIS_PREFIX + key],
                                          args=[repr(now), repr(limit.interval),
                                                repr(limit.tolerance), count])
        return Decision(True) if int(allowed) else refusal(float(wait))

    async def close(self) -> None:
        await self.client.aclose()


class DatabaseBuckets:
    """Buckets in the `rate_buckets` table: one atomic upsert per request, which writes only
    when the request is allowed; a refusal reads the row to say how long to wait.

    On SQLite the upsert runs in the store's write transaction, which waits its turn with the
    process's other writers (first come, first served) instead of in SQLite's busy handler.
    On PostgreSQL it runs alone in autocommit on a small pool of its own, without waiting for
    the commit to reach the disk (`synchronous_commit off`): a crash may forget the last
    milliseconds of counting, which costs nothing worth an fsync per request."""

    name = "database"

    def __init__(self, store: Store) -> None:
        self.store = store
        self.insert = sqlite_insert if store.is_sqlite else postgresql_insert
        self._engine: AsyncEngine | None = None
        if not store.is_sqlite:
            self._engine = create_async_engine(
                store.url, pool_size=5, max_overflow=10, isolation_level="AUTOCOMMIT",
                connect_args={"server_settings": {"synchronous_commit": "off"}})
        self._pruned_at = time.monotonic()

    async def take(self, key: str, limit: Limit, now: float, count: int = 1) -> Decision:
        start = case((RateBucket.tat > now, RateBucket.tat), else_=now)
        cost = limit.interval * count
        upsert = (
            self.insert(RateBucket).values(key=key, tat=now + cost)
            .on_conflict_do_update(
                index_elements=[RateBucket.key], set_={"tat": start + cost},
                where=start + cost - now <= limit.tolerance + 1e-9)
            .returning(RateBucket.tat))
        read = select(RateBucket.tat).where(RateBucket.key == key)
        prune = None
        if time.monotonic() - self._pruned_at > PRUNE_SECONDS:
            self._pruned_at = time.monotonic()
            prune = delete(RateBucket).where(RateBucket.tat < now)
        tat = None
        if self._engine is None:
            async with self.store.write() as session:
                allowed = (await session.execute(upsert)).first() is not None
                if not allowed:
                    tat = (await session.execute(read)).scalar_one_or_none()
                if prune is not None:
                    await session.execute(prune)
        else:
            async with self._engine.connect() as connection:
                allowed = (await connection.execute(upsert)).first() is not None
                if not allowed:
                    tat = (await connection.execute(read)).scalar_one_or_none()
                if prune is not None:
                    await connection.execute(prune)
        if allowed:
            return Decision(True)
        decision, _ = gcra(tat, now, limit, count)
        return decision if not decision.allowed else refusal(limit.interval)

    async def close(self) -> None:
        if self._engine is not None:
            await self._engine.dispose()


@dataclass
class Buckets:
    """The buckets every limiter of a process takes from: the shared store, and this process's
    own buckets when the shared store fails (see the module docstring)."""

    shared: BucketStore | None
    hash_key: Callable[[str], str] = field(default=lambda key: key)
    timeout: float = 0.5
    local: ProcessBuckets = field(default_factory=ProcessBuckets)
    fallbacks: int = 0  # requests decided here because the shared store failed
    shared_calls: int = 0  # requests the shared store decided
    _shared_down_until: float = 0.0
    _down: bool = False
    # Buckets the shared store refused, with the moment it will allow one again. No process
    # can make that moment come sooner (others only push it later), so until then a refusal
    # is decided here: a flood over its limit costs a dictionary lookup, not a round trip.
    _refused_until: OrderedDict[str, float] = field(default_factory=OrderedDict)
    # Requests taken from the shared store and not spent yet: bucket -> (left, until when,
    # the lease's size, when it was granted).
    _leases: OrderedDict[str, tuple[int, float, int, float]] = field(
        default_factory=OrderedDict)
    # Store calls still running after their caller stopped waiting (see `_shared_take`).
    _pending: set[asyncio.Future[Decision]] = field(default_factory=set)
    # Buckets the store is being asked about (one trip per bucket at a time), and the trips
    # that renew a lease ahead of its end.
    _asking: dict[str, asyncio.Future[None]] = field(default_factory=dict)
    _renewing: set[asyncio.Future[None]] = field(default_factory=set)
    _hashes: dict[str, str] = field(default_factory=dict)  # see `_hashed`

    @property
    def store_name(self) -> str:
        return self.shared.name if self.shared is not None else self.local.name

    def take_now(self, key: str, limit: Limit, now: float) -> Decision | None:
        """The decision when this process can take it without waiting (no shared store, the
        shared store down, a refusal already known, or a lease with requests left), else None:
        then `take` asks the shared store."""
        return self._take_here(self._hashed(key), limit, now)

    def _hashed(self, key: str) -> str:
        """`hash_key(key)`, kept for the most recent requesters: a keyed hash a request costs
        more than the rest of a decision from a lease."""
        hashed = self._hashes.get(key)
        if hashed is None:
            hashed = self._hashes[key] = self.hash_key(key)
            if len(self._hashes) > MAX_KEYS:
                del self._hashes[next(iter(self._hashes))]
        return hashed

    def _take_here(self, hashed: str, limit: Limit, now: float) -> Decision | None:
        if self.shared is None:
            return self.local.take_now(hashed, limit, now)
        if self._down and time.monotonic() < self._shared_down_until:
            self.fallbacks += 1
            return self.local.take_now(hashed, limit, now)
        until = self._refused_until.get(hashed)
        if until is not None:
            if now < until:
                return refusal(until - now)
            del self._refused_until[hashed]
        lease = self._leases.pop(hashed, None)
        if lease is None:
            return None
        left, until, size, granted = lease
        if left <= 0 or now >= until:
            return None
        left -= 1
        if left:
            self._leases[hashed] = (left, until, size, granted)
        if left <= size // RENEW_AT and hashed not in self._asking:
            self._renew(hashed, limit, now, self._next_size(limit, size, now - granted))
        return Decision(True)

    @staticmethod
    def _next_size(limit: Limit, size: int, elapsed: float) -> int:
        """The size of the lease after one of `size` three quarters spent in `elapsed`
        seconds: twice as large for a requester that spends leases within `GROW_SECONDS`
        (up to a tenth of the burst and `MAX_GROWN_LEASE`), so that a busy requester's trips
        stay a few a second; else the first size again."""
        first = lease_size(limit)
        if elapsed >= GROW_SECONDS:
            return first
        return max(first, min(size * 2, limit.burst // LEASE_SHARE, MAX_GROWN_LEASE))

    async def take(self, key: str, limit: Limit, now: float) -> Decision:
        hashed = self._hashed(key)
        while True:
            decided = self._take_here(hashed, limit, now)
            if decided is not None:
                return decided
            asking = self._asking.get(hashed)
            if asking is None:
                break
            # One trip per bucket at a time: the others wait for its lease (or its refusal).
            await asyncio.wait({asking})
        asking = self._asking[hashed] = asyncio.get_running_loop().create_future()
        try:
            return await self._ask(hashed, limit, now)
        finally:
            del self._asking[hashed]
            asking.set_result(None)

    async def _ask(self, hashed: str, limit: Limit, now: float) -> Decision:
        """The shared store's decision for one request, taking a lease of more when it can."""
        assert self.shared is not None
        count = lease_size(limit)
        try:
            decision = await self._shared_take(hashed, limit, now, count)
            if not decision.allowed and count > 1:
                count = 1  # near the limit: one request may still fit
                decision = await self._shared_take(hashed, limit, now, 1)
        except Exception as error:  # any failure of the store: decide here, never fail
            self._store_failed(error)
            self.fallbacks += 1
            return self.local.take_now(hashed, limit, now)
        self._store_answered()
        if not decision.allowed:
            self._refused_until[hashed] = now + decision.wait
            if len(self._refused_until) > MAX_BUCKETS:
                self._refused_until.popitem(last=False)
        elif count > 1:
            self._lease(hashed, limit, now, count - 1, count)
        return decision

    def _lease(self, hashed: str, limit: Limit, now: float, count: int, size: int) -> None:
        """Keep `count` more requests (of a lease of `size`) of the bucket to spend here. A
        lease lasts as long as its requests would at the average rate, and at least
        LEASE_SECONDS: at a high rate a lease spent in under a millisecond would send nearly
        every request to the store."""
        left, until, _, _ = self._leases.pop(hashed, (0, now, size, now))
        self._leases[hashed] = (left + count,
                                max(until, now + max(LEASE_SECONDS, limit.interval * size)),
                                size, now)
        if len(self._leases) > MAX_BUCKETS:
            self._leases.popitem(last=False)

    def _renew(self, hashed: str, limit: Limit, now: float, count: int) -> None:
        """Ask for the next lease while this one still has requests left, so that a busy
        requester's requests are decided here without waiting for the store."""
        asking = self._asking[hashed] = asyncio.get_running_loop().create_future()

        async def renew() -> None:
            try:
                decision = await self._shared_take(hashed, limit, now, count)
            except Exception as error:
                self._store_failed(error)
                return
            finally:
                del self._asking[hashed]
                asking.set_result(None)
            self._store_answered()
            if decision.allowed:
                self._lease(hashed, limit, now, count, count)
            # A refused lease is no refusal of one request: the lease left is spent, then
            # `take` asks for one.

        task = asyncio.ensure_future(renew())
        self._renewing.add(task)
        task.add_done_callback(self._renewing.discard)

    def _store_failed(self, error: Exception) -> None:
        assert self.shared is not None
        self._shared_down_until = time.monotonic() + RETRY_SHARED_SECONDS
        if not self._down:
            self._down = True
            log.warning("limits.shared_store_unavailable", store=self.shared.name,
                        error_type=type(error).__name__)

    def _store_answered(self) -> None:
        if self._down:
            assert self.shared is not None
            self._down = False
            log.info("limits.shared_store_restored", store=self.shared.name)

    async def _shared_take(self, key: str, limit: Limit, now: float, count: int) -> Decision:
        """The shared store's decision within `timeout`. The store's work is shielded: a
        timeout stops the waiting, never a transaction half-way (a statement cancelled inside
        SQLite's write transaction could leave the write lock taken)."""
        assert self.shared is not None
        work = asyncio.ensure_future(self.shared.take(key, limit, now, count))
        self._pending.add(work)
        work.add_done_callback(self._settled)
        async with asyncio.timeout(self.timeout):
            decision = await asyncio.shield(work)
        self.shared_calls += 1
        return decision

    def _settled(self, work: asyncio.Future[Decision]) -> None:
        self._pending.discard(work)
        if not work.cancelled():
            work.exception()  # retrieved: a failure nobody waited for is not logged as lost

    async def close(self) -> None:
        if self._renewing:
            await asyncio.gather(*self._renewing, return_exceptions=True)
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
        if self.shared is not None:
            await self.shared.close()


@dataclass
class RateLimiter:
    """The limits of one service (`rdap`, `whois`, `contact`, `api`)."""

    service: str
    anonymous: Limit
    authenticated: Limit
    clock: Clock
    buckets: Buckets = field(default_factory=lambda: Buckets(None))
    answered: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)
    _networks: dict[str | None, str] = field(default_factory=dict)  # source -> its bucket key

    async def check(self, source: str | None, *, user: str | None = None) -> Decision:
        """Take one request from the bucket of `user` (when authenticated) or of `source`'s
        network. An unparseable or missing source shares one bucket with all such requests."""
        kind, limit, key = self._bucket(source, user)
        decision = await self.buckets.take(key, limit, self.clock.now().timestamp())
        (self.answered if decision.allowed else self.refused)[kind] += 1
        return decision

    def check_now(self, source: str | None) -> Decision | None:
        """`check` for an anonymous request when this process decides it without waiting (see
        `Buckets.take_now`), else None, and nothing is taken or counted."""
        kind, limit, key = self._bucket(source, None)
        decision = self.buckets.take_now(key, limit, self.clock.now().timestamp())
        if decision is not None:
            (self.answered if decision.allowed else self.refused)[kind] += 1
        return decision

    def _bucket(self, source: str | None, user: str | None) -> tuple[str, Limit, str]:
        if user:
            return "authenticated", self.authenticated, f"{self.service}:user:{user}"
        key = self._networks.get(source)
        if key is None:
            key = self._networks[source] = f"{self.service}:net:{network_of(source)}"
            if len(self._networks) > MAX_KEYS:
                del self._networks[next(iter(self._networks))]
        return "anonymous", self.anonymous, key


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


SERVICES = ("rdap", "whois", "contact", "api")


class Limits:
    """The rate limiters of one process, all taking from one `Buckets` (the configured shared
    store, `[limits] store`). Made on first use by `Services.limiter`."""

    def __init__(self, settings: Settings, store: Store, keyring: KeyRing, clock: Clock) -> None:
        limits = settings.limits
        shared: BucketStore | None
        if limits.store == "redis":
            assert limits.redis_url is not None
            shared = RedisBuckets(limits.redis_url, limits.store_timeout_ms / 1000)
        elif limits.store == "database":
            shared = DatabaseBuckets(store)
        else:
            shared = None
        self.buckets = Buckets(shared, lambda key: keyring.index("rate-limit", key),
                               timeout=limits.store_timeout_ms / 1000)
        rdds = settings.rdds
        rdds_limits = (Limit(rdds.per_minute, rdds.burst),
                       Limit(rdds.authenticated_per_minute,
                             max(rdds.burst, rdds.authenticated_per_minute // 2)))
        api = Limit(limits.api_per_minute, limits.api_burst)
        self.limiters = {
            service: RateLimiter(service, *(rdds_limits if service != "api" else (api, api)),
                                 clock, self.buckets)
            for service in SERVICES}
        # Connections a listener closed at once or early, by listener and reason (a source
        # over its cap, the oldest idle one dropped for a newcomer, a deadline passed).
        self.connections_refused: Counter[tuple[str, str]] = Counter()

    def limiter(self, service: str) -> RateLimiter:
        return self.limiters[service]

    async def close(self) -> None:
        await self.buckets.close()
