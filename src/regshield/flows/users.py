"""Users: registrar staff and customer users, and what they can see of themselves."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from regshield.errors import FieldError, PermissionDenied, ValidationFailed
from regshield.flows.accounts import target_account
from regshield.flows.context import Actor
from regshield.flows.runner import Tx
from regshield.rules.contacts import normalize_email
from regshield.security.fields import Sealer
from regshield.security.keyring import KeyRing
from regshield.security.passwords import hash_password, password_problems
from regshield.security.permissions import CUSTOMER_ROLES, STAFF_ROLES
from regshield.security.tokens import new_public_id
from regshield.services import Services
from regshield.store.models import Account, User
from regshield.store.queries.users import user_by_email_index


def email_index(keyring: KeyRing, email: str) -> str:
    """The keyed hash that finds a user by email; the address itself is never stored in clear."""
    return keyring.index("user-email", email.strip().lower())


def email_binding(user: User) -> str:
    return f"users:{user.public_id}:email"


async def user_email(session: AsyncSession, sealer: Sealer, user: User) -> str:
    data_key = await sealer.data_key(session, user.data_key_id)
    return sealer.open(data_key, user.email_sealed, email_binding(user)).decode()


@dataclass(frozen=True)
class UserProfile:
    user: User
    email: str
    account: str | None


@dataclass(frozen=True)
class UserCreate:
    """Create a staff user (admins only) or a customer user of one account.

    Raises PermissionDenied, ValidationFailed (email, password, role, account).
    """

    email: str
    password: str
    role: str
    account: str | None = None

    async def run(self, tx: Tx) -> UserProfile:
        tx.actor.require("users", "write")
        errors: list[FieldError] = []
        email = normalize_email(self.email, errors, "email")
        staff = self.role in STAFF_ROLES
        if self.role not in STAFF_ROLES + CUSTOMER_ROLES:
            errors.append(FieldError("role", "unknown_role", "must be one of " +
                                     ", ".join(STAFF_ROLES + CUSTOMER_ROLES)))
        if staff and tx.actor.kind != "system" and tx.actor.role != "admin":
            raise PermissionDenied("only admins create staff users")
        account = await self._account(tx, staff, errors)
        errors += password_problems(self.password, min_length=tx.security.password_min_length,
                                    email=email)
        index = email_index(tx.services.keyring, email) if email else None
        if index and await user_by_email_index(tx.session, index):
            errors.append(FieldError("email", "taken", "a user with this email exists"))
        if errors:
            raise ValidationFailed(errors)
        assert email is not None and index is not None
        password_hash = await asyncio.to_thread(hash_password, self.password)
        data_key_row, data_key = await tx.sealer.new_data_key(tx.session, tx.now)
        user = User(
            public_id=new_public_id("usr"), email_index=index, email_sealed=b"",
            data_key_id=data_key_row.id, kind="staff" if staff else "customer", role=self.role,
            account_id=account.id if account else None, password_hash=password_hash,
            created_at=tx.now,
        )
        user.email_sealed = Sealer.seal(data_key, email.encode(), email_binding(user))
        tx.session.add(user)
        await tx.session.flush()
        tx.record("users:user:created", account=account.public_id if account else None,
                  user=user.public_id, role=self.role)
        return UserProfile(user, email, account.public_id if account else None)

    async def _account(self, tx: Tx, staff: bool, errors: list[FieldError]) -> Account | None:
        if staff:
            if self.account:
                errors.append(FieldError("account", "not_allowed",
                                         "staff users belong to no account"))
            return None
        return await target_account(tx, self.account, "users", errors,
                                    required="customer users need an account")


async def user_profile(services: Services, actor: Actor) -> UserProfile:
    """The signed-in user's own record. Raises PermissionDenied."""
    actor.require_self("profile:read")
    async with services.store.read() as session:
        user = await session.get(User, actor.user_id)
        if user is None:
            raise PermissionDenied("the credential's user is gone")
        email = await user_email(session, services.sealer, user)
    return UserProfile(user, email, actor.account_public_id)
