"""Users, their credentials and login throttling counters."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from regshield.store.models import (
    Account,
    ApiToken,
    ConsoleSession,
    LoginSource,
    RecoveryCode,
    ThrottleCounter,
    User,
    UserInvitation,
)


async def user_by_email_index(session: AsyncSession, email_index: str, *,
                             lock: bool = False) -> User | None:
    """`lock`: lock the row for this transaction and read its latest committed values (a
    one-time code is checked and its counter kept under that lock, so it is accepted once)."""
    query = select(User).where(User.email_index == email_index)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    return (await session.execute(query)).scalar_one_or_none()


async def user_for_update(session: AsyncSession, user_id: int) -> User | None:
    """The user, locked for this transaction, with its latest committed values."""
    query = (select(User).where(User.id == user_id).with_for_update()
             .execution_options(populate_existing=True))
    return (await session.execute(query)).scalar_one_or_none()


async def user_by_public_id(session: AsyncSession, public_id: str) -> User | None:
    return (
        await session.execute(select(User).where(User.public_id == public_id))
    ).scalar_one_or_none()


async def users_of_account(session: AsyncSession, account_id: int | None) -> Sequence[User]:
    query = select(User).order_by(User.id)
    if account_id is not None:
        query = query.where(User.account_id == account_id)
    return (await session.execute(query)).scalars().all()


async def staff_count(session: AsyncSession) -> int:
    query = select(func.count()).select_from(User).where(User.kind == "staff")
    return int((await session.execute(query)).scalar_one())


# A token with its user and the user's account, in one statement (every API request); read
# with `Store.lookup`, outside any transaction: one statement reads one consistent snapshot.
TOKEN_HOLDER = (
    select(ApiToken.id.label("token_id"), ApiToken.kind.label("token_kind"), ApiToken.scopes,
           ApiToken.expires_at, ApiToken.revoked_at, ApiToken.last_used_at,
           ApiToken.second_factor_at, User.id, User.public_id, User.kind, User.role,
           User.account_id, User.disabled_at, Account.public_id.label("account_public_id"))
    .join(User, User.id == ApiToken.user_id)
    .outerjoin(Account, Account.id == User.account_id)
    .where(ApiToken.token_hash == bindparam("token_hash"))
)


async def touch_token(session: AsyncSession, token_id: int, now: datetime) -> None:
    """Bookkeeping, not a change of record: no event."""
    await session.execute(update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=now))


async def token_by_public_id(session: AsyncSession, public_id: str) -> ApiToken | None:
    query = select(ApiToken).where(ApiToken.public_id == public_id)
    return (await session.execute(query)).scalar_one_or_none()


async def tokens_of_user(session: AsyncSession, user_id: int) -> Sequence[ApiToken]:
    query = select(ApiToken).where(ApiToken.user_id == user_id).order_by(ApiToken.id)
    return (await session.execute(query)).scalars().all()


async def revoke_other_credentials(session: AsyncSession, user_id: int, now: datetime, *,
                                   keep_token: int | None, keep_session: str | None) -> int:
    """Revoke every live token and end every console session of the user but the ones kept;
    the number of credentials ended."""
    tokens = await session.execute(
        update(ApiToken)
        .where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None),
               ApiToken.id != (keep_token if keep_token is not None else -1))
        .values(revoked_at=now))
    sessions = await session.execute(
        update(ConsoleSession)
        .where(ConsoleSession.user_id == user_id, ConsoleSession.ended_at.is_(None),
               ConsoleSession.session_hash != (keep_session or ""))
        .values(ended_at=now))
    return int(tokens.rowcount or 0) + int(sessions.rowcount or 0)  # type: ignore[attr-defined]


async def login_source(session: AsyncSession, user_id: int,
                       address_hash: str) -> LoginSource | None:
    query = select(LoginSource).where(LoginSource.user_id == user_id,
                                      LoginSource.address_hash == address_hash)
    return (await session.execute(query)).scalar_one_or_none()


async def has_login_sources(session: AsyncSession, user_id: int) -> bool:
    query = select(LoginSource.id).where(LoginSource.user_id == user_id).limit(1)
    return (await session.execute(query)).first() is not None


async def invitation_by_token_hash(session: AsyncSession,
                                   token_hash: str) -> UserInvitation | None:
    query = (select(UserInvitation).where(UserInvitation.token_hash == token_hash)
             .with_for_update())
    return (await session.execute(query)).scalar_one_or_none()


async def session_by_hash(session: AsyncSession, session_hash: str) -> ConsoleSession | None:
    query = select(ConsoleSession).where(ConsoleSession.session_hash == session_hash)
    return (await session.execute(query)).scalar_one_or_none()


async def unused_recovery_codes(session: AsyncSession, user_id: int) -> Sequence[RecoveryCode]:
    query = select(RecoveryCode).where(
        RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None)
    )
    return (await session.execute(query)).scalars().all()


async def delete_recovery_codes(session: AsyncSession, user_id: int) -> None:
    await session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))


async def throttle_counter_values(session: AsyncSession,
                                  keys: list[str]) -> Sequence[ThrottleCounter]:
    """The counters that exist for `keys`, unlocked (a look before the real check)."""
    query = select(ThrottleCounter).where(ThrottleCounter.key.in_(keys))
    return (await session.execute(query)).scalars().all()


async def throttle_counters(session: AsyncSession, keys: list[str],
                            now: datetime) -> dict[str, ThrottleCounter]:
    """The counters for `keys`, created if missing and locked for this transaction. Rows are
    created and locked in key order, so that concurrent attempts never deadlock."""
    values = [{"key": k, "window_start": now, "failures": 0, "blocked_until": None}
              for k in sorted(set(keys))]
    insert = sqlite_insert if session.get_bind().dialect.name == "sqlite" else postgresql_insert
    await session.execute(insert(ThrottleCounter).values(values).on_conflict_do_nothing())
    query = (select(ThrottleCounter).where(ThrottleCounter.key.in_(keys))
             .order_by(ThrottleCounter.key).with_for_update()
             .execution_options(populate_existing=True))
    return {row.key: row for row in (await session.execute(query)).scalars().all()}
