"""Turning a presented credential into an Actor (API bearer tokens, console sessions)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol

from regshield.clock import as_utc
from regshield.errors import AuthenticationFailed, AuthenticationRequired
from regshield.flows.context import Actor
from regshield.policy.security import security_policy
from regshield.security.permissions import permissions_for
from regshield.security.step_up import may_step_up
from regshield.security.tokens import API_TOKEN_PREFIX, SESSION_PREFIX, digest
from regshield.services import Services
from regshield.store.models import User
from regshield.store.queries.accounts import public_ids
from regshield.store.queries.users import TOKEN_HOLDER, session_by_hash, touch_token

# Bookkeeping of "last used" is coarse so that reads do not turn into writes.
LAST_USED_RESOLUTION = timedelta(minutes=5)


async def actor_for_bearer(services: Services, value: str | None) -> Actor:
    """The actor an `Authorization: Bearer rs_...` value stands for.

    Raises AuthenticationRequired (none given) or AuthenticationFailed (unknown, expired,
    revoked, or a console session value presented to the API).
    """
    if not value:
        raise AuthenticationRequired("send an API token as Authorization: Bearer rs_...")
    if not value.startswith(API_TOKEN_PREFIX) or len(value) > 128:
        raise AuthenticationFailed("not an API token")
    now = services.clock.now()
    # One statement outside any transaction: no BEGIN and COMMIT, no pool pre-ping, no ORM
    # objects for what every request asks.
    found = await services.store.lookup(TOKEN_HOLDER, {"token_hash": digest(value)}, on_loop=True)
    if found is None:
        raise AuthenticationFailed("the token is unknown, expired or revoked")
    if found.revoked_at is not None or as_utc(found.expires_at) <= now:
        raise AuthenticationFailed("the token is unknown, expired or revoked")
    if found.disabled_at is not None:
        raise AuthenticationFailed("the token's user is disabled")
    actor = _actor(found, found.account_public_id, found.scopes, found.token_id,
                   found.second_factor_at, may_step_up(found.token_kind, found.scopes))
    stale = found.last_used_at is None or \
        as_utc(found.last_used_at) + LAST_USED_RESOLUTION <= now
    if stale:
        async with services.store.write() as session:
            await touch_token(session, found.token_id, now)
    return actor


async def actor_for_console_session(services: Services, value: str | None) -> tuple[Actor, str]:
    """The actor of a console session cookie and the session's digest; slides the idle timer."""
    if not value or not value.startswith(SESSION_PREFIX) or len(value) > 128:
        raise AuthenticationRequired("sign in to the console")
    now = services.clock.now()
    async with services.store.write() as session:
        record = await session_by_hash(session, digest(value))
        if record is None or record.ended_at is not None or as_utc(record.expires_at) <= now:
            raise AuthenticationFailed("the session has ended; sign in again")
        idle = security_policy(now).console_session_idle
        if as_utc(record.last_seen_at) + idle <= now:
            raise AuthenticationFailed("the session was idle too long; sign in again")
        record.last_seen_at = now
        user = await session.get(User, record.user_id)
        if user is None or user.disabled_at is not None:
            raise AuthenticationFailed("the session's user is disabled")
        account = None
        if user.account_id is not None:
            account = (await public_ids(session, {user.account_id})).get(user.account_id)
        return _actor(user, account, ["*"], None, record.second_factor_at,
                      may_step_up(None, [])), record.session_hash


class _Holder(Protocol):
    """What an actor is made of: a `User`, or a row of `TOKEN_HOLDER`."""

    @property
    def id(self) -> int: ...
    @property
    def public_id(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def role(self) -> str: ...
    @property
    def account_id(self) -> int | None: ...


def _actor(user: _Holder, account: str | None, scopes: list[str], token_id: int | None,
           second_factor_at: datetime | None, step_up_allowed: bool) -> Actor:
    return Actor(
        kind="staff" if user.kind == "staff" else "customer",
        permissions=permissions_for(user.role, scopes),
        user_id=user.id, user_public_id=user.public_id, role=user.role,
        account_id=user.account_id, account_public_id=account, token_id=token_id,
        second_factor_at=as_utc(second_factor_at) if second_factor_at else None,
        step_up_allowed=step_up_allowed,
    )
