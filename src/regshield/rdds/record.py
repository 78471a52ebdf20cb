"""A sponsored domain's registration data, as RDAP and WHOIS publish it.

`load_domain` reads one domain with its contacts (opened from their sealed rows), the
registrar's published identity and the dates the profile asks for; `present` applies the one
redaction engine (rules/redaction.py) for a persona. The RDAP and WHOIS adapters render the
result; neither reads the store or decides what to hide.

Only domains this registrar sponsors are records: a registration or inbound transfer the
registry has not confirmed yet, and a domain that ended here, are unknown (RP 2.11.1).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from sqlalchemy import String, cast, select
from sqlalchemy.ext.asyncio import AsyncSession

from regshield.flows.contacts import contact_binding
from regshield.rules.redaction import (
    ContactRole,
    Persona,
    Redaction,
    handle_redaction,
    redact_contact,
)
from regshield.security.fields import Sealer
from regshield.store.models import Contact, Domain, DomainOperation, Registrar

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
    return RegistrarFacts(
        name=registrar.name if registrar else "regshield",
        iana_id=registrar.iana_id if registrar else None,
        abuse_email=registrar.abuse_email if registrar else None,
        abuse_phone=registrar.abuse_phone if registrar else None,
        url=registrar_url)


async def load_domain(session: AsyncSession, sealer: Sealer, name: str, *,
                      registrar_url: str) -> DomainRecord | None:
    """The sponsored domain `name` (A-label, lower case), or None."""
    domain = (await session.execute(
        select(Domain).where(Domain.name == name, Domain.ended_at.is_(None))
    )).scalar_one_or_none()
    if domain is None or domain.state not in SPONSORED_STATES:
        return None
    return (await load_domains(session, sealer, [domain], registrar_url=registrar_url))[0]


async def load_domains(session: AsyncSession, sealer: Sealer, domains: Sequence[Domain], *,
                       registrar_url: str) -> list[DomainRecord]:
    """Records for `domains` (already known to be sponsored), with a few queries in all."""
    facts = await registrar_facts(session, registrar_url=registrar_url)
    contact_ids = {cid for d in domains for cid in (d.registrant_id, d.tech_id) if cid}
    contacts: dict[int, Contact] = {}
    if contact_ids:
        found = await session.execute(select(Contact).where(Contact.id.in_(contact_ids)))
        contacts = {row.id: row for row in found.scalars()}
    keys = await sealer.data_keys(session, {c.data_key_id for c in contacts.values()})
    opened = {cid: Sealer.open_json(keys[c.data_key_id], c.data_sealed,
                                    contact_binding(c.handle))
              for cid, c in contacts.items()}
    transfers: dict[int, datetime] = {}
    if domains:
        transfer_rows = await session.execute(
            select(DomainOperation.domain_id, DomainOperation.completed_at).where(
                DomainOperation.domain_id.in_([d.id for d in domains]),
                DomainOperation.kind == TRANSFER_KIND,
                DomainOperation.state == "confirmed"))
        for row in transfer_rows.all():
            domain_id, completed_at = row[0], row[1]
            if completed_at is not None and (domain_id not in transfers
                                             or completed_at > transfers[domain_id]):
                transfers[domain_id] = completed_at

    records = []
    for domain in domains:
        roles = []
        for role, contact_id in ((ContactRole.REGISTRANT, domain.registrant_id),
                                 (ContactRole.TECHNICAL, domain.tech_id)):
            if contact_id and contact_id in contacts:
                roles.append(ContactRecord(role, contacts[contact_id].handle,
                                           opened[contact_id]))
        changed = domain.updated_at if domain.updated_at > domain.created_at else None
        records.append(DomainRecord(
            name=domain.name, unicode_name=domain.unicode_name, roid=domain.roid,
            statuses=tuple(domain.registry_statuses), registered_at=domain.created_at,
            expires_at=domain.expires_at, last_changed_at=changed,
            transferred_at=transfers.get(domain.id),
            nameservers=tuple(domain.nameservers), ds=tuple(domain.ds),
            contacts=tuple(roles), consent=frozenset(domain.publish_consent or {}),
            registrar=facts))
    return records


async def nameserver_in_use(session: AsyncSession, host: str) -> bool:
    """Whether a sponsored domain delegates to `host` (A-label, lower case)."""
    # The JSON list's text holds each name in double quotes; host names have no LIKE wildcards.
    found = await session.execute(
        select(Domain.id).where(Domain.ended_at.is_(None),
                                Domain.state.in_(SPONSORED_STATES),
                                cast(Domain.nameservers, String).like(f'%"{host}"%'))
        .limit(1))
    return found.first() is not None


async def search_domains(session: AsyncSession, sealer: Sealer, *, registrar_url: str,
                         limit: int, exact: str | None = None, ascii_prefix: str | None = None,
                         unicode_prefix: str | None = None) -> tuple[list[DomainRecord], bool]:
    """Sponsored domains named `exact`, or whose A-label (U-label) form starts with the prefix,
    in name order: at most `limit` records, and whether more matched."""
    query = select(Domain).where(Domain.ended_at.is_(None), Domain.state.in_(SPONSORED_STATES))
    if exact is not None:
        query = query.where(Domain.name == exact)
    elif ascii_prefix is not None:
        query = query.where(Domain.name.startswith(ascii_prefix, autoescape=True))
    elif unicode_prefix is not None:
        query = query.where(Domain.unicode_name.startswith(unicode_prefix, autoescape=True))
    rows = list((await session.execute(query.order_by(Domain.name).limit(limit + 1)))
                .scalars())
    records = await load_domains(session, sealer, rows[:limit], registrar_url=registrar_url)
    return records, len(rows) > limit


def present(record: DomainRecord, persona: Persona, *, public_url: str,
            disclosed_roles: AbstractSet[ContactRole] = frozenset()) -> Presentation:
    """`record` as `persona` sees it. `disclosed_roles` are the contacts an approved
    disclosure request covers (the disclosed persona only)."""
    covered = frozenset(disclosed_roles) if persona is Persona.DISCLOSED else frozenset()
    contacts = []
    redactions: list[Redaction] = []
    for contact in record.contacts:
        consent = record.consent if contact.role is ContactRole.REGISTRANT else frozenset()
        seen = redact_contact(
            contact.fields, contact.role, persona,
            contact_uri=contact_form_url(public_url, record.name, contact.role),
            consent=consent, disclosed_roles=covered)
        hidden_handle = handle_redaction(contact.role, persona, disclosed_roles=covered)
        if hidden_handle is not None:
            redactions.append(hidden_handle)
        redactions.extend(seen.redactions)
        contacts.append(PresentedContact(
            contact.role, None if hidden_handle else contact.handle, seen.shown,
            seen.contact_uri))
    return Presentation(record, persona, tuple(contacts), tuple(redactions))

