"""The notification ledger (WDRP and ERRP notices) and the domains that may be due one."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, exists, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from regshield.store.models import Domain, NotificationLedger, OutboxItem


async def notice_candidates(session: AsyncSession, *, expiry_ranges: dict[str, tuple[datetime,
                            datetime]], reminder_kind: str, reminder_since: datetime,
                            after_id: int, limit: int) -> Sequence[Domain]:
    """Active domains that may be due a notice, by id after `after_id`: an expiry inside one of
    `expiry_ranges` (kind -> (after, up to)) with no notice of that kind about that expiry yet,
    or a registration at least `reminder_since` old with no reminder about an anniversary
    after `reminder_since`. Range filters on indexed columns: the rule decides the rest."""
    ledger = NotificationLedger

    def no_notice(kind: str, *about: Any) -> Any:
        return ~exists().where(ledger.domain_id == Domain.id, ledger.kind == kind, *about)

    expiring = [and_(Domain.expires_at > after, Domain.expires_at <= up_to,
                     no_notice(kind, ledger.about == Domain.expires_at))
                for kind, (after, up_to) in expiry_ranges.items()]
    reminded = and_(Domain.created_at <= reminder_since,
                    no_notice(reminder_kind, ledger.about > reminder_since))
    query = (select(Domain)
             .where(Domain.ended_at.is_(None), Domain.state == "active", Domain.id > after_id,
                    or_(*expiring, reminded))
             .order_by(Domain.id).limit(limit))
    return (await session.execute(query)).scalars().all()


async def notices_sent(session: AsyncSession, domain_ids: Iterable[int]
                       ) -> dict[int, set[tuple[str, str]]]:
    """(kind, cycle) of every notice recorded for each domain."""
    ids = list(domain_ids)
    sent: dict[int, set[tuple[str, str]]] = {domain_id: set() for domain_id in ids}
    if ids:
        rows = await session.execute(
            select(NotificationLedger.domain_id, NotificationLedger.kind, NotificationLedger.cycle)
            .where(NotificationLedger.domain_id.in_(ids)))
        for domain_id, kind, cycle in rows:
            sent[domain_id].add((kind, cycle))
    return sent


async def insert_notice(session: AsyncSession, values: dict[str, Any]) -> int | None:
    """Add a ledger row; None when the (domain, kind, cycle) is already there, also when a
    concurrent transaction added it first (PostgreSQL waits for that one's outcome)."""
    insert = sqlite.insert if session.get_bind().dialect.name == "sqlite" else postgresql.insert
    statement = (insert(NotificationLedger).values(**values)
                 .on_conflict_do_nothing(index_elements=["domain_id", "kind", "cycle"])
                 .returning(NotificationLedger.id))
    return (await session.execute(statement)).scalar_one_or_none()


async def notices_of_domain(session: AsyncSession, domain_id: int, limit: int
                            ) -> Sequence[tuple[NotificationLedger, OutboxItem | None]]:
    """The domain's notices, newest first, each with its outbox row (gone once purged)."""
    query = (select(NotificationLedger, OutboxItem)
             .outerjoin(OutboxItem, OutboxItem.dedupe_key == NotificationLedger.outbox_key)
             .where(NotificationLedger.domain_id == domain_id)
             .order_by(NotificationLedger.queued_at.desc(), NotificationLedger.id.desc())
             .limit(limit))
    return [(row[0], row[1]) for row in (await session.execute(query)).all()]
