"""Registrar and account lookups."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from regshield.store.models import Account, Registrar


async def registrar(session: AsyncSession) -> Registrar | None:
    return await session.get(Registrar, 1)


async def account_by_name(session: AsyncSession, name: str) -> Account | None:
    return (await session.execute(select(Account).where(Account.name == name))).scalar_one_or_none()


async def account_by_public_id(session: AsyncSession, public_id: str) -> Account | None:
    return (
        await session.execute(select(Account).where(Account.public_id == public_id))
    ).scalar_one_or_none()


async def account_by_reference(session: AsyncSession, reference: str) -> Account | None:
    """An account named by its public id (`acc_...`) or by its name."""
    if reference.startswith("acc_"):
        found = await account_by_public_id(session, reference)
        if found:
            return found
    return await account_by_name(session, reference)


async def list_accounts(session: AsyncSession, limit: int, offset: int) -> Sequence[Account]:
    query = select(Account).order_by(Account.id).limit(limit).offset(offset)
    return (await session.execute(query)).scalars().all()


async def public_ids(session: AsyncSession, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = await session.execute(select(Account.id, Account.public_id).where(Account.id.in_(ids)))
    return {row.id: row.public_id for row in rows}
