"""Domain and registry-operation lookups."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from regshield.store.models import Domain, DomainOperation

OPEN_STATES = ("pending", "running", "unknown")


async def live_domain(session: AsyncSession, name: str) -> Domain | None:
    """The domain row of `name` (A-label) that has not ended (deleted or transferred away)."""
    query = select(Domain).where(Domain.name == name, Domain.ended_at.is_(None))
    return (await session.execute(query)).scalar_one_or_none()


async def list_domains(session: AsyncSession, account_id: int | None, limit: int,
                       after_name: str = "") -> Sequence[Domain]:
    """Live domains by name; `account_id=None` means every account (staff)."""
    query = select(Domain).where(Domain.ended_at.is_(None), Domain.name > after_name)
    if account_id is not None:
        query = query.where(Domain.account_id == account_id)
    return (await session.execute(query.order_by(Domain.name).limit(limit))).scalars().all()


async def all_live_domains(session: AsyncSession, registry_link: str) -> Sequence[Domain]:
    query = select(Domain).where(Domain.ended_at.is_(None),
                                 Domain.registry_link == registry_link)
    return (await session.execute(query.order_by(Domain.name))).scalars().all()


async def open_operations(session: AsyncSession, domain_ids: Iterable[int]
                          ) -> Sequence[DomainOperation]:
    """Operations not settled yet (pending, running, unknown), oldest first."""
    ids = list(domain_ids)
    if not ids:
        return []
    query = select(DomainOperation).where(DomainOperation.domain_id.in_(ids),
                                          DomainOperation.state.in_(OPEN_STATES))
    return (await session.execute(query.order_by(DomainOperation.id))).scalars().all()


async def operation_by_public_id(session: AsyncSession, public_id: str
                                 ) -> DomainOperation | None:
    query = select(DomainOperation).where(DomainOperation.public_id == public_id)
    return (await session.execute(query)).scalar_one_or_none()


async def operations_of(session: AsyncSession, domain_id: int, limit: int = 20
                        ) -> Sequence[DomainOperation]:
    query = select(DomainOperation).where(DomainOperation.domain_id == domain_id)
    return (await session.execute(query.order_by(DomainOperation.id.desc()).limit(limit))
            ).scalars().all()


async def domains_using_contact(session: AsyncSession, contact_id: int) -> Sequence[Domain]:
    """Live domains (not ended, not an inbound transfer still pending: the registry's
    registrant holds those) whose registrant or tech contact is `contact_id`, by name."""
    query = select(Domain).where(
        Domain.ended_at.is_(None), Domain.state != "pending_transfer_in",
        (Domain.registrant_id == contact_id) | (Domain.tech_id == contact_id))
    return (await session.execute(query.order_by(Domain.name))).scalars().all()
