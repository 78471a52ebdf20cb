"""Which processes are alive, for leases.

A row a process claims for a while (an outbox item, a registry operation) carries a lease
time and the claiming process's identity. When that process dies (a crash, `kill -9`, a
host lost), the lease is released at once by the next process that looks, instead of being
waited out (minutes).

A long-running process (`serve`'s main process and its HTTP workers) holds its life
(`Life.hold`): a lock named after a random identity, for as long as it runs
(`Store.exclusive`: on PostgreSQL a session advisory lock on a connection of its own, which
the server lets go the moment the connection drops; on SQLite a file lock, which the kernel
lets go when the process ends), so with the process however it ended. A process that holds
no life (a CLI command) records no identity, so its leases run out as before; it can still
tell a live process's leases from a dead one's.

Should a live process lose its lock's connection (the database restarted), its leases look
like a dead process's and another process may run them again. The outbox's handlers are
idempotent and a registry operation claimed again is reconciled (asked, not sent twice)."""

from __future__ import annotations

import contextlib
import secrets

from regshield.store.engine import Store


class Life:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.identity: str | None = None  # while held
        self._held: contextlib.AsyncExitStack | None = None

    async def hold(self) -> None:
        """Be a live process from now until `release` (or the process's end)."""
        if self._held is not None:
            return
        for _ in range(3):
            identity = secrets.token_hex(8)
            held = contextlib.AsyncExitStack()
            if await held.enter_async_context(self.store.exclusive(_lock(identity))):
                self.identity, self._held = identity, held
                return
            # Never held by another (the identity is random), but on SQLite a lock file
            # being swept as it was opened is taken again (store/engine.py `_locked`).
            await held.aclose()
        raise RuntimeError("this process could not take a lock of its life")

    async def release(self) -> None:
        if self._held is not None:
            held, self._held, self.identity = self._held, None, None
            await held.aclose()

    async def gone(self, identity: str) -> bool:
        """Whether the process that recorded `identity` has ended."""
        if identity == self.identity:
            return False
        async with self.store.exclusive(_lock(identity)) as free:
            return free


def _lock(identity: str) -> str:
    return f"life:{identity}"
