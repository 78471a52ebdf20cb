"""Users: registrar staff and customer users, and what they can see of themselves."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from regshield.errors import FieldError, NotFound, PermissionDenied, ValidationFailed
from regshield.flows.accounts import target_account
from regshield.flows.context import Actor
from regshield.flows.runner import Tx
from regshield.rules.contacts import normalize_email
from regshield.security.fields import Sealer
from regshield.security.keyring import KeyRing
from regshield.security.passwords import hash_password, password_problems
from regshield.security.permissions import CUSTOMER_ROLES, STAFF_ROLES
from regshield.security.tokens import digest, new_public_id
from regshield.services import Services
from regshield.store.models import Account, User, UserInvitation
from regshield.store.queries.accounts import public_ids, registrar
from regshield.store.queries.users import invitation_by_token_hash, user_by_email_index

INVITATION_KIND = "users:invitation-mail"


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
        user = await _new_user(tx, email, index, self.password, self.role,
                               account.id if account else None)
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


async def _new_user(tx: Tx, email: str, index: str, password: str, role: str,
                    account_id: int | None) -> User:
    password_hash = await asyncio.to_thread(hash_password, password)
    data_key_id, data_key = await tx.sealer.new_data_key(tx.session, tx.now)
    user = User(
        public_id=new_public_id("usr"), email_index=index, email_sealed=b"",
        data_key_id=data_key_id, kind="staff" if role in STAFF_ROLES else "customer",
        role=role, account_id=account_id, password_hash=password_hash, created_at=tx.now,
    )
    user.email_sealed = Sealer.seal(data_key, email.encode(), email_binding(user))
    tx.session.add(user)
    await tx.session.flush()
    return user


def invitation_binding(invitation: UserInvitation) -> str:
    return f"invitations:{invitation.public_id}:email"


@dataclass(frozen=True)
class InvitationView:
    invitation: str
    email: str
    role: str
    account: str
    expires_at: datetime


@dataclass(frozen=True)
class UserInvite:
    """Invite someone to become a customer user of an account (how customers add users).

    The answer and the event are the same whether or not the address already has a user: an
    account's owner learns nothing about addresses elsewhere. Whether the mail carries a link
    or tells the existing holder that someone asked is decided when it is sent
    (notify/invitations.py). The user is created only when the invited person accepts.
    Raises PermissionDenied, ValidationFailed (email, role, account, password).
    """

    email: str
    role: str
    account: str | None = None
    password_given: bool = False

    async def run(self, tx: Tx) -> InvitationView:
        tx.actor.require("users", "write")
        errors: list[FieldError] = []
        email = normalize_email(self.email, errors, "email")
        if self.role in STAFF_ROLES:
            raise PermissionDenied("only admins create staff users")
        if self.role not in CUSTOMER_ROLES:
            errors.append(FieldError("role", "unknown_role", "must be one of " +
                                     ", ".join(CUSTOMER_ROLES)))
        if self.password_given:
            errors.append(FieldError("password", "not_allowed",
                                     "the invited person chooses their own password"))
        account = await target_account(tx, self.account, "users", errors,
                                       required="customer users need an account")
        if errors:
            raise ValidationFailed(errors)
        assert email is not None and account is not None
        data_key_id, data_key = await tx.sealer.new_data_key(tx.session, tx.now)
        invitation = UserInvitation(
            public_id=new_public_id("inv"), account_id=account.id, role=self.role,
            email_index=email_index(tx.services.keyring, email), email_sealed=b"",
            data_key_id=data_key_id, token_hash=None, invited_by=tx.actor.label,
            created_at=tx.now, expires_at=tx.now + tx.security.invitation_lifetime,
        )
        invitation.email_sealed = Sealer.seal(data_key, email.encode(),
                                              invitation_binding(invitation))
        tx.session.add(invitation)
        await tx.session.flush()
        tx.record("users:invitation:created", account=account.public_id,
                  invitation=invitation.public_id, role=self.role)
        tx.enqueue(INVITATION_KIND, {"invitation": invitation.public_id},
                   dedupe_key=f"{INVITATION_KIND}:{invitation.public_id}")
        return InvitationView(invitation.public_id, email, self.role, account.public_id,
                              invitation.expires_at)


@dataclass(frozen=True)
class InvitationMail:
    """What the invitation mail says: a link (`taken` False) or, when the address already has
    a user, that someone asked to add it (no link)."""

    invitation: str
    address: str = field(repr=False)
    account: str
    role: str
    registrar: str
    expires_at: datetime
    taken: bool


@dataclass(frozen=True)
class InvitationMailPrepare:
    """Keep the digest of the token about to be mailed (a resent mail replaces it), unless the
    address already has a user. None when the invitation is accepted or expired."""

    invitation: str
    token_hash: str = field(repr=False)

    async def run(self, tx: Tx) -> InvitationMail | None:
        row = (await tx.session.scalars(select(UserInvitation).where(
            UserInvitation.public_id == self.invitation).with_for_update())).first()
        if row is None or row.accepted_at is not None or row.expires_at <= tx.now:
            return None
        data_key = await tx.sealer.data_key(tx.session, row.data_key_id)
        address = tx.sealer.open(data_key, row.email_sealed, invitation_binding(row)).decode()
        taken = await user_by_email_index(tx.session, row.email_index) is not None
        row.token_hash = None if taken else self.token_hash
        account = (await public_ids(tx.session, {row.account_id}))[row.account_id]
        record = await registrar(tx.session)
        # Registrar-wide: the inviting account does not see whether the address was taken.
        tx.record("users:invitation:mailed", account=None, invitation=row.public_id,
                  taken=taken)
        return InvitationMail(row.public_id, address, account, row.role,
                              record.name if record else "regshield", row.expires_at, taken)


@dataclass(frozen=True)
class InvitationAccept:
    """Accept an invitation with the token of its link and a password of one's own: the user
    is created. A link works once and until it expires.
    Raises NotFound (unknown, used or expired link), ValidationFailed (password).
    """

    token: str = field(repr=False)
    password: str = field(repr=False)

    async def run(self, tx: Tx) -> UserProfile:
        row = await invitation_by_token_hash(tx.session, digest(self.token)) \
            if 16 <= len(self.token) <= 128 else None
        gone = NotFound("the invitation is unknown, used or expired")
        if row is None or row.accepted_at is not None or row.expires_at <= tx.now:
            raise gone
        if await user_by_email_index(tx.session, row.email_index) is not None:
            raise gone
        data_key = await tx.sealer.data_key(tx.session, row.data_key_id)
        email = tx.sealer.open(data_key, row.email_sealed, invitation_binding(row)).decode()
        problems = password_problems(self.password, email=email,
                                     min_length=tx.security.password_min_length)
        if problems:
            raise ValidationFailed(problems)
        user = await _new_user(tx, email, row.email_index, self.password, row.role,
                               row.account_id)
        row.accepted_at, row.user_id = tx.now, user.id
        account = (await public_ids(tx.session, {row.account_id}))[row.account_id]
        tx.record("users:invitation:accepted", account=account, invitation=row.public_id,
                  user=user.public_id)
        tx.record("users:user:created", account=account, user=user.public_id, role=row.role)
        return UserProfile(user, email, account)


async def user_profile(services: Services, actor: Actor) -> UserProfile:
    """The signed-in user's own record. Raises PermissionDenied."""
    actor.require_self("profile:read")
    async with services.store.read() as session:
        user = await session.get(User, actor.user_id)
        if user is None:
            raise PermissionDenied("the credential's user is gone")
        email = await user_email(session, services.sealer, user)
    return UserProfile(user, email, actor.account_public_id)
