"""Hosted DNS zones as flows: create, edit RRsets, import, delete, and the secondaries that
transfer them.

Every edit is checked by `rules/zones.py` (the RRset itself, then the whole zone, every error
at once), advances the SOA serial by the zone's scheme, leaves an event and queues a
publication (`dns:publish`, handled by dns/publisher.py: sign, journal, serve, NOTIFY). Zone
data is public DNS data; events still carry only names, types and counts. A zone's private
keys are sealed like personal data; a TSIG secret is sealed and shown once.

Only a zone whose name its account controls is served: `ZoneCreate` refuses names sponsored
here by another account and the registrar's own nameserver domain, and leaves a zone for a
name not sponsored here `unverified` until `ZoneVerify` sees its challenge at the delegated
servers. The sensitive changes (docs/architecture.md, "Sensitive changes") need a step-up in
the flow; every change at a zone's apex sends a notice to the account's owners.
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

from regshield.dns.parent import ParentUnknown, TxtCheck, check_delegated_txt
from regshield.dns.tsig import generate_secret
from regshield.dns.zonefile import ZoneFileContent, read_zone_text, render_zone, soa_record
from regshield.errors import Conflict, FieldError, NotFound, PermissionDenied, ValidationFailed
from regshield.flows.accounts import target_account
from regshield.flows.context import Actor, RequestContext
from regshield.flows.domains import need_step_up
from regshield.flows.runner import Tx
from regshield.flows.zone_control import challenge_token
from regshield.flows.zone_keys import (
    POLICIES,
    PUBLISH_KIND,
    advance_keys,
    find_zone,
    parent_servers_for,
    publish,
)
from regshield.notify.messages import Change
from regshield.notify.requests import notice, to_account_owners
from regshield.rules.addresses import Network, destination_problem
from regshield.rules.ds import ds_text
from regshield.rules.names import validate_domain_name
from regshield.rules.zones import (
    REPLACE_THRESHOLD,
    SERIAL_SCHEMES,
    RRset,
    SerialScheme,
    apex_types_changed,
    challenge_owner,
    next_serial,
    replaced_fraction,
    reserved_for_registrar,
    serial_gt,
    validate_rrset,
    validate_rrset_key,
    validate_rrsets,
    zone_problems,
)
from regshield.security.keyring import KeyRing
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
class ChallengeView:
    """The TXT record that proves control of a zone, to publish at its current servers."""

    owner: str
    type: str
    value: str


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
    state: str
    verified_at: datetime | None
    challenge: ChallengeView | None
    ds_held: list[str]


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


def challenge_of(keyring: KeyRing, zone: Zone, account: str) -> ChallengeView | None:
    if zone.state != "unverified":
        return None
    return ChallengeView(challenge_owner(zone.name), "TXT",
                         challenge_token(keyring, zone.name, account))


async def zone_view(tx: Tx | AsyncSession, zone: Zone, account: str | None = None,
                    keyring: KeyRing | None = None) -> ZoneView:
    session = tx.session if isinstance(tx, Tx) else tx
    if isinstance(tx, Tx):
        keyring = tx.services.keyring
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
        created_at=zone.created_at, updated_at=zone.updated_at, state=zone.state,
        verified_at=zone.verified_at,
        challenge=challenge_of(keyring, zone, account) if keyring is not None else None,
        ds_held=list(zone.ds_held))


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


async def actor_may_edit_zone(services: Services, actor: Actor, name: str, *,
                              creating: bool = False) -> bool:
    """Whether `actor` may edit the hosted zone `name` (absolute): what a flow's `prepare`
    checks before it reads a large file or asks DNS servers for it (`run` checks again, and
    refuses). With `creating`, a zone not hosted yet counts when the actor may host zones."""
    if not actor.can_any("zones", "write"):
        return False
    async with services.store.read() as session:
        zone = await live_zone(session, name)
    if zone is None:
        return creating
    return actor.can("zones", "write", zone.account_id)


async def _load(tx: Tx, name: Any, *, editing: bool = True) -> Zone:
    """The zone to change; a suspended one (its name is registered here by another account)
    is not edited any more, only exported or deleted."""
    zone = await find_zone(tx.session, tx.actor, name, "write")
    if editing and zone.state == "suspended":
        raise Conflict(f"{zone.name} is suspended: the name is registered here by another "
                       "account; the zone can only be exported or deleted")
    return zone


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
        # An unverified zone proves nothing yet: it does not keep anyone else out.
        if enclosing is not None and enclosing.account_id != account.id \
                and enclosing.state != "unverified":
            raise Conflict(f"{enclosing.name} is hosted here for another account")


def _apex_notice(tx: Tx, zone: Zone, account: str, action: str, types: Sequence[str]) -> None:
    """Every change at a zone's apex (its NS, MX, SPF and the like) is told to the account's
    owners: whoever holds the apex decides where the whole name's mail and delegation go."""
    notice(tx, change=Change.ZONE_APEX, recipients=[to_account_owners(account)],
           details={"zone": zone.name, "action": action, "types": list(types)})


async def _own_domain(tx: Tx, name: str, account: Account) -> bool:
    """Whether `name` or a name above it is a domain this registrar sponsors for `account`."""
    labels = name.rstrip(".").split(".")
    for start in range(len(labels) - 1):
        domain = await live_domain(tx.session, ".".join(labels[start:]))
        if domain is not None and domain.account_id == account.id:
            return True
    return False


# --- create and delete ---------------------------------------------------------------------


@dataclass(frozen=True)
class ZoneCreate:
    """Host a zone: apex SOA and NS from the installation's `[dns]` settings, and with
    `dnssec` a KSK and a ZSK (ECDSAP256SHA256) sealed at rest, per `policy`.

    Who controls the name decides whether it is served at once: a zone at or below a domain
    this registrar sponsors for the same account is `active`; one created by registrar staff
    (or the system) too; any other is stored `unverified`, with a TXT challenge to publish at
    the zone's current servers (`ZoneVerify`), and not served until then. The zone of a domain
    sponsored here needs a step-up (its DS follows the zone's keys: flows/zone_keys.py). The
    domain of the registrar's own nameservers is never hosted for a customer.

    Raises PermissionDenied (StepUpRequired; the registrar's nameserver domain),
    ValidationFailed (every field at once), Conflict (hosted already, or the name or an
    enclosing one belongs to another account here)."""

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
        # Each value is checked to be text before it is looked up: a flow is also called from
        # the CLI, and a list or an object is no key of a table.
        policy = self.policy if self.policy is not None else "default"
        if not isinstance(policy, str) or policy not in POLICIES:  # flows/zone_keys.py
            errors.append(FieldError("policy", "unknown",
                                     f"must be one of: {', '.join(sorted(POLICIES))}"))
        if not isinstance(self.denial, str) or self.denial not in DENIAL_KINDS:
            errors.append(FieldError("denial", "invalid",
                                     f"must be one of: {', '.join(DENIAL_KINDS)}"))
        scheme = self.serial_scheme or tx.services.settings.dns.serial_scheme
        if not isinstance(scheme, str) or scheme not in SERIAL_SCHEMES:
            errors.append(FieldError("serial_scheme", "invalid",
                                     f"must be one of: {', '.join(SERIAL_SCHEMES)}"))
        account = await target_account(tx, self.account, "zones", errors,
                                       required="staff must name the account of the zone")
        if errors:
            raise ValidationFailed(errors)
        assert name is not None and account is not None
        settings = tx.services.settings.dns
        staff = tx.actor.can("zones", "write")  # registrar-wide: staff or the system
        if not staff and reserved_for_registrar(name, settings.nameservers):
            raise PermissionDenied(f"{name} holds the registrar's own nameservers: it is "
                                   "hosted by the registrar only")
        await _refuse_foreign_domain(tx, name, account)
        existing = await live_zone(tx.session, name)
        if existing is not None and existing.account_id != account.id \
                and existing.state in ("unverified", "suspended"):
            # Never proved, or the name is now registered here by this account: it does not
            # keep the name from whoever controls it (a squatter could otherwise hold any name
            # by asking first). Its rows stay, as any deleted zone's.
            existing.deleted_at = existing.updated_at = tx.now
            tx.record("dns:zone:deleted", account=await _account_label(tx, existing),
                      zone=name, reason=f"replaced_while_{existing.state}")
            await tx.session.flush()
        elif existing is not None:
            raise Conflict(f"{name} is hosted here already")
        if await live_domain(tx.session, name.rstrip(".")) is not None:
            need_step_up(tx, "hosting the zone of a registered domain")
        verified = staff or await _own_domain(tx, name, account)
        zone = Zone(name=name, account_id=account.id, dnssec=self.dnssec, denial=self.denial,
                    policy=policy, serial=next_serial(0, cast(SerialScheme, scheme), tx.now),
                    serial_scheme=scheme, revision=1, key_plan={}, created_at=tx.now,
                    updated_at=tx.now, state="active" if verified else "unverified",
                    verified_at=tx.now if verified else None, ds_owned=[], ds_held=[])
        tx.session.add(zone)
        await tx.session.flush()
        tx.session.add(ZoneRRset(zone_id=zone.id, owner=name, rtype="NS", ttl=APEX_NS_TTL,
                                 records=list(settings.nameservers), revision=zone.revision,
                                 updated_at=tx.now))
        tx.record("dns:zone:created", account=account.public_id, zone=name,
                  dnssec=self.dnssec, denial=self.denial, policy=policy, serial=zone.serial,
                  state=zone.state)
        if self.dnssec:
            await advance_keys(tx, zone, None)  # the policy's first keys
        publish(tx, zone)
        await tx.session.flush()
        return await zone_view(tx, zone, account.public_id)


@dataclass(frozen=True)
class ZoneDelete:
    """Stop hosting a zone: it is no longer served or transferred; its rows stay as history
    and its keys are marked removed. Needs a step-up (the name stops resolving, and for a
    domain sponsored here its DS would point at keys nobody serves); the account's owners
    get a notice. Raises PermissionDenied (StepUpRequired), NotFound."""

    name: Any

    async def run(self, tx: Tx) -> None:
        zone = await _load(tx, self.name, editing=False)
        need_step_up(tx, "deleting a hosted zone")
        zone.deleted_at = zone.updated_at = tx.now
        for key in (await tx.session.execute(select(ZoneKey).where(
                ZoneKey.zone_id == zone.id, ZoneKey.removed_at.is_(None)))).scalars():
            key.removed_at = tx.now
        for secondary in (await tx.session.execute(select(Secondary).where(
                Secondary.zone_id == zone.id, Secondary.deleted_at.is_(None)))).scalars():
            secondary.deleted_at = tx.now
        account = await _account_label(tx, zone)
        tx.record("dns:zone:deleted", account=account, zone=zone.name)
        _apex_notice(tx, zone, account, "deleted", ["SOA", "NS"])
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

    Raises PermissionDenied (StepUpRequired for the apex NS), NotFound, ValidationFailed (the
    RRset and the whole-zone rules, every reason at once), Conflict (suspended)."""

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
        apex = rrset.owner == zone.name
        if apex and rrset.type == "NS":
            need_step_up(tx, "changing a zone's apex NS records")
        _advance(tx, zone)
        current = _write(tx, zone, stored, rrset)
        account = await _account_label(tx, zone)
        tx.record("dns:rrset:put", account=account, zone=zone.name,
                  owner=rrset.owner, type=rrset.type, ttl=rrset.ttl,
                  records=len(rrset.records), serial=zone.serial)
        if apex:
            _apex_notice(tx, zone, account, "changed", [rrset.type])
        publish(tx, zone)
        return RRsetChange(zone.name, zone.serial, _rrset_view(current), changed=True)


@dataclass(frozen=True)
class RRsetDelete:
    """Delete the RRset `owner`/`type`. The apex NS cannot go, nor an NS that glue or a DS
    depends on. Raises PermissionDenied (StepUpRequired for the apex NS), NotFound,
    ValidationFailed, Conflict (suspended)."""

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
        apex = owner == zone.name
        if apex and rtype == "NS":
            need_step_up(tx, "changing a zone's apex NS records")
        _advance(tx, zone)
        _write(tx, zone, current, None)
        account = await _account_label(tx, zone)
        tx.record("dns:rrset:deleted", account=account, zone=zone.name,
                  owner=owner, type=rtype, serial=zone.serial)
        if apex:
            _apex_notice(tx, zone, account, "deleted", [rtype])
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

    An import that would change or remove more than 30 % of the zone's RRsets is refused
    without `force` (the octodns safety rule, rules/zones.py `replaced_fraction`); with it, and
    for one that changes the apex NS, it needs a step-up. A change at the apex sends a notice.

    Raises PermissionDenied (StepUpRequired), NotFound, ValidationFailed (every RRset's
    problems at once; `too_many_changes`)."""

    name: Any
    text: str
    account: str | None = None
    force: bool = False

    async def prepare(self, services: Services, context: Any, actor: Actor
                      ) -> ZoneFileRead | None:
        """Read and check the file in a worker thread before the transaction opens: a large
        file takes seconds, which must hold up neither the event loop (HTTP and DNS answers)
        nor the write lock. Its refusal waits for `run`, after the permission checks; a file
        for a zone the actor may not edit is not read at all."""
        name = self._name([])
        if name is None or not await actor_may_edit_zone(services, actor, name,
                                                        creating=self.account is not None):
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
        apex_types = await _import_guard(tx, zone, rrsets, self.force)
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
        account = await _account_label(tx, zone)
        tx.record("dns:zone:imported", account=account, zone=zone.name,
                  rrsets=len(rrsets), records=records, dropped=content.dropped,
                  serial=zone.serial, forced=self.force)
        if apex_types:
            _apex_notice(tx, zone, account, "imported", apex_types)
        publish(tx, zone)
        return ImportReport(zone.name, zone.serial, len(rrsets), records, content.dropped)


async def _import_guard(tx: Tx, zone: Zone, rrsets: Sequence[RRset], force: bool
                        ) -> list[str]:
    """Refuse an import that replaces too much without `force`; ask a step-up for a forced one
    and for one that changes the apex NS. Returns the apex types the import changes."""
    before = {(row.owner, row.rtype): _as_rrset(row) for row in await _rows(tx, zone)}
    after = {(rrset.owner, rrset.type): rrset for rrset in rrsets}
    fraction = replaced_fraction(before, after)
    if fraction > REPLACE_THRESHOLD:
        if not force:
            raise ValidationFailed([FieldError("force", "too_many_changes", (
                f"the import changes or removes {fraction:.0%} of the zone's {len(before)} "
                f"RRsets, more than {REPLACE_THRESHOLD:.0%}: send force: true (with a "
                "one-time code) to replace them"))])
        need_step_up(tx, "an import that replaces most of a zone")
    apex_types = apex_types_changed(zone.name, before, after)
    if "NS" in apex_types:
        need_step_up(tx, "changing a zone's apex NS records")
    return apex_types


# --- proof of control ----------------------------------------------------------------------


@dataclass(frozen=True)
class ZoneVerify:
    """Serve a zone that waits for proof of control: its challenge TXT record must be served
    by every authoritative server the parent zone delegates it to, each asked directly
    (dns/parent.py `check_delegated_txt`, in `prepare`, before the transaction). A zone that
    is active already is left as it is.

    Raises PermissionDenied, NotFound, Conflict (suspended: the name is registered here by
    another account), ValidationFailed (`challenge`: not seen, with each server's answer)."""

    name: Any

    async def prepare(self, services: Services, context: RequestContext, actor: Actor
                      ) -> TxtCheck | str:
        errors: list[FieldError] = []
        name = _zone_name(self.name.rstrip(".") if isinstance(self.name, str) else self.name,
                          errors)
        if name is None:
            return "the zone name is not valid"
        if not await actor_may_edit_zone(services, actor, name):
            return "not asked: the zone is not one this credential may edit"
        dns_settings = services.settings.dns
        resolver = dns_settings.resolver
        try:
            return await check_delegated_txt(
                name, challenge_owner(name), parent_servers_for(services, name),
                resolver=(resolver.host, resolver.port) if resolver else None,
                port=dns_settings.authoritative_port)
        except ParentUnknown as exc:
            return str(exc)

    async def run(self, tx: Tx) -> ZoneView:
        zone = await _load(tx, self.name, editing=False)
        account = await _account_label(tx, zone)
        if zone.state == "suspended":
            raise Conflict(f"{zone.name} is registered here by another account: it cannot "
                           "be served for this one")
        if zone.state == "active":
            return await zone_view(tx, zone, account)
        challenge = challenge_of(tx.services.keyring, zone, account)
        assert challenge is not None
        check = tx.prepared
        if isinstance(check, TxtCheck):
            reasons = check.missing(challenge.value)
        else:  # why the servers could not be found, or the flow run without `prepare`
            reasons = [check if isinstance(check, str) else "the servers were not asked"]
        if reasons:
            raise ValidationFailed([FieldError("challenge", "not_seen", (
                f"the TXT record {challenge.owner} \"{challenge.value}\" was not served by "
                f"every server of {zone.name}: {'; '.join(reasons)}"))])
        zone.state, zone.verified_at, zone.updated_at = "active", tx.now, tx.now
        tx.record("dns:zone:verified", account=account, zone=zone.name,
                  servers=len(check.servers) if isinstance(check, TxtCheck) else 0)
        publish(tx, zone)
        return await zone_view(tx, zone, account)


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
            data_key_id, data_secret = await tx.sealer.new_data_key(tx.session, tx.now)
            key = TsigKey(name=key_name, algorithm="hmac-sha256", data_key_id=data_key_id,
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
        return await zone_view(session, await find_zone(session, actor, name, "read"),
                               keyring=services.keyring)


async def zone_list(services: Services, actor: Actor) -> list[ZoneView]:
    actor.require("zones", "read")
    async with services.store.read() as session:
        query = select(Zone).where(Zone.deleted_at.is_(None)).order_by(Zone.name)
        if not actor.can("zones", "read"):  # a customer sees the account's own zones
            query = query.where(Zone.account_id == actor.account_id)
        zones = (await session.execute(query)).scalars().all()
        labels = await public_ids(session, {zone.account_id for zone in zones})
        return [await zone_view(session, zone, labels[zone.account_id], services.keyring)
                for zone in zones]


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
