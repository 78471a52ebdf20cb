"""A hosted zone's DNSSEC keys through their lifecycle, as flows.

`ZoneKeysAdvance` runs the zone's key plan (rules/kasp.py) at the current time: it records each
step of each key as an event, generates the keys the plan asks for (sealed at rest), keeps the
plan the publisher signs by (`Zone.key_plan`), and for a domain this registrar sponsors sends
the DS set the zone wants to the registry (EPP secDNS, through `DsSet(hosted_zone=True)`, the
one change a registry lock lets through). Only DS records regshield put at the parent
(`Zone.ds_owned`, or the DS of the zone's own keys) are ever replaced that way: a DS of
another provider holds the submission (`Zone.ds_held`, an event and a notice) until the owner
confirms with a step-up (`ZoneDsTakeover`). A DS is never assumed to have arrived: the caller
checks every parent server (dns/parent.py) and passes what it saw. `ZoneKeyRollover` starts a
manual rollover and `ZoneKeyCompromised` an emergency one; both need a step-up.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence
from dataclasses import dataclass, fields, replace
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from regshield.dns.parent import check_parent_ds
from regshield.dns.zonekeys import ROLE_FLAGS, new_zone_key
from regshield.dnssec.seal import seal_private_key
from regshield.errors import FieldError, NotFound, ValidationFailed
from regshield.flows.context import Actor, RequestContext, system_actor
from regshield.flows.domains import DsSet, need_step_up
from regshield.flows.runner import Tx, run_flow
from regshield.flows.zone_control import PUBLISH_KIND, publish
from regshield.notify.messages import Change
from regshield.notify.requests import notice, to_account_owners
from regshield.rules.ds import ds_text, parse_ds
from regshield.rules.kasp import KeyState, Plan, Policy, apply_plan, plan, request_rollover
from regshield.rules.names import validate_domain_name
from regshield.security.tokens import new_public_id
from regshield.services import Services
from regshield.store.models import Zone, ZoneKey
from regshield.store.queries.accounts import public_ids
from regshield.store.queries.domains import live_domain
from regshield.store.queries.zones import live_zone

log = structlog.get_logger("regshield.dnssec")
POLICIES: dict[str, Policy] = {"default": Policy()}
__all__ = ["PUBLISH_KIND", "publish"]  # where the zone flows and the tests find them
_TIMESTAMPS = tuple(f.name for f in fields(KeyState)
                    if f.name not in ("id", "role", "algorithm", "key_tag", "compromised"))


async def find_zone(session: AsyncSession, actor: Actor, name: Any, action: str) -> Zone:
    """The live zone for the actor; another tenant's zone reads as not found."""
    actor.require("zones", action)
    errors: list[FieldError] = []
    parsed = validate_domain_name(name.rstrip(".") if isinstance(name, str) else name,
                                  "name", errors, min_labels=2)
    if parsed is None:
        raise ValidationFailed(errors)
    zone = await live_zone(session, parsed.ascii + ".")
    if zone is None:
        raise NotFound("no such zone")
    actor.require_object("zones", action, zone.account_id)
    return zone


async def add_zone_key(tx: Tx, zone: Zone, role: str, algorithm: int,
                       timers: dict[str, Any]) -> str:
    """A new key pair for the zone: made in the PKCS#11 token when one is configured (the
    private key never leaves it), else here, its private key sealed like personal data."""
    public_id = new_public_id("key")
    row = ZoneKey(public_id=public_id, zone_id=zone.id, role=role,
                  timers={"created": tx.now.isoformat(), **timers}, created_at=tx.now)
    if tx.services.settings.dns.hsm_token is not None:
        held = tx.services.hsm().generate_key(public_id.encode(), algorithm, ROLE_FLAGS[role],
                                              label=public_id)
        row.algorithm, row.key_tag, row.dnskey = held.algorithm, held.key_tag, \
            held.dnskey.to_text()
        row.hsm_label = public_id
    else:
        new = new_zone_key(role, algorithm)
        data_key_id, secret = await tx.sealer.new_data_key(tx.session, tx.now)
        row.algorithm, row.key_tag, row.dnskey = new.algorithm, new.key_tag, new.dnskey
        row.data_key_id = data_key_id
        row.private_sealed = seal_private_key(secret, new.private_der, public_id)
    tx.session.add(row)
    return public_id


def policy_of(zone: Zone) -> Policy:
    return POLICIES.get(zone.policy, POLICIES["default"])


def key_state(row: ZoneKey) -> KeyState:
    timers = row.timers
    moments: dict[str, datetime | None] = {
        name: datetime.fromisoformat(timers[name]) if timers.get(name) else None
        for name in _TIMESTAMPS}
    created = moments.pop("created") or row.created_at
    return KeyState(id=row.public_id, role=row.role, algorithm=row.algorithm,  # type: ignore[arg-type]
                    key_tag=row.key_tag, created=created,
                    compromised=bool(timers.get("compromised")), **moments)


def _timers(state: KeyState) -> dict[str, Any]:
    timers: dict[str, Any] = {name: getattr(state, name).isoformat()
                              for name in _TIMESTAMPS if getattr(state, name) is not None}
    if state.compromised:
        timers["compromised"] = True
    return timers


def plan_document(result: Plan) -> dict[str, Any]:
    return {
        "dnskey_set": list(result.dnskey_set),
        "dnskey_signers": list(result.dnskey_signers),
        "data_signers": list(result.data_signers),
        "ds_wanted": list(result.ds_wanted),
        "check_parent": result.check_parent,
        "cds": None if result.cds is None else {"keys": list(result.cds.keys),
                                                "delete": result.cds.delete},
        "next_event_at": result.next_event_at.isoformat() if result.next_event_at else None,
    }


@dataclass(frozen=True)
class KeysAdvanced:
    zone: str
    transitions: list[str]
    generated: list[str]
    ds_submitted: list[str]
    check_parent: bool
    next_event_at: datetime | None
    ds_operation: str | None


async def _zone(tx: Tx, name: str) -> Zone:
    zone = await live_zone(tx.session, name)
    if zone is None:
        raise NotFound("no such zone")
    return zone


async def _key_rows(tx: Tx, zone: Zone) -> list[ZoneKey]:
    return list((await tx.session.execute(select(ZoneKey).where(
        ZoneKey.zone_id == zone.id, ZoneKey.removed_at.is_(None)).order_by(ZoneKey.id)
    )).scalars().all())


async def advance_keys(tx: Tx, zone: Zone, parent_ds_seen: bool | None) -> KeysAdvanced:
    """Run the key plan until it settles (new keys are planned again at once)."""
    policy = policy_of(zone)
    recorded: list[str] = []
    generated: list[str] = []
    submitted: list[str] = []
    account = await _account(tx, zone)
    cds_before = (zone.key_plan or {}).get("cds")
    for _ in range(4):
        rows = await _key_rows(tx, zone)
        states = [key_state(row) for row in rows]
        result = plan(policy, states, tx.now, parent_ds_seen=parent_ds_seen)
        by_id = {row.public_id: row for row in rows}
        for state in apply_plan(states, result):
            by_id[state.id].timers = _timers(state)
        for transition in result.transitions:
            row = by_id[transition.key_id]
            recorded.append(f"{transition.key_id}:{transition.field}")
            tx.record(transition.event, account=account, zone=zone.name,
                      key=transition.key_id, role=row.role, key_tag=row.key_tag)
            if transition.field == "removed":
                row.removed_at = tx.now
        submitted += [*result.ds_submit, *result.ds_withdraw]
        zone.key_plan = plan_document(result)
        zone.keys_due_at = result.next_event_at
        if not result.generate:
            break
        for wanted in result.generate:
            key_id = await add_zone_key(tx, zone, wanted.role, wanted.algorithm, timers={})
            generated.append(key_id)
            tx.record("dnssec:key:created", account=account, zone=zone.name, key=key_id,
                      role=wanted.role, algorithm=wanted.algorithm)
        await tx.session.flush()
        parent_ds_seen = None  # what the parent showed is recorded; new keys start afresh
    operation = None
    if submitted:
        operation = await _submit_ds(tx, zone, list(result.ds_wanted))
    if recorded or generated:
        zone.updated_at = tx.now
        publish(tx, zone)
    if zone.key_plan.get("cds") != cds_before:
        await _publish_signal_zones(tx, zone)
    return KeysAdvanced(zone.name, recorded, generated, submitted, result.check_parent,
                        result.next_event_at, operation)


async def _publish_signal_zones(tx: Tx, zone: Zone) -> None:
    """The zones of the registrar's nameservers hosted here carry the zone's RFC 9615 signals
    (dns/publisher.py): they are published again when its CDS changes."""
    for nameserver in tx.services.settings.dns.nameservers:
        labels = nameserver.rstrip(".").split(".")
        for start in range(1, len(labels) - 1):
            signal_zone = await live_zone(tx.session, ".".join(labels[start:]) + ".")
            if signal_zone is not None and signal_zone.id != zone.id:
                publish(tx, signal_zone)
                break


async def _account(tx: Tx, zone: Zone) -> str:
    return (await public_ids(tx.session, {zone.account_id}))[zone.account_id]


def _ds_texts(values: Sequence[Any]) -> set[str]:
    """DS records (presentation text or the domain row's dicts) as comparable text."""
    return {parse_ds(value).to_text() for value in values}


async def _submit_ds(tx: Tx, zone: Zone, ds_wanted: Sequence[str]) -> str | None:
    """The DS set the zone wants (`ds_wanted`: key ids), to the registry, when this registrar
    sponsors the domain, and only while every DS at the parent is one regshield put there
    (`Zone.ds_owned`). Otherwise the submission is held: the DS records another provider's
    keys need stay, the zone records them in `ds_held` with an event and a notice, and the
    owner's stepped-up `ZoneDsTakeover` lets the submission go."""
    domain = await live_domain(tx.session, zone.name.rstrip("."))
    if domain is None or domain.account_id != zone.account_id or domain.state != "active":
        return None  # elsewhere: the parent reads CDS/CDNSKEY (rules/kasp.py `cds`)
    rows = {row.public_id: row for row in await _key_rows(tx, zone)}
    wanted = [ds_text(zone.name, rows[key_id].dnskey)
              for key_id in ds_wanted if key_id in rows]
    present = _ds_texts(domain.ds)
    # The DS of the zone's own keys counts as put there by regshield too (zones hosted before
    # `ds_owned` was kept): only regshield holds those keys.
    ours = _ds_texts(zone.ds_owned) | set((await _ds_by_key(tx.session, zone)).values())
    foreign = sorted(present - ours)
    if foreign:
        if foreign != sorted(zone.ds_held):
            zone.ds_held = foreign
            account = await _account(tx, zone)
            tx.record("dnssec:ds:held", account=account, zone=zone.name, domain=domain.name,
                      ds=foreign)
            notice(tx, change=Change.ZONE_DS_HELD, recipients=[to_account_owners(account)],
                   details={"zone": zone.name, "ds": foreign})
        return None
    zone.ds_held = []
    zone.ds_owned = sorted(ours & present)
    # The signer vouches for its own keys, whoever started the rollover (rules/registry_lock.py
    # lets exactly this change through a registry lock, and DsSet checks again that only DS
    # records regshield put there are replaced).
    signer = replace(tx, actor=system_actor("dnssec"))
    requested = await DsSet(domain.name, wanted, hosted_zone=True).run(signer)
    zone.ds_owned = sorted((_ds_texts(zone.ds_owned) & present) | _ds_texts(wanted))
    return requested.operation


@dataclass(frozen=True)
class ZoneDsTakeover:
    """The domain's owner confirms, with a step-up, that the DS records at the parent which
    regshield did not put there (another DNS provider's, listed in the zone's `ds_held`) may
    be replaced by the DS of the zone's own keys; the DS set goes to the registry at once.

    Raises PermissionDenied (StepUpRequired), NotFound, ValidationFailed (the zone is not
    signed, or its domain is not sponsored here for the account), Conflict."""

    zone: str

    async def run(self, tx: Tx) -> KeysAdvanced:
        zone = await find_zone(tx.session, tx.actor, self.zone, "write")
        domain = await live_domain(tx.session, zone.name.rstrip("."))
        if not zone.dnssec:
            raise ValidationFailed([FieldError("zone", "unsigned", "the zone is not signed")])
        if domain is None or domain.account_id != zone.account_id or domain.state != "active":
            raise ValidationFailed([FieldError("zone", "not_sponsored", (
                "the zone's domain is not registered here for this account: its parent reads "
                "the zone's CDS records instead"))])
        tx.actor.require_object("domains", "write", domain.account_id)
        need_step_up(tx, "replacing DS records regshield did not put at the parent")
        taken = sorted(_ds_texts(domain.ds) - _ds_texts(zone.ds_owned))
        zone.ds_owned = sorted(_ds_texts(zone.ds_owned) | _ds_texts(domain.ds))
        zone.ds_held = []
        tx.record("dnssec:ds:takeover_confirmed", account=await _account(tx, zone),
                  zone=zone.name, domain=domain.name, ds=taken)
        operation = await _submit_ds(tx, zone, list(zone.key_plan.get("ds_wanted", [])))
        return KeysAdvanced(zone.name, [], [], [], bool(zone.key_plan.get("check_parent")),
                            zone.keys_due_at, operation)


@dataclass(frozen=True)
class ZoneKeysAdvance:
    """Run a zone's key plan now (the key sweep, as a system actor). `parent_ds_seen`: what the
    check of every parent server found, None when it was not checked.
    Raises NotFound, PermissionDenied."""

    zone: str
    parent_ds_seen: bool | None = None

    async def run(self, tx: Tx) -> KeysAdvanced:
        tx.actor.require("zones", "write")
        zone = await _zone(tx, self.zone)
        if self.parent_ds_seen is not None:
            zone.parent_checked_at = tx.now
        if not zone.dnssec:
            raise ValidationFailed([FieldError("zone", "unsigned", "the zone is not signed")])
        return await advance_keys(tx, zone, self.parent_ds_seen)


@dataclass(frozen=True)
class ZoneKeyRollover:
    """Start a rollover of the zone's `role` key (ksk, zsk or csk) now; one at a time.
    Needs a step-up. Raises PermissionDenied, NotFound, ValidationFailed, Conflict."""

    zone: str
    role: Any

    async def run(self, tx: Tx) -> KeysAdvanced:
        zone = await find_zone(tx.session, tx.actor, self.zone, "write")
        if not zone.dnssec:
            raise ValidationFailed([FieldError("zone", "unsigned", "the zone is not signed")])
        need_step_up(tx, "rolling a DNSSEC key")
        states = [key_state(row) for row in await _key_rows(tx, zone)]
        wanted = request_rollover(policy_of(zone), states, self.role)
        key_id = await add_zone_key(tx, zone, wanted.role, wanted.algorithm, timers={})
        tx.record("dnssec:rollover:requested", account=await _account(tx, zone),
                  zone=zone.name, role=wanted.role, key=key_id)
        await tx.session.flush()
        result = await advance_keys(tx, zone, None)
        return replace(result, generated=[key_id, *result.generated])


@dataclass(frozen=True)
class ZoneKeyCompromised:
    """Mark a key compromised: an emergency rollover replaces it at once (rules/kasp.py).
    Needs a step-up. Raises PermissionDenied, NotFound, ValidationFailed."""

    zone: str
    key: Any

    async def run(self, tx: Tx) -> KeysAdvanced:
        zone = await find_zone(tx.session, tx.actor, self.zone, "write")
        need_step_up(tx, "declaring a DNSSEC key compromised")
        row = next((r for r in await _key_rows(tx, zone) if r.public_id == self.key), None)
        if row is None:
            raise NotFound("no such key in this zone")
        row.timers = {**row.timers, "compromised": True}
        tx.record("dnssec:key:compromised", account=await _account(tx, zone), zone=zone.name,
                  key=row.public_id, role=row.role, key_tag=row.key_tag)
        await tx.session.flush()
        return await advance_keys(tx, zone, None)


# --- the key sweep -------------------------------------------------------------------------


@dataclass(frozen=True)
class SweepResult:
    zone: str
    parent_ds_seen: bool | None
    advanced: KeysAdvanced | None
    error: str | None = None


async def keys_sweep(services: Services, *, zones: Collection[str] | None = None
                     ) -> list[SweepResult]:
    """Run the key plan of every signed zone that is due, checking the parent first when the
    plan waits for it. The check asks every parent server (dns/parent.py): the registry link's
    configured servers for a domain here, else the servers the parent zone's NS names."""
    now = services.clock.now()
    async with services.store.read() as session:
        query = select(Zone).where(Zone.deleted_at.is_(None), Zone.dnssec.is_(True))
        if zones is not None:
            query = query.where(Zone.name.in_(list(zones)))
        rows = (await session.execute(query)).scalars().all()
        due = [zone for zone in rows
               if zones is not None or zone.keys_due_at is None or zone.keys_due_at <= now
               or zone.key_plan.get("check_parent")]
        # Only a zone waiting for its parent needs its DS set and its parent's servers.
        checks: dict[str, tuple[list[str], Sequence[tuple[str, int]] | None]] = {}
        for zone in due:
            if zone.key_plan.get("check_parent"):
                ds = await _ds_by_key(session, zone)
                checks[zone.name] = (
                    [ds[key] for key in zone.key_plan.get("ds_wanted", []) if key in ds],
                    await _parent_servers(services, session, zone))
        names = [zone.name for zone in due]
    results: list[SweepResult] = []
    actor = system_actor("dnssec")
    for name in names:
        seen: bool | None = None
        try:
            if name in checks:
                wanted, servers = checks[name]
                seen = (await check_parent_ds(name, wanted, servers=servers)).seen
            advanced = await run_flow(services, actor, RequestContext("system"),
                                      ZoneKeysAdvance(name, seen))
            results.append(SweepResult(name, seen, advanced))
        except Exception as exc:  # one zone's trouble must not stop the others
            log.warning("dnssec.keys_sweep_failed", zone=name, error=type(exc).__name__)
            results.append(SweepResult(name, seen, None, type(exc).__name__))
    return results


async def _ds_by_key(session: AsyncSession, zone: Zone) -> dict[str, str]:
    rows = (await session.execute(select(ZoneKey).where(ZoneKey.zone_id == zone.id))).scalars()
    return {row.public_id: parse_ds(ds_text(zone.name, row.dnskey)).to_text() for row in rows
            if row.role in ("ksk", "csk")}


async def _parent_servers(services: Services, session: AsyncSession, zone: Zone
                          ) -> Sequence[tuple[str, int]] | None:
    domain = await live_domain(session, zone.name.rstrip("."))
    if domain is None:
        return None
    servers = getattr(services.registries.link(domain.registry_link), "parent_servers", ())
    return tuple(servers) or None


def parent_servers_for(services: Services, zone: str) -> Sequence[tuple[str, int]] | None:
    """The servers of `zone`'s parent when it is a TLD a registry link serves and the link
    names them (`parent_servers`); None: find them through the resolver."""
    labels = zone.rstrip(".").lower().split(".")
    if len(labels) != 2:
        return None
    link = next((link for link in services.registries.links.values()
                 if labels[1] in link.tlds), None)
    servers = getattr(link, "parent_servers", ()) if link is not None else ()
    return tuple(servers) or None


async def keys_forever(services: Services, interval_seconds: float = 300.0) -> None:
    while True:
        try:
            await keys_sweep(services)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("dnssec.keys_sweep_failed")
        await asyncio.sleep(interval_seconds)
