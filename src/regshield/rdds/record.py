"""A sponsored domain's registration data, as RDAP and WHOIS publish it.

`load_domain` reads one domain with its contacts (opened from their sealed rows), the
registrar's published identity and the dates the profile asks for; `present` applies the one
redaction engine (rules/redaction.py) for a persona. The RDAP and WHOIS adapters render the
result; neither reads the store or decides what to hide.

Only domains this registrar sponsors are records: a registration or inbound transfer the
registry has not confirmed yet, and a domain that ended here, are unknown (RP 2.11.1).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any
from urllib.parse import quote

from sqlalchemy import ColumnElement, Select, String, bindparam, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from regshield.errors import PermissionDenied
from regshield.flows.contacts import contact_binding
from regshield.flows.context import Actor, RequestContext
from regshield.flows.disclosure import disclosed_access
from regshield.flows.personal_data import record_staff_read
from regshield.rules.redaction import (
    ContactRole,
    Persona,
    Redaction,
    handle_redaction,
    redact_contact,
)
from regshield.security.fields import Sealer
from regshield.services import Services
from regshield.store.engine import Store
from regshield.store.models import Contact, DataKey, Domain, DomainOperation, Registrar

SPONSORED_STATES = frozenset({"active", "pending_delete"})
TRANSFER_KIND = "transfer_request"


@dataclass(frozen=True)
class RegistrarFacts:
    """What RDAP and WHOIS say about the sponsoring registrar (RP 2.4)."""

    name: str
    iana_id: int | None
    abuse_email: str | None
    abuse_phone: str | None
    url: str  # the registrar's web site


@dataclass(frozen=True)
class ContactRecord:
    role: ContactRole
    handle: str
    fields: Mapping[str, Any]  # as rules/contacts.py names them, unredacted


@dataclass(frozen=True)
class DomainRecord:
    name: str  # A-label
    unicode_name: str
    roid: str | None
    statuses: tuple[str, ...]  # EPP statuses (RFC 5731), as the registry reported them
    registered_at: datetime
    expires_at: datetime | None
    last_changed_at: datetime | None  # None when the domain never changed after creation
    transferred_at: datetime | None  # the last inbound transfer, None if never transferred
    nameservers: tuple[str, ...]
    ds: tuple[Mapping[str, Any], ...]
    contacts: tuple[ContactRecord, ...]
    consent: frozenset[str]  # registrant fields the registrant consented to publish
    registrar: RegistrarFacts


@dataclass(frozen=True)
class PresentedContact:
    role: ContactRole
    handle: str | None  # None when redacted
    shown: Mapping[str, Any]
    contact_uri: str | None  # the contact form that stands in for a redacted email


@dataclass(frozen=True)
class Presentation:
    """A record as one persona sees it, with a redaction for everything withheld."""

    record: DomainRecord
    persona: Persona
    contacts: tuple[PresentedContact, ...]
    redactions: tuple[Redaction, ...]

    def contact(self, role: ContactRole) -> PresentedContact | None:
        return next((c for c in self.contacts if c.role is role), None)


def contact_form_url(public_url: str, domain: str, role: ContactRole) -> str:
    """The relay form that writes to a domain's contact without showing its address."""
    return f"{public_url.rstrip('/')}/contact/{quote(domain, safe='')}/{role.value}"


async def registrar_facts(session: AsyncSession, *, registrar_url: str) -> RegistrarFacts:
    """The registrar's published identity (RP 2.4)."""
    registrar = await session.get(Registrar, 1)
    return _facts(registrar.name if registrar else None,
                  registrar.iana_id if registrar else None,
                  registrar.abuse_email if registrar else None,
                  registrar.abuse_phone if registrar else None, registrar_url)


def _facts(name: str | None, iana_id: int | None, abuse_email: str | None,
           abuse_phone: str | None, registrar_url: str) -> RegistrarFacts:
    return RegistrarFacts(name=name or "regshield", iana_id=iana_id, abuse_email=abuse_email,
                          abuse_phone=abuse_phone, url=registrar_url)


# One statement per lookup: a lookup is a read of one row with its two contacts, their data
# keys, the registrar and the last inbound transfer, so that a query costs one round trip.
_REGISTRANT = aliased(Contact, name="registrant")
_TECH = aliased(Contact, name="tech")
_REGISTRANT_KEY = aliased(DataKey, name="registrant_key")
_TECH_KEY = aliased(DataKey, name="tech_key")
_TRANSFERRED = (
    select(func.max(DomainOperation.completed_at))
    .where(DomainOperation.domain_id == Domain.id, DomainOperation.kind == TRANSFER_KIND,
           DomainOperation.state == "confirmed")
    .correlate(Domain).scalar_subquery().label("transferred_at"))


def _record_select() -> Select[Any]:
    return (
        select(
            Domain.name, Domain.unicode_name, Domain.roid, Domain.registry_statuses,
            Domain.created_at, Domain.updated_at, Domain.expires_at, Domain.nameservers,
            Domain.ds, Domain.publish_consent,
            _REGISTRANT.handle, _REGISTRANT.data_sealed,
            _REGISTRANT_KEY.master_key_id, _REGISTRANT_KEY.wrapped,
            _TECH.handle, _TECH.data_sealed, _TECH_KEY.master_key_id, _TECH_KEY.wrapped,
            Registrar.name, Registrar.iana_id, Registrar.abuse_email, Registrar.abuse_phone,
            _TRANSFERRED)
        .select_from(Domain)
        .outerjoin(_REGISTRANT, _REGISTRANT.id == Domain.registrant_id)
        .outerjoin(_REGISTRANT_KEY, _REGISTRANT_KEY.id == _REGISTRANT.data_key_id)
        .outerjoin(_TECH, _TECH.id == Domain.tech_id)
        .outerjoin(_TECH_KEY, _TECH_KEY.id == _TECH.data_key_id)
        .outerjoin(Registrar, Registrar.id == 1)
        .where(Domain.ended_at.is_(None), Domain.state.in_(SPONSORED_STATES)))


_LOOKUP = _record_select().where(Domain.name == bindparam("name"))


async def load_domain(store: Store, sealer: Sealer, name: str, *,
                      registrar_url: str) -> DomainRecord | None:
    """The sponsored domain `name` (A-label, lower case), or None: one statement, read
    outside any transaction (`Store.lookup`)."""
    row = await store.lookup(_LOOKUP, {"name": name})
    return None if row is None else _record(sealer, row, registrar_url)


def _record(sealer: Sealer, row: Any, registrar_url: str) -> DomainRecord:
    (name, unicode_name, roid, statuses, created_at, updated_at, expires_at, nameservers, ds,
     consent, registrant_handle, registrant_sealed, registrant_master, registrant_wrapped,
     tech_handle, tech_sealed, tech_master, tech_wrapped, registrar_name, iana_id,
     abuse_email, abuse_phone, transferred_at) = row
    contacts = []
    for role, handle, sealed, master, wrapped in (
            (ContactRole.REGISTRANT, registrant_handle, registrant_sealed, registrant_master,
             registrant_wrapped),
            (ContactRole.TECHNICAL, tech_handle, tech_sealed, tech_master, tech_wrapped)):
        if handle is None:
            continue
        key = sealer.keyring.unwrap(master, wrapped)
        contacts.append(ContactRecord(role, handle, Sealer.open_json(
            key, sealed, contact_binding(handle))))
    return DomainRecord(
        name=name, unicode_name=unicode_name, roid=roid, statuses=tuple(statuses),
        registered_at=created_at, expires_at=expires_at,
        last_changed_at=updated_at if updated_at > created_at else None,
        transferred_at=transferred_at, nameservers=tuple(nameservers), ds=tuple(ds),
        contacts=tuple(contacts), consent=frozenset(consent or {}),
        registrar=_facts(registrar_name, iana_id, abuse_email, abuse_phone, registrar_url))


@dataclass(frozen=True)
class Sourced:
    """A record with the rows it was read from: its domain and the contacts it shows."""

    record: DomainRecord
    domain_id: int
    registrant_id: int | None
    tech_id: int | None


async def load_domains_after(session: AsyncSession, sealer: Sealer, after: int, limit: int,
                             *, registrar_url: str,
                             where: ColumnElement[bool] | None = None) -> list[Sourced]:
    """Up to `limit` sponsored domains with an id above `after` (and meeting `where`), in id
    order."""
    query = (_record_select().add_columns(Domain.id, Domain.registrant_id, Domain.tech_id)
             .where(Domain.id > after).order_by(Domain.id).limit(limit))
    if where is not None:
        query = query.where(where)
    rows = (await session.execute(query)).all()
    return [Sourced(_record(sealer, row[:-3], registrar_url), *row[-3:]) for row in rows]


async def nameserver_in_use(session: AsyncSession, host: str) -> bool:
    """Whether a sponsored domain delegates to `host` (A-label, lower case)."""
    # The JSON list's text holds each name in double quotes; host names have no LIKE wildcards.
    found = await session.execute(
        select(Domain.id).where(Domain.ended_at.is_(None),
                                Domain.state.in_(SPONSORED_STATES),
                                cast(Domain.nameservers, String).like(f'%"{host}"%'))
        .limit(1))
    return found.first() is not None


async def search_domains(session: AsyncSession, sealer: Sealer, actor: Actor | None, *,
                         registrar_url: str, limit: int, exact: str | None = None,
                         ascii_prefix: str | None = None, unicode_prefix: str | None = None
                         ) -> tuple[list[DomainRecord], bool]:
    """Sponsored domains named `exact`, or whose A-label (U-label) form starts with the prefix,
    in name order: at most `limit` records, and whether more matched. Staff only (a search
    reads every account's registrants). Raises PermissionDenied."""
    if not sees_everything(actor):
        raise PermissionDenied("domain search is open to authenticated registrar staff only")
    query = _record_select()
    if exact is not None:
        query = query.where(Domain.name == exact)
    elif ascii_prefix is not None:
        query = query.where(Domain.name.startswith(ascii_prefix, autoescape=True))
    elif unicode_prefix is not None:
        query = query.where(Domain.unicode_name.startswith(unicode_prefix, autoescape=True))
    rows = (await session.execute(query.order_by(Domain.name).limit(limit + 1))).all()
    records = [_record(sealer, row, registrar_url) for row in rows[:limit]]
    return records, len(rows) > limit


def sees_everything(actor: Actor | None) -> bool:
    """Registrar staff who may read every account's contacts see registration data as it is
    (the staff persona); no one else does."""
    return actor is not None and actor.is_staff and actor.can("contacts", "read")


Disclosed = Mapping[ContactRole, frozenset[str]]
NOTHING_DISCLOSED: Disclosed = MappingProxyType({})


async def persona_of(services: Services, actor: Actor | None, context: RequestContext,
                     record: DomainRecord, channel: str) -> tuple[Persona, Disclosed]:
    """Who `actor` is to `record`'s registration data: staff (the read is recorded), the
    requester of an approved disclosure (and the fields of each contact role it opens; the
    access is recorded), or anonymous."""
    if actor is None or actor.kind == "anonymous":
        return Persona.ANONYMOUS, NOTHING_DISCLOSED
    if sees_everything(actor):
        await record_staff_read(services, actor, context,
                                [contact.handle for contact in record.contacts], via=channel,
                                domains=[record.name])
        return Persona.STAFF, NOTHING_DISCLOSED
    opened = await disclosed_access(services, actor, context, record.name, channel)
    covered = {ContactRole(role): fields for role, fields in opened.items()
               if role in {r.value for r in ContactRole} and fields}
    if not covered:
        return Persona.ANONYMOUS, NOTHING_DISCLOSED
    return Persona.DISCLOSED, MappingProxyType(covered)


def present(record: DomainRecord, persona: Persona, *, public_url: str,
            disclosed: Disclosed = NOTHING_DISCLOSED) -> Presentation:
    """`record` as `persona` sees it. `disclosed` maps the contacts an approved disclosure
    request covers to the fields it approved (the disclosed persona only)."""
    covered = disclosed if persona is Persona.DISCLOSED else NOTHING_DISCLOSED
    contacts = []
    redactions: list[Redaction] = []
    for contact in record.contacts:
        consent = record.consent if contact.role is ContactRole.REGISTRANT else frozenset()
        seen = redact_contact(
            contact.fields, contact.role, persona,
            contact_uri=contact_form_url(public_url, record.name, contact.role),
            consent=consent, disclosed=covered)
        hidden_handle = handle_redaction(contact.role, persona)
        if hidden_handle is not None:
            redactions.append(hidden_handle)
        redactions.extend(seen.redactions)
        contacts.append(PresentedContact(
            contact.role, None if hidden_handle else contact.handle, seen.shown,
            seen.contact_uri))
    return Presentation(record, persona, tuple(contacts), tuple(redactions))

