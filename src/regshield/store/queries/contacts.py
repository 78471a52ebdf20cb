"""Contact lookups (sealed rows; opening them is the caller's business)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from regshield.store.models import Account, Contact, DataKey


async def contact_by_handle(session: AsyncSession, handle: str, *,
                            include_deleted: bool = False) -> Contact | None:
    query = select(Contact).where(Contact.handle == handle)
    if not include_deleted:
        query = query.where(Contact.deleted_at.is_(None))
    return (await session.execute(query)).scalar_one_or_none()


# A live contact with what opening it takes (its account's public id, its wrapped data key),
# in one statement; read with `Store.lookup`, outside any transaction (one statement reads one
# consistent snapshot, a key rotation rewraps a key in place).
CONTACT_TO_OPEN = (
    select(Contact.handle, Contact.account_id, Contact.data_sealed, Contact.created_at,
           Contact.updated_at, Account.public_id.label("account_public_id"),
           DataKey.master_key_id, DataKey.wrapped)
    .join(Account, Account.id == Contact.account_id)
    .join(DataKey, DataKey.id == Contact.data_key_id)
    .where(Contact.handle == bindparam("handle"), Contact.deleted_at.is_(None))
)


async def list_contacts(session: AsyncSession, account_id: int | None, limit: int,
                        after_id: int = 0) -> Sequence[Contact]:
    """Live contacts, oldest first; `account_id=None` means every account (staff)."""
    query = select(Contact).where(Contact.deleted_at.is_(None), Contact.id > after_id)
    if account_id is not None:
        query = query.where(Contact.account_id == account_id)
    return (await session.execute(query.order_by(Contact.id).limit(limit))).scalars().all()


async def count_contacts(session: AsyncSession, account_id: int | None) -> int:
    query = select(func.count()).select_from(Contact).where(Contact.deleted_at.is_(None))
    if account_id is not None:
        query = query.where(Contact.account_id == account_id)
    return int((await session.execute(query)).scalar_one())
