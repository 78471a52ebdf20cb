"""Contacts (registrant and tech registration data), sealed at rest."""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from regshield.errors import Conflict, FieldError, NotFound, ValidationFailed
from regshield.flows.accounts import target_account
from regshield.flows.context import Actor, RequestContext
from regshield.flows.personal_data import record_staff_read
from regshield.flows.runner import Tx
from regshield.notify.messages import MAX_DETAIL_ITEMS, Change
from regshield.notify.requests import (
    notice,
    previous_address_binding,
    to_account_owners,
    to_contact,
    to_previous_address,
)
from regshield.policy.transfer import MATERIAL_FIELDS
from regshield.rules.contacts import ContactData, validate_contact
from regshield.security.fields import Sealer
from regshield.services import Services
from regshield.store.models import Account, Contact, Domain
from regshield.store.queries.accounts import account_by_reference, public_ids
from regshield.store.queries.contacts import (
    CONTACT_TO_OPEN,
    contact_by_handle,
    list_contacts,
)
from regshield.store.queries.domains import domains_using_contact

HANDLE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
HANDLE_PREFIX = "RS-"


def new_handle() -> str:
    """`RS-` and 10 random symbols: fits EPP's 3-16 character contact IDs, not guessable."""
    return HANDLE_PREFIX + "".join(secrets.choice(HANDLE_ALPHABET) for _ in range(10))


def contact_binding(handle: str) -> str:
    return f"contacts:{handle}"


@dataclass(frozen=True)
class ContactView:
    handle: str
    account: str
    data: ContactData
    created_at: datetime
    updated_at: datetime
    # Registry operations an edit started (the contact sent to registries, a transfer lock).
    operations: tuple[str, ...] = ()


async def open_contact(session: AsyncSession, sealer: Sealer, contact: Contact,
                       account_public_id: str) -> ContactView:
    data_key = await sealer.data_key(session, contact.data_key_id)
    return _view(contact, data_key, account_public_id)


def _view(contact: Contact, data_key: bytes, account_public_id: str) -> ContactView:
    values = Sealer.open_json(data_key, contact.data_sealed, contact_binding(contact.handle))
    return ContactView(contact.handle, account_public_id, ContactData.from_dict(values),
                       contact.created_at, contact.updated_at)


@dataclass(frozen=True)
class NewContact:
    """What a contact create's checks found: where it goes and its validated data."""

    account_id: int
    account_public_id: str
    data: ContactData


# One statement, no object: nothing else in the transaction reads a new contact, and no RDAP
# document can name a contact this new (store/rdap_changes.py).
_INSERT_CONTACTS = insert(Contact)


@dataclass(frozen=True)
class ContactCreate:
    """Validate every field, seal the contact under a fresh data key, record the event.

    Creates into the actor's own account are written by group commit (flows/runner.py).
    Raises PermissionDenied, ValidationFailed.
    """

    fields: Mapping[str, Any]
    account: str | None = None

    def admit(self, actor: Actor) -> NewContact | None:
        """The checks, when the contact goes to the actor's own account (known from the
        credential); None when the account must be looked up (another one named, staff)."""
        actor.require("contacts", "write")
        owner = _actors_own_account(actor, self.account)
        if owner is None:
            return None
        return NewContact(*owner, validate_contact(self.fields))

    async def run(self, tx: Tx) -> ContactView:
        tx.actor.require("contacts", "write")
        errors: list[FieldError] = []
        data = None
        try:
            data = validate_contact(self.fields)
        except ValidationFailed as failed:
            errors += failed.errors
        owner = _actors_own_account(tx.actor, self.account)
        if owner is None:
            account = await target_account(
                tx, self.account, "contacts", errors,
                required="staff must name the account of the contact")
            owner = (account.id, account.public_id) if account is not None else None
        if errors:
            raise ValidationFailed(errors)
        assert owner is not None and data is not None
        return (await self.write_group([(tx, NewContact(*owner, data))]))[0]

    @classmethod
    async def write_group(cls, members: Sequence[tuple[Tx, NewContact]]) -> list[ContactView]:
        """Every member's data key in one statement and its contact in another."""
        first = members[0][0]
        keys = await first.sealer.new_data_keys(first.session, [tx.now for tx, _ in members])
        rows, views = [], []
        for (tx, new), (data_key_id, data_key) in zip(members, keys, strict=True):
            handle = new_handle()
            rows.append({
                "handle": handle, "account_id": new.account_id, "data_key_id": data_key_id,
                "data_sealed": Sealer.seal_json(data_key, new.data.as_dict(),
                                                contact_binding(handle)),
                "created_at": tx.now, "updated_at": tx.now,
            })
            tx.record("contacts:contact:created", account=new.account_public_id,
                      contact=handle)
            views.append(ContactView(handle, new.account_public_id, new.data, tx.now, tx.now))
        connection = await first.session.connection()
        await connection.execute(_INSERT_CONTACTS, rows)
        return views


def _actors_own_account(actor: Actor, reference: str | None) -> tuple[int, str] | None:
    """The actor's own account (id, public id) when the contact goes there and the actor may
    write contacts in it: known from the credential, so not looked up again. Anything else
    (another account, one named by its name, staff) goes through `target_account`."""
    if actor.account_id is None or actor.account_public_id is None:
        return None
    if reference not in (None, actor.account_public_id):
        return None
    if not actor.can("contacts", "write", actor.account_id):
        return None
    return actor.account_id, actor.account_public_id


async def _load_for_write(tx: Tx, handle: str) -> tuple[Contact, Account]:
    tx.actor.require("contacts", "write")
    contact = await contact_by_handle(tx.session, handle)
    if contact is None:
        raise NotFound("no such contact")
    tx.actor.require_object("contacts", "write", contact.account_id)
    account = await tx.session.get(Account, contact.account_id)
    assert account is not None
    return contact, account


@dataclass(frozen=True)
class ContactUpdate:
    """Change some fields; the merged contact is validated as a whole.

    A material change (name, organization, email: `MATERIAL_FIELDS` in policy/transfer.py)
    of a contact that is the registrant of live domains is a change of registrant of each
    under the Transfer Policy, as `RegistrantChange` is: refused where the registrant is
    frozen (registry lock, updates prohibited), needs a step-up, and locks the domains
    against transfer for 60 days unless the prior registrant opts out
    (`opt_out_of_transfer_lock`); flows/domains.py `registrant_edit_allowed`,
    `registrant_edited`. Any edit of a contact that live domains use is told to its previous
    and its new address and to the account's owners, verifies a registrant again
    (flows/accuracy.py), and is sent to each registry that holds the contact as a
    `contact_update` operation (flows/operations.py `push_contact`), whose ids the view
    carries in `operations`.

    Raises PermissionDenied (StepUpRequired), NotFound (also for another account's
    contact), ValidationFailed, Conflict (an operation of a domain of the registrant is still
    open at the registry).
    """

    handle: str
    changes: Mapping[str, Any] = field(default_factory=dict)
    opt_out_of_transfer_lock: bool = False

    async def run(self, tx: Tx) -> ContactView:
        # flows/domains.py, flows/operations.py and flows/accuracy.py import this module.
        from regshield.flows.accuracy import verification_after_update
        from regshield.flows.domains import registrant_edit_allowed, registrant_edited
        from regshield.flows.operations import push_contact

        contact, account = await _load_for_write(tx, self.handle)
        current = await open_contact(tx.session, tx.sealer, contact, account.public_id)
        # Unknown fields are reported by the validation, along with every other failing field.
        merged = {**current.data.as_dict(), **self.changes}
        data = validate_contact(merged)
        changed = sorted(k for k, v in data.as_dict().items() if current.data.as_dict()[k] != v)
        if not changed:
            return ContactView(contact.handle, account.public_id, data, contact.created_at,
                               contact.updated_at)
        used = list(await domains_using_contact(tx.session, contact.id))
        registrant_of = [d for d in used if d.registrant_id == contact.id]
        material = [name for name in changed if name in MATERIAL_FIELDS]
        change_of_registrant = bool(registrant_of and material)
        if change_of_registrant:
            await registrant_edit_allowed(tx, registrant_of, material)
        data_key = await tx.sealer.data_key(tx.session, contact.data_key_id)
        contact.data_sealed = Sealer.seal_json(data_key, data.as_dict(),
                                               contact_binding(contact.handle))
        contact.updated_at = tx.now
        tx.record("contacts:contact:updated", account=account.public_id,
                  contact=contact.handle, fields=changed)
        operations: list[str] = []
        lock_until: datetime | None = None
        if change_of_registrant:
            lock_until, started = await registrant_edited(
                tx, contact, account, registrant_of, material,
                opted_out=self.opt_out_of_transfer_lock)
            operations += started
        # A registrant's edited data is verified again.
        await verification_after_update(tx, contact, account)
        operations += [o.public_id for o in await push_contact(tx, contact.handle,
                                                               account.public_id)]
        if used:
            recipients = [to_contact(contact.handle)]
            if current.data.email != data.email:
                recipients.append(to_previous_address(contact.handle, Sealer.seal_json(
                    data_key, current.data.email, previous_address_binding(contact.handle))))
            recipients.append(to_account_owners(account.public_id))
            if change_of_registrant:
                notice(tx, change=Change.REGISTRANT_DATA, recipients=recipients,
                       event="contacts:contact:updated", details={
                           "contact": contact.handle, "fields": changed,
                           "domains": _listed_domains(registrant_of),
                           "transfer_lock_until": lock_until.isoformat() if lock_until
                           else None,
                           "opted_out": self.opt_out_of_transfer_lock})
            else:
                notice(tx, change=Change.CONTACT, recipients=recipients,
                       event="contacts:contact:updated",
                       details={"contact": contact.handle, "fields": changed})
        return ContactView(contact.handle, account.public_id, data, contact.created_at,
                           contact.updated_at, tuple(operations))


def _listed_domains(domains: Sequence[Domain]) -> list[str]:
    """The domains a notice names: at most `MAX_DETAIL_ITEMS` entries, the last one saying
    how many more there are."""
    names = [d.unicode_name for d in domains]
    if len(names) <= MAX_DETAIL_ITEMS:
        return names
    shown = names[:MAX_DETAIL_ITEMS - 1]
    return [*shown, f"and {len(names) - len(shown)} more"]


@dataclass(frozen=True)
class ContactDelete:
    """Soft-delete a contact that no live domain uses. A registrant or tech contact in use is
    refused: deleting it would leave the domain without the holder its notices, verification
    and RDAP answers rest on. Raises PermissionDenied, NotFound, Conflict."""

    handle: str

    async def run(self, tx: Tx) -> None:
        contact, account = await _load_for_write(tx, self.handle)
        using = await domains_using_contact(tx.session, contact.id)
        if using:
            names = ", ".join(domain.name for domain in using[:5])
            more = f" and {len(using) - 5} more" if len(using) > 5 else ""
            raise Conflict(f"the contact is in use by {names}{more}: name another contact "
                           "for those domains first")
        contact.deleted_at = tx.now
        tx.record("contacts:contact:deleted", account=account.public_id, contact=contact.handle)


# Reads: authorized the same way as the writes above, answered from a read transaction.


async def contact_read(services: Services, actor: Actor, handle: str, *,
                       context: RequestContext | None = None, via: str = "api") -> ContactView:
    """One contact; a staff user's read is recorded (flows/personal_data.py). Raises
    PermissionDenied, NotFound (also for another account's contact)."""
    actor.require("contacts", "read")
    found = await services.store.lookup(CONTACT_TO_OPEN, {"handle": handle}, on_loop=True)
    if found is None:
        raise NotFound("no such contact")
    actor.require_object("contacts", "read", found.account_id)
    data_key = services.keyring.unwrap(found.master_key_id, found.wrapped)
    values = Sealer.open_json(data_key, found.data_sealed, contact_binding(found.handle))
    view = ContactView(found.handle, found.account_public_id, ContactData.from_dict(values),
                       found.created_at, found.updated_at)
    await record_staff_read(services, actor, context, [view.handle], via=via,
                            account=view.account)
    return view


async def contact_list(services: Services, actor: Actor, *, limit: int = 100,
                       after: str | None = None, account: str | None = None,
                       context: RequestContext | None = None) -> list[ContactView]:
    """Contacts the actor may read: a customer's own account, or any (or one) account for staff
    (a staff user's read is recorded, flows/personal_data.py).

    `after` is the handle the previous page ended with.
    """
    actor.require("contacts", "read")
    async with services.store.read() as session:
        scope: int | None = actor.account_id
        if actor.can("contacts", "read"):
            scope = None
            if account is not None:
                found = await account_by_reference(session, account)
                if found is None:
                    return []
                scope = found.id
        after_id = 0
        if after:
            # The cursor may have been deleted since; another tenant's reads as unknown.
            previous = await contact_by_handle(session, after, include_deleted=True)
            if previous is not None and scope in (None, previous.account_id):
                after_id = previous.id
        rows = await list_contacts(session, scope, limit, after_id)
        accounts = await public_ids(session, {row.account_id for row in rows})
        keys = await services.sealer.data_keys(session, {row.data_key_id for row in rows})
        views = [_view(row, keys[row.data_key_id], accounts[row.account_id]) for row in rows]
    owners = {view.account for view in views}
    await record_staff_read(services, actor, context, [view.handle for view in views],
                            via="api", account=owners.pop() if len(owners) == 1 else None)
    return views
