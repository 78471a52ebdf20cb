"""Hosted zones: lookups shared by the zone flows and the publisher."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from regshield.store.models import Zone


async def live_zone(session: AsyncSession, name: str) -> Zone | None:
    """The hosted zone called `name` (absolute, lower case), unless deleted."""
    zone: Zone | None = (await session.execute(select(Zone).where(
        Zone.name == name, Zone.deleted_at.is_(None)))).scalar_one_or_none()
    return zone
