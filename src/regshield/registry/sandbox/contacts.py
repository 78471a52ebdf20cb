"""Contact objects in the sandbox registry (RFC 5733): check, create, info, update, delete, and
what domain commands ask of them.

Thick and minimum-data sessions. A session that selected the contact object service at login
(contact-1.0) works as at a thick registry: a domain it creates has a registrant, and every
registrant and contact it names must be a contact object here. A session without it is a
minimum-data session (as registries under the gTLD Registration Data Policy allow): a domain
is created with no registrant, and whatever identifiers it gives are kept as given, unchecked.

The contact's authInfo is kept only as a salted hash, as a domain's is, and never returned.
Any registrar may check a contact; info needs sponsorship or the authInfo. A registrar adds or
removes clientDeleteProhibited, clientTransferProhibited and clientUpdateProhibited; what
statuses prohibit is decided by `rules/statuses.py`'s `refusal`, as for domains. "linked" is
reported, not stored: a contact that a live domain names is linked, and cannot be deleted.
Contact transfers are not served (2101).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from typing import Any

import structlog
from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from regshield.registry.codec import (
    CodecError,
    Disclose,
    DomainContact,
    Phone,
    PostalInfo,
    ResultCode,
    Status,
)
from regshield.registry.commands import (
    ContactCheck,
    ContactCreate,
    ContactDelete,
    ContactInfo,
    ContactUpdate,
    PostalInfoChange,
)
from regshield.registry.responses import (
    CheckResult,
    ContactCheckData,
    ContactCreateData,
    ContactInfoData,
)
from regshield.registry.sandbox.domains import (
    auth_info_hash,
    auth_info_matches,
    shown_statuses,
    status_values,
)
from regshield.registry.sandbox.hosts import LINKED, check_client_statuses
from regshield.registry.sandbox.models import SandboxContact, SandboxDomain
from regshield.registry.sandbox.refusals import Refusal, changed
from regshield.registry.sandbox.state import SandboxState
from regshield.rules.statuses import DomainStatus, Operation, refusal

# RFC 5733 section 2.2: the statuses a client may set on a contact.
CONTACT_CLIENT_STATUSES: frozenset[str] = frozenset({
    DomainStatus.CLIENT_DELETE_PROHIBITED, DomainStatus.CLIENT_TRANSFER_PROHIBITED,
    DomainStatus.CLIENT_UPDATE_PROHIBITED,
})
log = structlog.get_logger("regshield.sandbox")


async def live_contact(session: AsyncSession, handle: str) -> SandboxContact | None:
    found = await session.scalars(select(SandboxContact).where(
        SandboxContact.handle == handle, SandboxContact.deleted_at.is_(None)))
    return found.one_or_none()


async def existing_contact(session: AsyncSession, handle: str) -> SandboxContact:
    """The live contact `handle`, or a Refusal: 2303."""
    contact = await live_contact(session, handle)
    if contact is None:
        raise Refusal(ResultCode.OBJECT_DOES_NOT_EXIST, f"contact {handle} does not exist")
    return contact


async def domains_using(session: AsyncSession, handle: str) -> list[SandboxDomain]:
    """The live domains (in redemption too) whose registrant or contacts name `handle`."""
    each = func.json_each(SandboxDomain.contacts).table_valued("value")
    found = await session.scalars(select(SandboxDomain).where(
        SandboxDomain.deleted_at.is_(None),
        or_(SandboxDomain.registrant == handle,
            select(each.c.value).where(func.json_extract(each.c.value, "$.id") == handle)
            .exists())))
    return list(found)


async def check_contact_references(session: AsyncSession, registrant: str | None,
                                   contacts: Iterable[DomainContact]) -> None:
    """Refusal 2303 for a registrant or contact that is not a contact object (thick
    sessions only: the caller decides)."""
    for handle in dict.fromkeys([*([registrant] if registrant else []),
                                 *(contact.id for contact in contacts)]):
        if await live_contact(session, handle) is None:
            raise Refusal(ResultCode.OBJECT_DOES_NOT_EXIST,
                          f"contact {handle} does not exist; create it first")


async def check_contacts(state: SandboxState, check: ContactCheck) -> ContactCheckData:
    results: list[CheckResult] = []
    async with state.store.read() as session:
        for handle in check.ids:
            taken = await live_contact(session, handle) is not None
            results.append(CheckResult(handle, not taken, "In use" if taken else None))
    return ContactCheckData(tuple(results))


async def create_contact(state: SandboxState, create: ContactCreate,
                         client: str) -> ContactCreateData:
    """Raises Refusal: 2302 the identifier is taken."""
    now = state.clock.now()
    async with state.store.write() as session:
        if await live_contact(session, create.id) is not None:
            raise Refusal(ResultCode.OBJECT_EXISTS, f"contact {create.id} exists")
        session.add(SandboxContact(
            handle=create.id, roid=f"C{secrets.token_hex(8).upper()}-SANDBOX",
            sponsor_id=client, creator_id=client, statuses=[],
            postal_info=[_postal_row(info) for info in create.postal_info],
            voice=_phone_row(create.voice), fax=_phone_row(create.fax), email=create.email,
            auth_info_hash=auth_info_hash(create.auth_info),
            disclose=_disclose_row(create.disclose), created_at=now))
    log.info("sandbox:contact:created", registrar=client, contact=create.id)
    return ContactCreateData(create.id, now)


async def contact_info(state: SandboxState, info: ContactInfo, client: str) -> ContactInfoData:
    """The contact, for its sponsor or whoever gives its authInfo (which is never returned:
    only its hash is kept). Raises Refusal: 2303; 2201 another registrar's contact asked
    without authInfo; 2202 a wrong authInfo."""
    async with state.store.read() as session:
        contact = await existing_contact(session, info.id)
        linked = bool(await domains_using(session, info.id))
    if contact.sponsor_id != client:
        if info.auth_info is None:
            raise Refusal(ResultCode.AUTHORIZATION_ERROR,
                          f"contact {info.id} is sponsored by another registrar")
        if not auth_info_matches(info.auth_info, contact.auth_info_hash):
            raise Refusal(ResultCode.INVALID_AUTHORIZATION_INFORMATION)
    statuses = [*shown_statuses(contact.statuses), *([LINKED] if linked else [])]
    return ContactInfoData(
        id=contact.handle, roid=contact.roid,
        statuses=tuple(Status(value) for value in statuses),
        postal_info=tuple(PostalInfo(**row) for row in contact.postal_info),
        email=contact.email, sponsoring_client=contact.sponsor_id,
        created_by=contact.creator_id, created=contact.created_at,
        voice=_phone(contact.voice), fax=_phone(contact.fax), updated_by=contact.updater_id,
        updated=contact.updated_at, transferred=contact.transferred_at,
        disclose=None if contact.disclose is None else Disclose(
            contact.disclose["flag"], tuple(contact.disclose["fields"])))


async def update_contact(state: SandboxState, update: ContactUpdate, client: str) -> None:
    """Statuses and what `<chg>` replaces, all of it or nothing.

    Raises Refusal: 2003 it changes nothing, or a new postal info form lacks its name or
    address; 2306 a server or unknown status, an add of what is there or a removal of what is
    not; 2303 no such contact; 2201 not the sponsor; 2304 what the statuses prohibit."""
    added, removed = status_values(update.add), status_values(update.remove)
    if not (update.changes or added or removed):
        raise Refusal(ResultCode.REQUIRED_PARAMETER_MISSING, "the update changes nothing")
    check_client_statuses(added | removed, CONTACT_CLIENT_STATUSES, "contact")
    async with state.store.write() as session:
        contact = await existing_contact(session, update.id)
        _check_contact_sponsor(contact, client)
        reason = refusal(Operation.UPDATE, contact.statuses, adding=added, removing=removed,
                         changes_other_fields=update.changes)
        if reason is not None:
            raise Refusal(ResultCode.OBJECT_STATUS_PROHIBITS_OPERATION,
                          reason.replace("domain", "contact"))
        contact.statuses = sorted(changed(contact.statuses, added, removed, "status",
                                          "contact"))
        if update.postal_info:
            contact.postal_info = _changed_postal_info(contact.postal_info, update.postal_info)
        if update.voice is not None:
            contact.voice = _phone_row(update.voice)
        if update.fax is not None:
            contact.fax = _phone_row(update.fax)
        if update.email is not None:
            contact.email = update.email
        if update.auth_info is not None:
            contact.auth_info_hash = auth_info_hash(update.auth_info)
        if update.disclose is not None:
            contact.disclose = _disclose_row(update.disclose)
        contact.updated_at = state.clock.now()
        contact.updater_id = client
    log.info("sandbox:contact:updated", registrar=client, contact=update.id)


async def delete_contact(state: SandboxState, delete: ContactDelete, client: str) -> None:
    """Raises Refusal: 2303 no such contact; 2201 not the sponsor; 2304 a status prohibits
    deletion; 2305 a domain names the contact."""
    async with state.store.write() as session:
        contact = await existing_contact(session, delete.id)
        _check_contact_sponsor(contact, client)
        reason = refusal(Operation.DELETE, contact.statuses)
        if reason is not None:
            raise Refusal(ResultCode.OBJECT_STATUS_PROHIBITS_OPERATION,
                          reason.replace("domain", "contact"))
        users = await domains_using(session, delete.id)
        if users:
            raise Refusal(ResultCode.OBJECT_ASSOCIATION_PROHIBITS_OPERATION,
                          f"contact {delete.id} is linked to {users[0].name}"
                          + (f" and {len(users) - 1} more" if len(users) > 1 else ""))
        contact.deleted_at = state.clock.now()
        contact.updater_id = client
    log.info("sandbox:contact:deleted", registrar=client, contact=delete.id)


def _check_contact_sponsor(contact: SandboxContact, client: str) -> None:
    if contact.sponsor_id != client:
        raise Refusal(ResultCode.AUTHORIZATION_ERROR,
                      f"contact {contact.handle} is sponsored by another registrar")


def _changed_postal_info(rows: list[dict[str, Any]],
                         changes: Iterable[PostalInfoChange]) -> list[dict[str, Any]]:
    """The postal info forms after a `<chg>`: what a change gives replaces what is held; a
    form the contact lacks needs its name and address."""
    by_type = {row["type"]: dict(row) for row in rows}
    for change in changes:
        row = by_type.get(change.type)
        if row is None:
            if change.name is None or not change.changes_address:
                raise Refusal(ResultCode.REQUIRED_PARAMETER_MISSING,
                              f'contact:postalInfo type="{change.type}": a new form needs '
                              "contact:name and contact:addr")
            row = {"type": change.type, "org": None}
        if change.name is not None:
            row["name"] = change.name
        if change.org is not None:
            row["org"] = change.org or None
        if change.changes_address:
            row.update(street=list(change.street), city=change.city, sp=change.sp,
                       pc=change.pc, cc=change.cc)
        try:
            by_type[change.type] = _postal_row(PostalInfo(**row))
        except CodecError as exc:
            raise Refusal(ResultCode.PARAMETER_VALUE_SYNTAX_ERROR, exc.detail) from None
    return [by_type[kind] for kind in ("int", "loc") if kind in by_type]


def _postal_row(info: PostalInfo) -> dict[str, Any]:
    return {"type": info.type, "name": info.name, "org": info.org, "street": list(info.street),
            "city": info.city, "sp": info.sp, "pc": info.pc, "cc": info.cc}


def _phone_row(phone: Phone | None) -> dict[str, Any] | None:
    return None if phone is None else {"number": phone.number, "extension": phone.extension}


def _phone(row: dict[str, Any] | None) -> Phone | None:
    return None if row is None else Phone(row["number"], row["extension"])


def _disclose_row(disclose: Disclose | None) -> dict[str, Any] | None:
    return None if disclose is None else {"flag": disclose.flag,
                                          "fields": list(disclose.fields)}


__all__ = ["CONTACT_CLIENT_STATUSES", "check_contact_references", "check_contacts",
           "contact_info", "create_contact", "delete_contact", "domains_using",
           "existing_contact", "live_contact", "update_contact"]
