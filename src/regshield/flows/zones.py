"""Hosted DNS zones as flows: create, edit RRsets, import, delete, and the secondaries that
transfer them.

Every edit is checked by `rules/zones.py` (the RRset itself, then the whole zone, every error
at once), advances the SOA serial by the zone's scheme, leaves an event and queues a
publication (`dns:publish`, handled by dns/publisher.py: sign, journal, serve, NOTIFY). Zone
data is public DNS data; events still carry only names, types and counts. A zone's private
keys are sealed like personal data; a TSIG secret is sealed and shown once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from ipaddress import ip_address
from typing import Any, cast

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from regshield.dns.tsig import generate_secret
from regshield.dns.zonefile import ds_from_dnskey, read_zone_text, render_zone, soa_record
from regshield.dns.zonekeys import new_zone_key
from regshield.dnssec import ECDSAP256SHA256
from regshield.errors import Conflict, FieldError, NotFound, PermissionDenied, ValidationFailed
from regshield.flows.accounts import target_account
from regshield.flows.context import Actor
from regshield.flows.runner import Tx
from regshield.rules.names import validate_domain_name
from regshield.rules.zones import (
    SERIAL_SCHEMES,
    RRset,
    SerialScheme,
    next_serial,
    serial_gt,
    validate_rrset,
    validate_rrsets,
    zone_problems,
)
from regshield.security.tokens import new_public_id
from regshield.services import Services
from regshield.store.models import Account, Secondary, TsigKey, Zone, ZoneKey, ZoneRRset
from regshield.store.queries.accounts import public_ids
from regshield.store.queries.domains import live_domain

PUBLISH_KIND = "dns:publish"
DENIAL_KINDS = ("nsec", "nsec3")
POLICIES = ("default",)  # rules/kasp.py; more are configured per installation later
APEX_NS_TTL = 3600
SOA_TTL = 3600
DNS_PORT = 53


# --- views ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyView:
    id: str
    role: str
    algorithm: int
    key_tag: int
    state: str
    dnskey: str
    ds: list[str]
    timers: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class SecondaryView:
    address: str
    port: int
    tsig_key: str
    served_serial: int | None
    served_checked_at: datetime | None
    last_transfer_at: datetime | None
    last_transfer_kind: str | None
    last_transfer_serial: int | None
    last_notify_at: datetime | None
    last_notify_result: str | None
    lag: int | None  # serials behind, or None when the secondary's serial is unknown


@dataclass(frozen=True)
class RRsetView:
    owner: str
    type: str
    ttl: int
    records: list[str]


@dataclass(frozen=True)
class ZoneView:
    name: str
    account: str
    dnssec: bool
    denial: str
    policy: str
    serial: int
    serial_scheme: str
    rrsets: int
    keys: list[KeyView]
    ds: list[str]  # what the parent should publish: the DS of each KSK or CSK in use
    secondaries: list[SecondaryView]
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class RRsetChange:
    """What an RRset edit returns: the RRset as stored (None once deleted) and the serial."""

    zone: str
    serial: int
    rrset: RRsetView | None
    changed: bool


@dataclass(frozen=True)
class ImportReport:
    zone: str
    serial: int
    rrsets: int
    records: int
    dropped_signer_records: int


@dataclass(frozen=True)
class SecondaryAdded:
    secondary: SecondaryView
    tsig_key: str
    # Shown once, when the key is made; None when the secondary reuses an existing key.
    tsig_secret: str | None


def key_state(timers: dict[str, Any]) -> str:
    """The key's current state: the last lifecycle step it has reached (rules/kasp.py)."""
    for state in ("removed", "retired", "active", "published"):
        if timers.get(state):
            return state
    return "created"


def _lag(zone: Zone, served: int | None) -> int | None:
    if served is None:
        return None
    return (zone.serial - served) % (1 << 32)


async def zone_view(tx: Tx | AsyncSession, zone: Zone, account: str | None = None) -> ZoneView:
    session = tx.session if isinstance(tx, Tx) else tx
    if account is None:
        account = (await public_ids(session, {zone.account_id}))[zone.account_id]
    keys = (await session.execute(
        select(ZoneKey).where(ZoneKey.zone_id == zone.id, ZoneKey.removed_at.is_(None))
        .order_by(ZoneKey.id))).scalars().all()
    key_views = [KeyView(
        id=key.public_id, role=key.role, algorithm=key.algorithm, key_tag=key.key_tag,
        state=key_state(key.timers), dnskey=key.dnskey,
        ds=[ds_from_dnskey(zone.name, key.dnskey)] if key.role in ("ksk", "csk") else [],
        timers=dict(key.timers), created_at=key.created_at) for key in keys]
    count = len((await session.execute(
        select(ZoneRRset.id).where(ZoneRRset.zone_id == zone.id))).all())
    return ZoneView(
        name=zone.name, account=account, dnssec=zone.dnssec, denial=zone.denial,
        policy=zone.policy, serial=zone.serial, serial_scheme=zone.serial_scheme,
        rrsets=count, keys=key_views,
        ds=[ds for key in key_views if key.state in ("published", "active") for ds in key.ds],
        secondaries=await _secondary_views(session, zone),
        created_at=zone.created_at, updated_at=zone.updated_at)


async def _secondary_views(session: Any, zone: Zone) -> list[SecondaryView]:
    rows = (await session.execute(
        select(Secondary, TsigKey.name).join(TsigKey, Secondary.tsig_key_id == TsigKey.id)
        .where(Secondary.zone_id == zone.id, Secondary.deleted_at.is_(None))
        .order_by(Secondary.id))).all()
    return [SecondaryView(
        address=row.address, port=row.port, tsig_key=key_name,
        served_serial=row.served_serial, served_checked_at=row.served_checked_at,
        last_transfer_at=row.last_transfer_at, last_transfer_kind=row.last_transfer_kind,
        last_transfer_serial=row.last_transfer_serial, last_notify_at=row.last_notify_at,
        last_notify_result=row.last_notify_result, lag=_lag(zone, row.served_serial))
        for row, key_name in rows]


def _rrset_view(row: ZoneRRset) -> RRsetView:
    return RRsetView(row.owner, row.rtype, row.ttl, list(row.records))


# --- shared checks -------------------------------------------------------------------------


def _zone_name(value: Any, errors: list[FieldError], field: str = "name") -> str | None:
    name = validate_domain_name(value, field, errors, min_labels=2)
    return None if name is None else name.ascii + "."


async def live_zone(session: AsyncSession, name: str) -> Zone | None:
    zone: Zone | None = (await session.execute(select(Zone).where(
        Zone.name == name, Zone.deleted_at.is_(None)))).scalar_one_or_none()
    return zone


async def _load(tx: Tx, name: Any, action: str = "write") -> Zone:
    return await _find(tx.session, tx.actor, name, action)


async def _find(session: AsyncSession, actor: Actor, name: Any, action: str) -> Zone:
    """The live zone for the actor; another tenant's zone reads as not found."""
    actor.require("zones", action)
    errors: list[FieldError] = []
    parsed = _zone_name(name.rstrip(".") if isinstance(name, str) else name, errors)
    if parsed is None:
        raise ValidationFailed(errors)
    zone = await live_zone(session, parsed)
    if zone is None:
        raise NotFound("no such zone")
    actor.require_object("zones", action, zone.account_id)
    return zone


async def _rows(tx: Tx | AsyncSession, zone: Zone) -> list[ZoneRRset]:
    session = tx.session if isinstance(tx, Tx) else tx
    return list((await session.execute(
        select(ZoneRRset).where(ZoneRRset.zone_id == zone.id).order_by(ZoneRRset.id)
    )).scalars().all())


def _as_rrset(row: ZoneRRset) -> RRset:
    return RRset(row.owner, row.rtype, row.ttl, tuple(row.records))


def _advance(tx: Tx, zone: Zone, at_least: int | None = None) -> None:
    current = zone.serial
    if at_least is not None and serial_gt(at_least, current):
        current = at_least  # a zone moved here keeps counting up from its old serial
    zone.serial = next_serial(current, cast(SerialScheme, zone.serial_scheme), tx.now)
    zone.updated_at = tx.now


def _publish(tx: Tx, zone: Zone) -> None:
    # One queued publication per serial; the publisher always signs what is stored now.
    tx.enqueue(PUBLISH_KIND, {"zone": zone.name}, dedupe_key=f"dns:{zone.name}:{zone.serial}")


async def _account_label(tx: Tx, zone: Zone) -> str:
    return (await public_ids(tx.session, {zone.account_id}))[zone.account_id]


async def _refuse_foreign_domain(tx: Tx, name: str, account: Account) -> None:
    """A name this registrar sponsors for another account (or below one) is not hosted for
    someone else: shared nameservers would otherwise answer for a domain its holder does not
    control."""
    labels = name.rstrip(".").split(".")
    for start in range(len(labels) - 1):
        domain = await live_domain(tx.session, ".".join(labels[start:]))
        if domain is not None and domain.account_id != account.id:
            raise Conflict(f"{'.'.join(labels[start:])} is registered through this registrar "
                           "by another account")
    for start in range(1, len(labels) - 1):
        enclosing = await live_zone(tx.session, ".".join(labels[start:]) + ".")
        if enclosing is not None and enclosing.account_id != account.id:
            raise Conflict(f"{enclosing.name} is hosted here for another account")


# --- create and delete ---------------------------------------------------------------------


@dataclass(frozen=True)
class ZoneCreate:
    """Host a zone: apex SOA and NS from the installation's `[dns]` settings, and with
    `dnssec` a KSK and a ZSK (ECDSAP256SHA256) sealed at rest, per `policy`.

    Raises PermissionDenied, ValidationFailed (every field at once), Conflict (hosted already,
    or the domain belongs to another account here)."""

    name: Any
    dnssec: Any = True
    policy: Any = None
    denial: Any = "nsec"
    serial_scheme: Any = None
    account: str | None = None

    async def run(self, tx: Tx) -> ZoneView:
        tx.actor.require("zones", "write")
        errors: list[FieldError] = []
        name = _zone_name(self.name, errors)
        if not isinstance(self.dnssec, bool):
            errors.append(FieldError("dnssec", "invalid", "must be true or false"))
        policy = self.policy if self.policy is not None else "default"
        if policy not in POLICIES:
            errors.append(FieldError("policy", "unknown",
                                     f"must be one of: {', '.join(POLICIES)}"))
        if self.denial not in DENIAL_KINDS:
            errors.append(FieldError("denial", "invalid",
                                     f"must be one of: {', '.join(DENIAL_KINDS)}"))
        scheme = self.serial_scheme or tx.services.settings.dns.serial_scheme
        if scheme not in SERIAL_SCHEMES:
            errors.append(FieldError("serial_scheme", "invalid",
                                     f"must be one of: {', '.join(SERIAL_SCHEMES)}"))
        account = await target_account(tx, self.account, "zones", errors,
                                       required="staff must name the account of the zone")
        if errors:
            raise ValidationFailed(errors)
        assert name is not None and account is not None
        if await live_zone(tx.session, name) is not None:
            raise Conflict(f"{name} is hosted here already")
        await _refuse_foreign_domain(tx, name, account)
        settings = tx.services.settings.dns
        zone = Zone(name=name, account_id=account.id, dnssec=self.dnssec, denial=self.denial,
                    policy=policy, serial=next_serial(0, cast(SerialScheme, scheme), tx.now),
                    serial_scheme=scheme, created_at=tx.now, updated_at=tx.now)
        tx.session.add(zone)
        await tx.session.flush()
        tx.session.add(ZoneRRset(zone_id=zone.id, owner=name, rtype="NS", ttl=APEX_NS_TTL,
                                 records=list(settings.nameservers), updated_at=tx.now))
        keys: list[str] = []
        if self.dnssec:
            for role in ("ksk", "zsk"):
                keys.append(await _add_key(tx, zone, role, ECDSAP256SHA256))
        tx.record("dns:zone:created", account=account.public_id, zone=name,
                  dnssec=self.dnssec, denial=self.denial, policy=policy, keys=keys,
                  serial=zone.serial)
        _publish(tx, zone)
        await tx.session.flush()
        return await zone_view(tx, zone, account.public_id)


async def _add_key(tx: Tx, zone: Zone, role: str, algorithm: int) -> str:
    new = new_zone_key(role, algorithm)
    public_id = new_public_id("key")
    data_key, secret = await tx.sealer.new_data_key(tx.session, tx.now)
    sealed = tx.sealer.seal(secret, new.private_der, f"zone_key:{public_id}")
    # A new zone's keys are published and sign at once: nothing depends on them yet; the
    # KSK's DS goes to the parent from here (DS automation) and the zone is secure once seen.
    tx.session.add(ZoneKey(
        public_id=public_id, zone_id=zone.id, role=role, algorithm=new.algorithm,
        key_tag=new.key_tag, dnskey=new.dnskey, data_key_id=data_key.id,
        private_sealed=sealed, timers={"created": tx.now.isoformat(),
                                       "published": tx.now.isoformat(),
                                       "active": tx.now.isoformat()},
        created_at=tx.now))
    return public_id


@dataclass(frozen=True)
class ZoneDelete:
    """Stop hosting a zone: it is no longer served or transferred; its rows stay as history
    and its keys are marked removed. Raises PermissionDenied, NotFound."""

    name: Any

    async def run(self, tx: Tx) -> None:
        zone = await _load(tx, self.name)
        zone.deleted_at = zone.updated_at = tx.now
        for key in (await tx.session.execute(select(ZoneKey).where(
                ZoneKey.zone_id == zone.id, ZoneKey.removed_at.is_(None)))).scalars():
            key.removed_at = tx.now
        for secondary in (await tx.session.execute(select(Secondary).where(
                Secondary.zone_id == zone.id, Secondary.deleted_at.is_(None)))).scalars():
            secondary.deleted_at = tx.now
        tx.record("dns:zone:deleted", account=await _account_label(tx, zone), zone=zone.name)
        tx.enqueue(PUBLISH_KIND, {"zone": zone.name}, dedupe_key=f"dns:{zone.name}:deleted:"
                   f"{zone.id}")


# --- RRsets --------------------------------------------------------------------------------


def _single_problems(problems: Sequence[FieldError]) -> list[FieldError]:
    """Whole-zone problems of one edited RRset (index 0), named by the edit's own fields."""
    named: list[FieldError] = []
    for problem in problems:
        parts = problem.field.split(".")
        field = ".".join(parts[2:]) if len(parts) > 2 else "records"
        named.append(FieldError(field, problem.code, problem.message))
    return named


@dataclass(frozen=True)
class RRsetPut:
    """Create or replace the RRset `owner`/`type` (owner relative to the zone, `@` for the
    apex) with `ttl` and `records` in presentation format. A PUT of what is stored already
    changes nothing and keeps the serial.

    Raises PermissionDenied, NotFound, ValidationFailed (the RRset and the whole-zone rules,
    every reason at once)."""

    zone: Any
    owner: Any
    type: Any
    ttl: Any
    records: Any

    async def run(self, tx: Tx) -> RRsetChange:
        zone = await _load(tx, self.zone)
        origin = zone.name.rstrip(".")
        rrset = validate_rrset(origin, self.owner, self.type, self.ttl, self.records)
        rows = await _rows(tx, zone)
        current = next((row for row in rows
                        if row.owner == rrset.owner and row.rtype == rrset.type), None)
        others = [_as_rrset(row) for row in rows if row is not current]
        problems = zone_problems(origin, [rrset, *others])
        if problems:
            raise ValidationFailed(_single_problems(problems))
        if current is not None and current.ttl == rrset.ttl \
                and list(current.records) == list(rrset.records):
            return RRsetChange(zone.name, zone.serial, _rrset_view(current), changed=False)
        if current is None:
            current = ZoneRRset(zone_id=zone.id, owner=rrset.owner, rtype=rrset.type,
                                ttl=rrset.ttl, records=list(rrset.records), updated_at=tx.now)
            tx.session.add(current)
        else:
            current.ttl, current.records, current.updated_at = (
                rrset.ttl, list(rrset.records), tx.now)
        _advance(tx, zone)
        tx.record("dns:rrset:put", account=await _account_label(tx, zone), zone=zone.name,
                  owner=rrset.owner, type=rrset.type, ttl=rrset.ttl,
                  records=len(rrset.records), serial=zone.serial)
        _publish(tx, zone)
        return RRsetChange(zone.name, zone.serial, _rrset_view(current), changed=True)


@dataclass(frozen=True)
class RRsetDelete:
    """Delete the RRset `owner`/`type`. The apex NS cannot go, nor an NS that glue or a DS
    depends on. Raises PermissionDenied, NotFound, ValidationFailed."""

    zone: Any
    owner: Any
    type: Any

    async def run(self, tx: Tx) -> RRsetChange:
        zone = await _load(tx, self.zone)
        origin = zone.name.rstrip(".")
        # Checked like a PUT of one placeholder record, so the owner and type read the same.
        errors: list[FieldError] = []
        try:
            probe = validate_rrset(origin, self.owner, self.type, 3600, ["placeholder"])
        except ValidationFailed as failed:
            errors = [e for e in failed.errors if not e.field.startswith("records")]
            if errors:
                raise ValidationFailed(errors) from None
            probe = None
        owner, rtype = _owner_and_type(origin, self.owner, self.type, probe)
        rows = await _rows(tx, zone)
        current = next((row for row in rows if row.owner == owner and row.rtype == rtype), None)
        if current is None:
            raise NotFound(f"no {rtype} RRset at {owner}")
        problems = zone_problems(origin, [_as_rrset(row) for row in rows if row is not current])
        if problems:
            raise ValidationFailed([FieldError("type", problem.code, problem.message)
                                    for problem in problems])
        await tx.session.delete(current)
        _advance(tx, zone)
        tx.record("dns:rrset:deleted", account=await _account_label(tx, zone), zone=zone.name,
                  owner=owner, type=rtype, serial=zone.serial)
        _publish(tx, zone)
        return RRsetChange(zone.name, zone.serial, None, changed=True)


def _owner_and_type(origin: str, owner: Any, rtype: Any, probe: RRset | None
                    ) -> tuple[str, str]:
    if probe is not None:
        return probe.owner, probe.type
    # The placeholder record did not parse for this type: check with a record of the type's
    # own shape instead; only the owner and type matter here.
    for sample in ("192.0.2.1", "2001:db8::1", "10 host.invalid.", "host.invalid.", '"x"',
                   "0 issue \"ca.invalid\"", "1 . alpn=h2", "1 2 3 4 5 6 7 8 9 10 11 12",
                   "1 1 1 " + "00" * 32, "0 0 1 " + "00" * 32,
                   "10 0 \"u\" \"\" \"\" host.invalid.", "0 0 0 host.invalid."):
        try:
            checked = validate_rrset(origin, owner, rtype, 3600, [sample])
        except ValidationFailed:
            continue
        return checked.owner, checked.type
    raise ValidationFailed([FieldError("type", "invalid", "cannot delete RRsets of this type")])


@dataclass(frozen=True)
class ZoneImport:
    """Replace a zone's RRsets with a zone file's. The file's SOA serial is honoured (the new
    serial is greater), and records the signer makes (DNSKEY, RRSIG, NSEC...) are left out.
    With `account`, a zone not hosted yet is created first (DNSSEC on).

    Raises PermissionDenied, NotFound, ValidationFailed (every RRset's problems at once)."""

    name: Any
    text: str
    account: str | None = None

    async def run(self, tx: Tx) -> ImportReport:
        errors: list[FieldError] = []
        name = _zone_name(self.name.rstrip(".") if isinstance(self.name, str) else self.name,
                          errors)
        if errors or name is None:
            raise ValidationFailed(errors)
        if self.account is not None and await live_zone(tx.session, name) is None:
            await ZoneCreate(name.rstrip("."), account=self.account).run(tx)
        zone = await _load(tx, name)
        content = read_zone_text(zone.name, self.text)
        rrsets = validate_rrsets(zone.name.rstrip("."), content.rrsets)
        for row in await _rows(tx, zone):
            await tx.session.delete(row)
        await tx.session.flush()
        tx.session.add_all(ZoneRRset(zone_id=zone.id, owner=rrset.owner, rtype=rrset.type,
                                     ttl=rrset.ttl, records=list(rrset.records),
                                     updated_at=tx.now) for rrset in rrsets)
        _advance(tx, zone, at_least=content.serial)
        records = sum(len(rrset.records) for rrset in rrsets)
        tx.record("dns:zone:imported", account=await _account_label(tx, zone), zone=zone.name,
                  rrsets=len(rrsets), records=records, dropped=content.dropped,
                  serial=zone.serial)
        _publish(tx, zone)
        return ImportReport(zone.name, zone.serial, len(rrsets), records, content.dropped)


# --- secondaries ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SecondaryAdd:
    """Let a secondary server transfer the zone (AXFR/IXFR with TSIG) and send it NOTIFY on
    every serial. `tsig_key` names the key: a new one is made and its secret returned once;
    an existing one is reused (its secret is not shown again). Staff only: the secondaries
    are the registrar's serving fleet.

    Raises PermissionDenied, NotFound, ValidationFailed, Conflict (that address already)."""

    zone: Any
    address: Any
    port: Any = DNS_PORT
    tsig_key: Any = None

    async def run(self, tx: Tx) -> SecondaryAdded:
        if not tx.actor.can("zones", "write"):
            raise PermissionDenied("only registrar staff add secondaries")
        zone = await _load(tx, self.zone)
        errors: list[FieldError] = []
        address = _address(self.address, errors)
        if isinstance(self.port, bool) or not isinstance(self.port, int) \
                or not 1 <= self.port <= 65535:
            errors.append(FieldError("port", "invalid", "must be a port number, 1 to 65535"))
        key_name = _key_name(self.tsig_key or f"{zone.name.rstrip('.')}.transfer", errors)
        if errors:
            raise ValidationFailed(errors)
        assert address is not None and key_name is not None
        exists = (await tx.session.execute(select(Secondary.id).where(
            Secondary.zone_id == zone.id, Secondary.address == address,
            Secondary.port == self.port, Secondary.deleted_at.is_(None)))).first()
        if exists:
            raise Conflict(f"{address} port {self.port} is a secondary of {zone.name} already")
        key = (await tx.session.execute(
            select(TsigKey).where(TsigKey.name == key_name))).scalar_one_or_none()
        secret: str | None = None
        if key is None:
            secret = generate_secret()
            data_key, data_secret = await tx.sealer.new_data_key(tx.session, tx.now)
            key = TsigKey(name=key_name, algorithm="hmac-sha256", data_key_id=data_key.id,
                          secret_sealed=tx.sealer.seal(data_secret, secret.encode(),
                                                       f"tsig_key:{key_name}"),
                          created_at=tx.now)
            tx.session.add(key)
            await tx.session.flush()
        secondary = Secondary(zone_id=zone.id, address=address, port=self.port,
                              tsig_key_id=key.id, created_at=tx.now)
        tx.session.add(secondary)
        await tx.session.flush()
        tx.record("dns:secondary:added", account=await _account_label(tx, zone),
                  zone=zone.name, address=address, port=self.port, tsig_key=key_name,
                  new_key=secret is not None)
        _publish(tx, zone)  # the publisher reloads its transfer list and sends NOTIFY
        views = await _secondary_views(tx.session, zone)
        view = next(v for v in views if v.address == address and v.port == self.port)
        return SecondaryAdded(view, key_name, secret)


def _address(value: Any, errors: list[FieldError]) -> str | None:
    try:
        return str(ip_address(value)) if isinstance(value, str) else None
    except ValueError:
        pass
    errors.append(FieldError("address", "invalid", "must be an IPv4 or IPv6 address"))
    return None


def _key_name(value: Any, errors: list[FieldError]) -> str | None:
    name = validate_domain_name(value.rstrip(".") if isinstance(value, str) else value,
                                "tsig_key", errors, min_labels=1)
    return None if name is None else name.ascii + "."


# --- reads ---------------------------------------------------------------------------------


async def zone_read(services: Services, actor: Actor, name: str) -> ZoneView:
    async with services.store.read() as session:
        return await zone_view(session, await _find(session, actor, name, "read"))


async def zone_list(services: Services, actor: Actor) -> list[ZoneView]:
    actor.require("zones", "read")
    async with services.store.read() as session:
        query = select(Zone).where(Zone.deleted_at.is_(None)).order_by(Zone.name)
        if not actor.can("zones", "read"):  # a customer sees the account's own zones
            query = query.where(Zone.account_id == actor.account_id)
        zones = (await session.execute(query)).scalars().all()
        labels = await public_ids(session, {zone.account_id for zone in zones})
        return [await zone_view(session, zone, labels[zone.account_id]) for zone in zones]


async def rrsets_read(services: Services, actor: Actor, name: str) -> list[RRsetView]:
    async with services.store.read() as session:
        zone = await _find(session, actor, name, "read")
        return [_rrset_view(row) for row in sorted(
            await _rows(session, zone), key=lambda row: (row.owner[::-1], row.rtype))]


async def zone_export(services: Services, actor: Actor, name: str) -> str:
    """The zone as a zone file: SOA (current serial) and every RRset, unsigned."""
    async with services.store.read() as session:
        zone = await _find(session, actor, name, "read")
        rows = await _rows(session, zone)
    settings = services.settings.dns
    rows.sort(key=lambda row: (row.owner != zone.name, row.owner, row.rtype))
    soa = soa_record(settings.nameservers[0], settings.hostmaster, zone.serial)
    return render_zone(zone.name, SOA_TTL, soa, (_as_rrset(row) for row in rows))
