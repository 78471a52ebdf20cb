"""Event log reads."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from regshield.store.models import Event


async def list_events(session: AsyncSession, *, account: str | None = None,
                      tag_prefix: str | None = None, since: datetime | None = None,
                      after_seq: int = 0, limit: int = 100) -> Sequence[Event]:
    query = select(Event).where(Event.seq > after_seq)
    if account is not None:
        query = query.where(Event.account == account)
    if tag_prefix:
        query = query.where(Event.tag.startswith(tag_prefix, autoescape=True))
    if since is not None:
        query = query.where(Event.occurred_at >= since)
    return (await session.execute(query.order_by(Event.seq).limit(limit))).scalars().all()
