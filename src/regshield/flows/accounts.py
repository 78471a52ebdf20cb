"""Customer accounts (tenants)."""

from __future__ import annotations

from dataclasses import dataclass

from regshield.errors import FieldError, NotFound, PermissionDenied, ValidationFailed
from regshield.flows.context import Actor
from regshield.flows.runner import Tx
from regshield.security.tokens import new_public_id
from regshield.services import Services
from regshield.store.models import Account
from regshield.store.queries.accounts import (
    account_by_name,
    account_by_public_id,
    account_by_reference,
    list_accounts,
)

MAX_ACCOUNT_NAME = 100


def account_name_problems(name: str) -> list[FieldError]:
    if not name.strip() or len(name) > MAX_ACCOUNT_NAME:
        return [FieldError("name", "invalid_length", f"must be 1 to {MAX_ACCOUNT_NAME} characters")]
    if not name.isprintable() or name != name.strip():
        return [FieldError("name", "invalid_characters",
                           "must be printable, without leading or trailing spaces")]
    if name.startswith("acc_"):
        return [FieldError("name", "reserved_prefix", "must not start with acc_")]
    return []


async def target_account(tx: Tx, reference: str | None, resource: str,
                         errors: list[FieldError], *, required: str) -> Account | None:
    """The account a new object goes to: the one named, else the actor's own.

    An account the actor may not write `resource` in is reported exactly like one that does
    not exist, so that other tenants' accounts stay invisible. `required` is the message when
    no account is named and the actor has none.
    """
    reference = reference or tx.actor.account_public_id
    if not reference:
        errors.append(FieldError("account", "required", required))
        return None
    account = await account_by_reference(tx.session, reference)
    if account is None or not tx.actor.can(resource, "write", account.id):
        errors.append(FieldError("account", "not_found", "no such account"))
        return None
    return account


@dataclass(frozen=True)
class AccountCreate:
    """Open a customer account. Raises PermissionDenied, ValidationFailed (name taken)."""

    name: str

    async def run(self, tx: Tx) -> Account:
        if not tx.actor.can("accounts", "write"):
            raise PermissionDenied("only registrar staff open accounts")
        errors = account_name_problems(self.name)
        if not errors and await account_by_name(tx.session, self.name):
            errors.append(FieldError("name", "taken", "an account with this name exists"))
        if errors:
            raise ValidationFailed(errors)
        account = Account(public_id=new_public_id("acc"), name=self.name, created_at=tx.now)
        tx.session.add(account)
        await tx.session.flush()
        tx.record("accounts:account:created", account=account.public_id)
        return account


async def account_list(services: Services, actor: Actor, limit: int = 100,
                       offset: int = 0) -> list[Account]:
    """Every account for staff; a customer sees only its own. Raises PermissionDenied."""
    if actor.can("accounts", "read"):
        async with services.store.read() as session:
            return list(await list_accounts(session, limit, offset))
    return [await account_read(services, actor, actor.account_public_id or "")]


async def account_read(services: Services, actor: Actor, public_id: str) -> Account:
    """One account: staff, or a member of that account. Raises NotFound."""
    async with services.store.read() as session:
        account = await account_by_public_id(session, public_id)
    if account is None or not (actor.can("accounts", "read") or account.id == actor.account_id):
        raise NotFound("no such account")
    return account
