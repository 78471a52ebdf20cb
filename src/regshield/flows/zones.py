"""Hosted DNS zones as flows: create, edit RRsets, import, delete, and the secondaries that
transfer them.

Every edit is checked by `rules/zones.py` (the RRset itself, then the whole zone, every error
at once), advances the SOA serial by the zone's scheme, leaves an event and queues a
publication (`dns:publish`, handled by dns/publisher.py: sign, journal, serve, NOTIFY). Zone
data is public DNS data; events still carry only names, types and counts. A zone's private
keys are sealed like personal data; a TSIG secret is sealed and shown once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from ipaddress import ip_address
from typing import Any, cast

from sqlalchemy import Text, and_, func, or_, select
from sqlalchemy import cast as sql_cast
from sqlalchemy.ext.asyncio import AsyncSession

from regshield.dns.tsig import generate_secret
from regshield.dns.zonefile import ZoneFileContent, read_zone_text, render_zone, soa_record
from regshield.errors import Conflict, FieldError, NotFound, PermissionDenied, ValidationFailed
from regshield.flows.accounts import target_account
from regshield.flows.context import Actor
from regshield.flows.runner import Tx
from regshield.flows.zone_keys import (
    POLICIES,
    PUBLISH_KIND,
    advance_keys,
    find_zone,
    publish,
)
from regshield.rules.addresses import Network, destination_problem
from regshield.rules.ds import ds_text
from regshield.rules.names import validate_domain_name
from regshield.rules.zones import (
    SERIAL_SCHEMES,
    RRset,
    SerialScheme,
    next_serial,
    serial_gt,
    validate_rrset,
    validate_rrset_key,
    validate_rrsets,
    zone_problems,
)
from regshield.services import Services
from regshield.store.models import Account, Secondary, TsigKey, Zone, ZoneKey, ZoneRRset
from regshield.store.queries.accounts import public_ids
from regshield.store.queries.domains import live_domain
from regshield.store.queries.zones import live_zone

DENIAL_KINDS = ("nsec", "nsec3")
APEX_NS_TTL = 3600
SOA_TTL = 3600
DNS_PORT = 53
IMPORT_FLUSH_ROWS = 500  # rows an import writes per flush


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
    for state, timer in (("removed", "removed"), ("retired", "retired"),
                         ("retiring", "retire_active"), ("active", "active"),
                         ("ready", "ready"), ("published", "published")):
        if timers.get(timer):
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
        ds=[ds_text(zone.name, key.dnskey)] if key.role in ("ksk", "csk") else [],
        timers=dict(key.timers), created_at=key.created_at) for key in keys]
    count = (await session.execute(select(func.count()).select_from(ZoneRRset).where(
        ZoneRRset.zone_id == zone.id, sql_cast(ZoneRRset.records, Text) != "[]"))).scalar_one()
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


async def _load(tx: Tx, name: Any, action: str = "write") -> Zone:
    return await find_zone(tx.session, tx.actor, name, action)


async def _all_rows(tx: Tx | AsyncSession, zone: Zone) -> list[ZoneRRset]:
    """Every RRset row of the zone, deleted ones (no records) included."""
    session = tx.session if isinstance(tx, Tx) else tx
    return list((await session.execute(
        select(ZoneRRset).where(ZoneRRset.zone_id == zone.id).order_by(ZoneRRset.id)
    )).scalars().all())


async def _rows(tx: Tx | AsyncSession, zone: Zone) -> list[ZoneRRset]:
    return [row for row in await _all_rows(tx, zone) if row.records]


async def _neighbourhood(tx: Tx, zone: Zone, owner: str, also: Collection[str] = ()
                         ) -> list[ZoneRRset]:
    """The rows an edit at `owner` can affect under the whole-zone rules (rules/zones.py), so
    that an edit of a large zone does not read all of it: the owner's own rows, its ancestors
    up to the apex (delegations above it), its descendants (what a delegation here would
    occlude), the NS RRsets that name the owner or a descendant (what makes them glue), and
    the rows at `also` (the hosts an NS RRset being changed names)."""
    ancestors = []
    name = owner
    while name != zone.name and "." in name.rstrip("."):
        name = name.split(".", 1)[1]
        ancestors.append(name)
    escaped = owner.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    # The records are a JSON list of strings: a target appears as "name." in its text.
    records = sql_cast(ZoneRRset.records, Text)
    query = select(ZoneRRset).where(ZoneRRset.zone_id == zone.id, or_(
        ZoneRRset.owner.in_([owner, zone.name, *ancestors, *also]),
        ZoneRRset.owner.like(f"%.{escaped}", escape="\\"),
        and_(ZoneRRset.rtype == "NS", or_(records.like(f'%"{escaped}"%', escape="\\"),
                                          records.like(f'%.{escaped}"%', escape="\\")))),
    ).order_by(ZoneRRset.id)
    return list((await tx.session.execute(query)).scalars().all())


def _ns_hosts(records: Collection[str]) -> list[str]:
    return [record.lower() for record in records]


async def _neighbourhood_of_old_targets(tx: Tx, zone: Zone, rows: list[ZoneRRset],
                                       owner: str) -> list[ZoneRRset]:
    """The neighbourhoods of the hosts the owner's NS RRset names now: their glue may lose
    the NS RRset that keeps it."""
    known = {row.id for row in rows}
    targets = [record for row in rows if row.owner == owner and row.rtype == "NS"
               for record in _ns_hosts(row.records)]
    found: list[ZoneRRset] = []
    for target in targets:
        if not target.endswith(f".{zone.name}"):
            continue  # out of the zone: nothing here depends on it
        for row in await _neighbourhood(tx, zone, target):
            if row.id not in known and row.records:
                known.add(row.id)
                found.append(row)
    return found


def _write(tx: Tx, zone: Zone, row: ZoneRRset | None, rrset: RRset | None) -> ZoneRRset:
    """Store an RRset (None: delete it) under the zone's current revision."""
    if row is None:
        assert rrset is not None
        row = ZoneRRset(zone_id=zone.id, owner=rrset.owner, rtype=rrset.type, ttl=rrset.ttl,
                        records=list(rrset.records), revision=zone.revision,
                        updated_at=tx.now)
        tx.session.add(row)
        return row
    if rrset is None:
        row.records = []
    else:
        row.ttl, row.records = rrset.ttl, list(rrset.records)
    row.revision, row.updated_at = zone.revision, tx.now
    return row


def _as_rrset(row: ZoneRRset) -> RRset:
    return RRset(row.owner, row.rtype, row.ttl, tuple(row.records))


def _advance(tx: Tx, zone: Zone, at_least: int | None = None) -> None:
    current = zone.serial
    if at_least is not None and serial_gt(at_least, current):
        current = at_least  # a zone moved here keeps counting up from its old serial
    zone.serial = next_serial(current, cast(SerialScheme, zone.serial_scheme), tx.now)
    zone.revision += 1
    zone.updated_at = tx.now


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
        if policy not in POLICIES:  # flows/zone_keys.py
            errors.append(FieldError("policy", "unknown",
                                     f"must be one of: {', '.join(sorted(POLICIES))}"))
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
                    serial_scheme=scheme, revision=1, key_plan={}, created_at=tx.now,
                    updated_at=tx.now)
        tx.session.add(zone)
        await tx.session.flush()
        tx.session.add(ZoneRRset(zone_id=zone.id, owner=name, rtype="NS", ttl=APEX_NS_TTL,
                                 records=list(settings.nameservers), revision=zone.revision,
                                 updated_at=tx.now))
        tx.record("dns:zone:created", account=account.public_id, zone=name,
                  dnssec=self.dnssec, denial=self.denial, policy=policy, serial=zone.serial)
        if self.dnssec:
            await advance_keys(tx, zone, None)  # the policy's first keys
        publish(tx, zone)
        await tx.session.flush()
        return await zone_view(tx, zone, account.public_id)


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
        rows = await _neighbourhood(tx, zone, rrset.owner, _ns_hosts(
            rrset.records) if rrset.type == "NS" else ())
        if rrset.type == "NS":  # the hosts the NS RRset named before, whose glue may go
            rows += await _neighbourhood_of_old_targets(tx, zone, rows, rrset.owner)
        stored = next((row for row in rows
                       if row.owner == rrset.owner and row.rtype == rrset.type), None)
        current = stored if stored is not None and stored.records else None
        others = [_as_rrset(row) for row in rows if row is not stored and row.records]
        problems = zone_problems(origin, [rrset, *others])
        if problems:
            raise ValidationFailed(_single_problems(problems))
        if current is not None and current.ttl == rrset.ttl \
                and list(current.records) == list(rrset.records):
            return RRsetChange(zone.name, zone.serial, _rrset_view(current), changed=False)
        _advance(tx, zone)
        current = _write(tx, zone, stored, rrset)
        tx.record("dns:rrset:put", account=await _account_label(tx, zone), zone=zone.name,
                  owner=rrset.owner, type=rrset.type, ttl=rrset.ttl,
                  records=len(rrset.records), serial=zone.serial)
        publish(tx, zone)
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
        owner, rtype = validate_rrset_key(origin, self.owner, self.type)
        rows = [row for row in await _neighbourhood(tx, zone, owner) if row.records]
        if rtype == "NS":
            rows += await _neighbourhood_of_old_targets(tx, zone, rows, owner)
        current = next((row for row in rows if row.owner == owner and row.rtype == rtype), None)
        if current is None:
            raise NotFound(f"no {rtype} RRset at {owner}")
        problems = zone_problems(origin, [_as_rrset(row) for row in rows if row is not current])
        if problems:
            raise ValidationFailed([FieldError("type", problem.code, problem.message)
                                    for problem in problems])
        _advance(tx, zone)
        _write(tx, zone, current, None)
        tx.record("dns:rrset:deleted", account=await _account_label(tx, zone), zone=zone.name,
                  owner=owner, type=rtype, serial=zone.serial)
        publish(tx, zone)
        return RRsetChange(zone.name, zone.serial, None, changed=True)


@dataclass(frozen=True)
class ZoneFileRead:
    """A zone file read and checked for the zone `name` (`ZoneImport.prepare`): its content and
    RRsets, or why it was refused."""

    name: str
    content: ZoneFileContent | None
    rrsets: tuple[RRset, ...] | None
    refusal: ValidationFailed | None


def read_zone_file(name: str, text: str) -> ZoneFileRead:
    """Parse `text` as the zone file of `name` and check every RRset (rules/zones.py)."""
    try:
        content = read_zone_text(name, text)
        return ZoneFileRead(name, content, validate_rrsets(name.rstrip("."), content.rrsets),
                            None)
    except ValidationFailed as refusal:
        return ZoneFileRead(name, None, None, refusal)


@dataclass(frozen=True)
class ZoneImport:
    """Replace a zone's RRsets with a zone file's. The file's SOA serial is honoured (the new
    serial is greater), and records the signer makes (DNSKEY, RRSIG, NSEC...) are left out.
    With `account`, a zone not hosted yet is created first (DNSSEC on). A file is refused over
    `MAX_ZONE_FILE_RECORDS` records, or `MAX_GENERATE_RECORDS` made by `$GENERATE`
    (dns/zonefile.py).

    Raises PermissionDenied, NotFound, ValidationFailed (every RRset's problems at once)."""

    name: Any
    text: str
    account: str | None = None

    async def prepare(self, services: Services, context: Any) -> ZoneFileRead | None:
        """Read and check the file in a worker thread before the transaction opens: a large
        file takes seconds, which must hold up neither the event loop (HTTP and DNS answers)
        nor the write lock. Its refusal waits for `run`, after the permission checks."""
        name = self._name([])
        if name is None:
            return None
        return await asyncio.to_thread(read_zone_file, name, self.text)

    def _name(self, errors: list[FieldError]) -> str | None:
        return _zone_name(self.name.rstrip(".") if isinstance(self.name, str) else self.name,
                          errors)

    async def run(self, tx: Tx) -> ImportReport:
        errors: list[FieldError] = []
        name = self._name(errors)
        if errors or name is None:
            raise ValidationFailed(errors)
        if self.account is not None and await live_zone(tx.session, name) is None:
            await ZoneCreate(name.rstrip("."), account=self.account).run(tx)
        zone = await _load(tx, name)
        read = tx.prepared
        if not isinstance(read, ZoneFileRead) or read.name != zone.name:  # not prepared
            read = await asyncio.to_thread(read_zone_file, zone.name, self.text)
        if read.refusal is not None:
            raise read.refusal
        assert read.content is not None and read.rrsets is not None
        content, rrsets = read.content, read.rrsets
        _advance(tx, zone, at_least=content.serial)
        existing = {(row.owner, row.rtype): row for row in await _all_rows(tx, zone)}
        written = 0
        for rrset in rrsets:
            row = existing.pop((rrset.owner, rrset.type), None)
            if row is None or row.ttl != rrset.ttl or list(row.records) != list(rrset.records):
                _write(tx, zone, row, rrset)
                written += 1
                if written % IMPORT_FLUSH_ROWS == 0:
                    await tx.session.flush()  # a batch at a time: the event loop runs between
        for row in existing.values():
            if row.records:
                _write(tx, zone, row, None)
        records = sum(len(rrset.records) for rrset in rrsets)
        tx.record("dns:zone:imported", account=await _account_label(tx, zone), zone=zone.name,
                  rrsets=len(rrsets), records=records, dropped=content.dropped,
                  serial=zone.serial)
        publish(tx, zone)
        return ImportReport(zone.name, zone.serial, len(rrsets), records, content.dropped)


# --- secondaries ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SecondaryAdd:
    """Let a secondary server transfer the zone (AXFR/IXFR with TSIG) and send it NOTIFY on
    every serial. `tsig_key` names the key: a new one is made and its secret returned once;
    an existing one is reused (its secret is not shown again). Staff only: the secondaries
    are the registrar's serving fleet. The address must be public (rules/addresses.py)
    unless its network is in `[dns] allowed_secondary_networks`.

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
        address = _address(self.address, errors,
                           tx.services.settings.dns.allowed_secondary_networks)
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
        publish(tx, zone)  # the publisher reloads its transfer list and sends NOTIFY
        views = await _secondary_views(tx.session, zone)
        view = next(v for v in views if v.address == address and v.port == self.port)
        return SecondaryAdded(view, key_name, secret)


def _address(value: Any, errors: list[FieldError], allowed: Collection[Network]
             ) -> str | None:
    """The secondary's address: an IP address, public unless its network is allowed."""
    try:
        address = str(ip_address(value)) if isinstance(value, str) else None
    except ValueError:
        address = None
    if address is None:
        errors.append(FieldError("address", "invalid", "must be an IPv4 or IPv6 address"))
        return None
    problem = destination_problem(address, allowed)
    if problem is not None:
        errors.append(FieldError("address", "not_public", problem))
        return None
    return address


def _key_name(value: Any, errors: list[FieldError]) -> str | None:
    name = validate_domain_name(value.rstrip(".") if isinstance(value, str) else value,
                                "tsig_key", errors, min_labels=1)
    return None if name is None else name.ascii + "."


# --- reads ---------------------------------------------------------------------------------


async def zone_read(services: Services, actor: Actor, name: str) -> ZoneView:
    async with services.store.read() as session:
        return await zone_view(session, await find_zone(session, actor, name, "read"))


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
        zone = await find_zone(session, actor, name, "read")
        return [_rrset_view(row) for row in sorted(
            await _rows(session, zone), key=lambda row: (row.owner[::-1], row.rtype))]


async def zone_export(services: Services, actor: Actor, name: str) -> str:
    """The zone as a zone file: SOA (current serial) and every RRset, unsigned."""
    async with services.store.read() as session:
        zone = await find_zone(session, actor, name, "read")
        rows = await _rows(session, zone)
    settings = services.settings.dns
    rows.sort(key=lambda row: (row.owner != zone.name, row.owner, row.rtype))
    soa = soa_record(settings.nameservers[0], settings.hostmaster, zone.serial)
    return render_zone(zone.name, SOA_TTL, soa, (_as_rrset(row) for row in rows))
