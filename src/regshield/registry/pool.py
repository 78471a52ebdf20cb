"""A pool of EPP sessions with one registry: what the rest of regshield sends commands through.

The pool holds `size` slots, each with at most one logged-in `EppSession`. Callers queue for a
free slot (first come, first served), so at most `size` commands are in flight and the rest
wait their turn. A slot whose session is missing or no longer usable gets a new one before the
command is sent: connection attempts back off exponentially, with jitter, up to a bound.

What happens to a command:
- it is answered: the response is returned whatever its result code (the caller maps codes
  >= 2000); after 2500, 2501 or 2502 the registry closes the session and the slot reconnects
  for the next command;
- no session can be opened: `RegistryUnavailable`, and the command was not sent;
- the connection breaks while it is in flight: `RegistryConnectionLost`. It is NOT retried:
  a non-idempotent command (create, renew, transfer) may or may not have been executed; the
  outbox and drift detection decide.

A refused login is not retried either: each try with the same credentials counts towards the
registry's lockout. The pool raises the same `RegistryLoginRefused` to every later caller
until it is rebuilt with other credentials.

When `idle_interval` is set, a background task sends `<hello/>` on every session idle for
longer than that, so that the registry does not close it as idle.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import secrets
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Generic, TypeVar

import structlog

from regshield.registry.client import (
    EppSession,
    RegistryEndpoint,
    RegistryError,
    RegistryLoginRefused,
    RegistryUnavailable,
)
from regshield.registry.commands import Command, Extension
from regshield.registry.responses import EppResponse
from regshield.tasks import cancel_and_wait

DEFAULT_SIZE = 2
DEFAULT_IDLE_INTERVAL = 300.0  # well below the 10 to 30 minutes registries allow idle

log = structlog.get_logger("regshield.registry")
_jitter = secrets.SystemRandom()


@dataclass(frozen=True)
class Backoff:
    """Delays between connection attempts: `initial` doubling up to `maximum` seconds, each
    drawn between half and all of that (so that pools restarted together do not reconnect in
    step), for at most `attempts` attempts per command."""

    initial: float = 0.5
    maximum: float = 30.0
    attempts: int = 5

    def __post_init__(self) -> None:
        if not (0 < self.initial <= self.maximum and self.attempts >= 1):
            raise ValueError("Backoff needs 0 < initial <= maximum and at least one attempt")

    def delay(self, failures: int) -> float:
        """The wait after `failures` consecutive failed attempts (failures >= 1)."""
        ceiling = min(self.maximum, self.initial * 2.0 ** min(failures - 1, 32))
        return ceiling / 2 + _jitter.uniform(0, ceiling / 2)


class _Slot:
    def __init__(self, number: int) -> None:
        self.number = number
        self.session: EppSession | None = None


T = TypeVar("T")


class FairQueue(Generic[T]):
    """Free slots handed out strictly first come, first served.

    asyncio.Queue is not fair here: a caller that puts a slot back and asks again at once takes
    it before the waiter that was woken can run, and that waiter goes to the back of the line
    (measured: 4 of 16 callers got every slot for a whole run). Here a returned slot goes
    straight to the longest waiting caller.
    """

    def __init__(self) -> None:
        self._items: collections.deque[T] = collections.deque()
        self._waiters: collections.deque[asyncio.Future[T]] = collections.deque()

    def qsize(self) -> int:
        return len(self._items)

    def put_nowait(self, item: T) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(item)
                return
        self._items.append(item)

    def get_nowait(self) -> T:
        if not self._items:
            raise LookupError("no free item")
        return self._items.popleft()

    async def get(self) -> T:
        if self._items and not self._waiters:
            return self._items.popleft()
        waiter: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.put_nowait(waiter.result())  # handed over as we were cancelled: pass on
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            raise


class EppPool:
    """`size` sessions with one registry. Use `async with EppPool(endpoint) as pool` (or
    `await pool.start()` and `await pool.close()`), then `await pool.execute(command)` or
    `async with pool.session() as session` for several commands on one session."""

    def __init__(self, endpoint: RegistryEndpoint, *, size: int = DEFAULT_SIZE,
                 idle_interval: float | None = DEFAULT_IDLE_INTERVAL,
                 backoff: Backoff | None = None) -> None:
        if size < 1:
            raise ValueError("a pool needs at least one session")
        if idle_interval is not None and idle_interval <= 0:
            raise ValueError("idle_interval must be positive (or None for no keepalive)")
        self.endpoint = endpoint
        self.size = size
        self.idle_interval = idle_interval
        self.backoff = backoff or Backoff()
        self._slots = [_Slot(number) for number in range(size)]
        self._free: FairQueue[_Slot] = FairQueue()
        for slot in self._slots:
            self._free.put_nowait(slot)
        self._refused: RegistryLoginRefused | None = None
        self._closed = False
        self._keepalive: asyncio.Task[None] | None = None

    async def __aenter__(self) -> EppPool:
        await self.start()
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        traceback: TracebackType | None) -> None:
        await self.close()

    async def start(self) -> None:
        """Open every session now, so that a wrong password or an unreachable registry shows
        at start. Raises as `execute` does (and closes what it opened)."""
        try:
            # One login first: a wrong password then costs one failed attempt, not `size`.
            await self._fill(self._slots[0])
            await asyncio.gather(*(self._fill(slot) for slot in self._slots[1:]))
        except BaseException:
            await self.close()
            raise
        if self.idle_interval is not None and self._keepalive is None:
            self._keepalive = asyncio.create_task(self._keep_alive(self.idle_interval),
                                                  name=f"epp-keepalive-{self.endpoint.host}")

    async def close(self) -> None:
        """Stop the keepalive, wait for commands in flight, log every session out."""
        if self._closed:
            return
        self._closed = True
        if self._keepalive is not None:
            await cancel_and_wait([self._keepalive])
        for _ in self._slots:
            slot = await self._free.get()  # waits for the command in flight on it
            if slot.session is not None:
                await slot.session.logout()
                slot.session = None
        for slot in self._slots:  # back, so that later callers are told the pool is closed
            self._free.put_nowait(slot)
        log.info("registry:pool:closed", client_id=self.endpoint.client_id)

    @property
    def connected(self) -> int:
        """How many slots hold a usable session right now."""
        return sum(1 for slot in self._slots
                   if slot.session is not None and slot.session.usable)

    async def execute(self, command: Command, *, extensions: Sequence[Extension] = (),
                      cl_trid: str | None = None) -> EppResponse:
        """Send one command over a free session and return its response.

        Raises RegistryUnavailable (not sent), RegistryLoginRefused (not sent),
        RegistryConnectionLost and RegistryProtocolError (sent; outcome unknown: not retried,
        see the module docstring), CodecError (an invalid command; not sent)."""
        async with self.session() as session:
            return await session.execute(command, extensions=extensions, cl_trid=cl_trid)

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[EppSession]:
        """A logged-in session, for this caller alone until the block ends. A session that
        broke inside the block is dropped, and its slot reconnects for the next caller."""
        slot = await self._free.get()
        try:
            if self._refused is not None:
                raise RegistryLoginRefused(self._refused.code, self._refused.detail)
            if self._closed:
                raise RegistryUnavailable("the registry pool is closed")
            session = await self._fill(slot)
            yield session
        finally:
            if slot.session is not None and not slot.session.usable:
                await self._drop(slot)
            self._free.put_nowait(slot)

    async def _fill(self, slot: _Slot) -> EppSession:
        """The slot's session, opened (again) if it has none that can be used."""
        if slot.session is not None:
            if slot.session.usable:
                return slot.session
            await self._drop(slot)
        failures = 0
        while True:
            if self._refused is not None:
                raise RegistryLoginRefused(self._refused.code, self._refused.detail)
            try:
                slot.session = await EppSession.open(self.endpoint)
                return slot.session
            except RegistryLoginRefused as refused:
                self._refused = refused
                raise
            except RegistryUnavailable as exc:
                failures += 1
                if failures >= self.backoff.attempts:
                    raise RegistryUnavailable(
                        f"{self.endpoint.host}:{self.endpoint.port} unreachable after "
                        f"{failures} attempts: {exc.detail}") from exc
                delay = self.backoff.delay(failures)
                log.info("registry:session:reconnecting", client_id=self.endpoint.client_id,
                         slot=slot.number, failures=failures, delay=round(delay, 3))
                await asyncio.sleep(delay)

    async def _drop(self, slot: _Slot) -> None:
        if slot.session is not None:
            log.info("registry:session:dropped", session=slot.session.label)
            await slot.session.close()
            slot.session = None

    async def _keep_alive(self, interval: float) -> None:
        # Only free slots are visited: a slot in use is busy, hence not idle.
        while True:
            await asyncio.sleep(interval / 4)
            for _ in range(self._free.qsize()):
                try:
                    slot = self._free.get_nowait()
                except LookupError:
                    break
                try:
                    session = slot.session
                    if session is None:
                        continue
                    if not session.usable:
                        await self._drop(slot)
                    elif session.idle_for() >= interval:
                        try:
                            await session.hello()
                        except RegistryError as exc:
                            log.info("registry:keepalive:failed", session=session.label,
                                     error_type=type(exc).__name__)
                            await self._drop(slot)
                finally:
                    self._free.put_nowait(slot)
