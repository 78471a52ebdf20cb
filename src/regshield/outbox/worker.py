"""The outbox worker: runs queued side effects, retries with backoff, records each outcome.

Handlers must be idempotent: an effect may run again if the process dies between running it
and marking it done. A claimed row is leased (its `available_at` moves forward) so that another
worker does not take it while it runs, and carries the identity of the worker's process
when that process holds its life (`claimed_by`, store/life.py): the lease of a process that
has died is then released at once (`release_dead`) instead of being waited out; after a
crash or a `kill -9`, the next start runs what the dead process had claimed within seconds.

Items that ran are recorded as completed together, in one transaction (a write transaction
and its commit cost milliseconds; the hundreds of publications a restart finds queued cost
that much each when recorded one by one): once `SETTLE_EVERY_SECONDS` have passed since the
first of them ran, looked at as each item ends, and when the claimed batch ends. A crash
meanwhile runs them again, which idempotent handlers allow; a stop records them first. A
failed item is recorded at once, with its backoff.

A kind may also have a look ahead (`ahead`): called with the payloads of every item of that
kind in a claimed batch before they run, one by one, so that work they share is done once
(the publisher reads whether many zones have anything new in one go). It only prepares: an
item's handler still decides, and a look ahead that fails is logged and the items run as
they would have.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy import select, update

from regshield.eventlog.chain import EventDraft, append
from regshield.services import Services
from regshield.store.models import OutboxItem

Handler = Callable[[Services, dict[str, Any]], Awaitable[None]]
LookAhead = Callable[[Services, list[dict[str, Any]]], Awaitable[None]]
LEASE = timedelta(minutes=5)
RELEASE_EVERY_SECONDS = 60.0  # how often a running worker looks for leases of dead workers
MAX_ATTEMPTS = 12
MAX_BACKOFF = timedelta(hours=1)
SETTLE_EVERY_SECONDS = 0.1  # completed items wait about this long to be recorded together
log = structlog.get_logger("regshield.outbox")


def backoff(attempts: int) -> timedelta:
    return min(timedelta(seconds=2 ** attempts), MAX_BACKOFF)


class OutboxWorker:
    def __init__(self, services: Services, handlers: dict[str, Handler],
                 ahead: dict[str, LookAhead] | None = None) -> None:
        self.services = services
        self.handlers = handlers
        self.ahead = ahead or {}

    async def run_once(self, limit: int = 50) -> int:
        """Run what is due; returns how many items were attempted."""
        claimed = await self._claim(limit)
        for kind, look in self.ahead.items():
            payloads = [payload for _, item_kind, payload in claimed if item_kind == kind]
            if payloads:
                try:
                    await look(self.services, payloads)
                except Exception as exc:  # the items run as they would have
                    log.warning("outbox.look_ahead_failed", kind=kind,
                                error_type=type(exc).__name__)
        loop = asyncio.get_running_loop()
        completed: list[tuple[int, str]] = []  # ran, not yet recorded
        first_at = 0.0
        try:
            for item_id, kind, payload in claimed:
                error, detail = await self._execute(kind, payload)
                if error is not None:
                    await self._settle_failed(item_id, kind, error, detail)
                    continue
                if not completed:
                    first_at = loop.time()
                completed.append((item_id, kind))
                if loop.time() - first_at >= SETTLE_EVERY_SECONDS:
                    await self._settle_completed(completed)
                    completed = []
        finally:
            if completed:
                await self._settle_completed(completed)
        return len(claimed)

    async def run_forever(self, idle_seconds: float = 1.0) -> None:
        loop = asyncio.get_running_loop()
        release_at = loop.time()
        while True:
            try:
                if loop.time() >= release_at:
                    await self.release_dead()
                    release_at = loop.time() + RELEASE_EVERY_SECONDS
                if await self.run_once() == 0:
                    await asyncio.sleep(idle_seconds)
            except asyncio.CancelledError:
                raise
            except Exception:  # a broken database must not end the worker for good
                log.exception("outbox.cycle_failed")
                await asyncio.sleep(idle_seconds * 5)

    async def release_dead(self) -> int:
        """Make the rows leased by processes that have died due now; returns how many."""
        now = self.services.clock.now()
        async with self.services.store.read() as session:
            owners = [owner for owner in (await session.execute(
                select(OutboxItem.claimed_by).distinct()
                .where(OutboxItem.completed_at.is_(None), OutboxItem.failed.is_(False),
                       OutboxItem.available_at > now, OutboxItem.claimed_by.is_not(None))
            )).scalars() if owner]
        released = 0
        for owner in owners:
            if not await self.services.life.gone(owner):
                continue
            async with self.services.store.write() as session:
                rows = (await session.execute(
                    update(OutboxItem)
                    .where(OutboxItem.claimed_by == owner, OutboxItem.completed_at.is_(None),
                           OutboxItem.failed.is_(False))
                    .values(available_at=now, claimed_by=None)
                    .returning(OutboxItem.id))).scalars().all()
                if rows:
                    await append(session, [EventDraft(
                        tag="outbox:leases:released", actor="system:outbox",
                        channel="system", occurred_at=now, account=None,
                        summary={"items": sorted(rows)},
                    )])
            released += len(rows)
        if released:
            log.info("outbox.leases_released", items=released)
        return released

    async def _claim(self, limit: int) -> list[tuple[int, str, dict[str, Any]]]:
        now = self.services.clock.now()
        async with self.services.store.write() as session:
            query = (
                select(OutboxItem)
                .where(OutboxItem.completed_at.is_(None), OutboxItem.failed.is_(False),
                       OutboxItem.available_at <= now)
                .order_by(OutboxItem.id).limit(limit)
            )
            if not self.services.store.is_sqlite:
                query = query.with_for_update(skip_locked=True)
            rows = (await session.execute(query)).scalars().all()
            for row in rows:
                row.available_at, row.claimed_by = now + LEASE, self.services.life.identity
                row.attempts += 1
            return [(row.id, row.kind, dict(row.payload)) for row in rows]

    async def _execute(self, kind: str, payload: dict[str, Any]
                       ) -> tuple[str | None, str | None]:
        """Run one item's handler; returns its error (the exception's type) and the detail
        kept on the row, or (None, None)."""
        handler = self.handlers.get(kind)
        if handler is None:
            return "NoHandler", "NoHandler"
        try:
            await handler(self.services, payload)
        except Exception as exc:
            # The event names the exception type only: messages may quote personal data.
            return type(exc).__name__, f"{type(exc).__name__}: {exc}"[:500]
        return None, None

    async def _settle_completed(self, completed: list[tuple[int, str]]) -> None:
        """Record items that ran as completed, one event each, in one transaction."""
        now = self.services.clock.now()
        kinds = dict(completed)
        async with self.services.store.write() as session:
            rows = (await session.execute(
                select(OutboxItem).where(OutboxItem.id.in_(kinds)).order_by(OutboxItem.id)
            )).scalars().all()
            for row in rows:
                row.claimed_by, row.completed_at, row.last_error = None, now, None
            await append(session, [EventDraft(
                tag=f"outbox:{kinds[row.id].replace(':', '.')}:completed",
                actor="system:outbox", channel="system", occurred_at=now, account=None,
                summary={"item": row.id, "attempts": row.attempts},
            ) for row in rows])

    async def _settle_failed(self, item_id: int, kind: str, error: str,
                             detail: str | None) -> None:
        now = self.services.clock.now()
        async with self.services.store.write() as session:
            row = await session.get(OutboxItem, item_id)
            assert row is not None
            row.claimed_by = None
            if row.attempts >= MAX_ATTEMPTS:
                row.failed, row.last_error, outcome = True, detail, "failed"
            else:
                row.available_at, row.last_error = now + backoff(row.attempts), detail
                outcome = "retrying"
            await append(session, [EventDraft(
                tag=f"outbox:{kind.replace(':', '.')}:{outcome}", actor="system:outbox",
                channel="system", occurred_at=now, account=None,
                summary={"item": item_id, "attempts": row.attempts, "error": error},
            )])
        log.warning("outbox.item_failed", item=item_id, kind=kind, outcome=outcome)
