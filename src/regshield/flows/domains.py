"""The domain lifecycle as flows: register, renew, nameservers, DS records, locks, transfer
codes, transfers, delete and restore.

Each flow checks who may act, validates every field at once, applies the local rules (the
status authority in rules/statuses.py refuses early what the registry would refuse), and
records a `DomainOperation` (flows/operations.py) that carries the change to the registry.
The domain row changes only when the registry confirms. Sensitive changes need a recent
second factor (security/step_up.py): nameservers, DS records, the registrant, transfer codes
and removing any lock.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import String, cast, select

from regshield.dns.lookup import LiveKeys, live_dnskeys
from regshield.errors import Conflict, FieldError, NotFound, PermissionDenied, ValidationFailed
from regshield.flows.accounts import target_account
from regshield.flows.context import Actor
from regshield.flows.operations import (
    holds_of,
    new_operation,
    place_registrant_lock,
    statuses_differ,
    store_holds,
)
from regshield.flows.runner import Tx
from regshield.policy.transfer import change_of_registrant_lock_end, transfer_policy
from regshield.registry.client import RegistryError
from regshield.registry.codec import Secret
from regshield.registry.commands import DomainCheck, DomainInfo
from regshield.registry.responses import DomainCheckData, DomainInfoData
from regshield.rules.ds import (
    DsRecord,
    ds_breakage,
    ds_problems,
    parse_ds,
    validate_ds,
    validate_ds_set,
)
from regshield.rules.names import DomainName, validate_domain_name, validate_nameservers
from regshield.rules.registry_lock import DomainLock, LockRefused, change_while_locked
from regshield.rules.statuses import Hold, HoldReason, Operation, place, refusal, release
from regshield.rules.text import check_xml_text
from regshield.security.step_up import require_step_up
from regshield.security.transfer_codes import (
    new_transfer_code,
    transfer_code_expiry,
    transfer_code_hash,
)
from regshield.services import Services
from regshield.store.models import Account, Contact, Domain, DomainOperation
from regshield.store.queries.accounts import account_by_reference, public_ids
from regshield.store.queries.contacts import contact_by_handle
from regshield.store.queries.domains import (
    list_domains,
    live_domain,
    open_operations,
    operation_by_public_id,
)
from regshield.store.queries.zones import live_zone

MAX_YEARS = 10
MAX_DS = 8
DS_LOOKUP_TIMEOUT = 3.0  # seconds for a customer's DNSKEY RRset, retries included


# --- views ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class OperationView:
    id: str
    kind: str
    state: str
    created_at: datetime
    completed_at: datetime | None
    cl_trid: str | None
    sv_trid: str | None
    result: dict[str, Any] | None

    @classmethod
    def of(cls, operation: DomainOperation) -> OperationView:
        return cls(operation.public_id, operation.kind, operation.state, operation.created_at,
                   operation.completed_at, operation.cl_trid, operation.sv_trid,
                   operation.result)


async def operations_read(services: Services, public_ids: Iterable[str]
                          ) -> list[OperationView]:
    """Registry operations by id, as they stand, for the flow that just started them (the
    ids come from its answer, never from a request)."""
    async with services.store.read() as session:
        found = [await operation_by_public_id(session, public_id) for public_id in public_ids]
    return [OperationView.of(operation) for operation in found if operation is not None]


@dataclass(frozen=True)
class DomainView:
    name: str
    unicode_name: str
    account: str
    state: str
    registry: str
    statuses: list[str]
    expires_at: datetime | None
    nameservers: list[str]
    ds: list[dict[str, Any]]
    registrant: str | None
    tech: str | None
    registrar_lock: bool
    update_lock: bool
    holds: list[str]
    transfer_code_expires_at: datetime | None
    created_at: datetime
    pending: list[OperationView]


async def domain_view(session: Any, domain: Domain, account_public_id: str | None = None
                      ) -> DomainView:
    if account_public_id is None:
        account_public_id = (await public_ids(session, {domain.account_id}))[domain.account_id]
    handles: dict[int, str] = {}
    for contact_id in (domain.registrant_id, domain.tech_id):
        if contact_id is not None:
            contact = await session.get(Contact, contact_id)
            if contact is not None:
                handles[contact_id] = contact.handle
    holds = holds_of(domain)
    reasons = {hold.reason for hold in holds}
    return DomainView(
        name=domain.name, unicode_name=domain.unicode_name, account=account_public_id,
        state=domain.state, registry=domain.registry_link,
        statuses=list(domain.registry_statuses), expires_at=domain.expires_at,
        nameservers=list(domain.nameservers), ds=list(domain.ds),
        registrant=handles.get(domain.registrant_id or 0),
        tech=handles.get(domain.tech_id or 0),
        registrar_lock=HoldReason.REGISTRAR_LOCK in reasons,
        update_lock=HoldReason.REGISTRAR_UPDATE_LOCK in reasons,
        holds=sorted(str(reason) for reason in reasons),
        transfer_code_expires_at=domain.transfer_code_expires_at,
        created_at=domain.created_at,
        pending=[OperationView.of(o) for o in await open_operations(session, [domain.id])])


@dataclass(frozen=True)
class Requested:
    """What a domain flow returns: the domain as it stands and the operation it started."""

    domain: DomainView
    operation: str | None


async def requested_answer(tx: Tx, domain: Domain, operation: DomainOperation | None) -> Requested:
    await tx.session.flush()
    return Requested(await domain_view(tx.session, domain),
                     operation.public_id if operation else None)


# --- shared checks -------------------------------------------------------------------------


def _name(value: Any, errors: list[FieldError]) -> DomainName | None:
    return validate_domain_name(value, "name", errors)


async def _contact(tx: Tx, handle: Any, field: str, account: Account | None,
                   errors: list[FieldError]) -> Contact | None:
    if handle is None:
        return None
    if not isinstance(handle, str) or not handle:
        errors.append(FieldError(field, "invalid", "must be a contact handle"))
        return None
    contact = await contact_by_handle(tx.session, handle)
    if contact is None or account is None or contact.account_id != account.id:
        # Another account's contact reads as unknown, like one that does not exist.
        errors.append(FieldError(field, "unknown_contact",
                                 f"no contact {handle[:32]!r} in this account"))
        return None
    return contact


def _years(value: Any, errors: list[FieldError]) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_YEARS:
        errors.append(FieldError("years", "out_of_range",
                                 f"must be a whole number of years from 1 to {MAX_YEARS}"))
        return 0
    return value


async def actor_may_change(services: Services, actor: Actor, name: DomainName) -> bool:
    """Whether `actor` may change the live domain `name`: what a flow's `prepare` checks
    before it asks a registry or DNS servers about it (`run` checks again, and refuses)."""
    if not actor.can_any("domains", "write"):
        return False
    async with services.store.read() as session:
        domain = await live_domain(session, name.ascii)
    return domain is not None and actor.can("domains", "write", domain.account_id)


async def _load(tx: Tx, name: str, action: str = "write") -> tuple[Domain, Account]:
    """The live domain for a change by the actor; another tenant's reads as not found."""
    tx.actor.require("domains", action)
    errors: list[FieldError] = []
    parsed = _name(name, errors)
    if parsed is None:
        raise ValidationFailed(errors)
    domain = await live_domain(tx.session, parsed.ascii)
    if domain is None:
        raise NotFound("no such domain")
    tx.actor.require_object("domains", action, domain.account_id)
    account = await tx.session.get(Account, domain.account_id)
    assert account is not None
    return domain, account


async def _no_open_operation(tx: Tx, domain: Domain) -> None:
    """One change at a time: the next is built on what the registry confirmed last."""
    pending = await open_operations(tx.session, [domain.id])
    if pending:
        raise Conflict(f"operation {pending[0].public_id} ({pending[0].kind}) is still "
                       f"{pending[0].state} at the registry; wait for it to finish")


def _active(domain: Domain) -> None:
    if domain.state != "active":
        raise Conflict(f"the domain is {domain.state.replace('_', ' ')}")


def _status_refusal(domain: Domain, operation: Operation, field: str, **changes: Any) -> None:
    reason = refusal(operation, domain.registry_statuses, **changes)
    if reason is not None:
        raise ValidationFailed([FieldError(field, "status_prohibits", reason)])


def need_step_up(tx: Tx, action: str) -> None:
    """Refuse `action` without a recent second factor (security/step_up.py), over the window
    the installation configured or the security policy's."""
    window = tx.security.step_up_window
    minutes = tx.services.settings.step_up_minutes
    if minutes is not None:
        window = timedelta(minutes=minutes)
    require_step_up(tx.actor, tx.now, window, action)


# --- register ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DomainRegister:
    """Register a domain: name, registrant (a contact handle), optional tech contact, years,
    nameservers. The registrar lock is on from the start (SAC044).

    Raises PermissionDenied, ValidationFailed (every field at once), Conflict (registered here
    already)."""

    name: Any
    registrant: Any
    years: Any = 1
    nameservers: Any = ()
    tech: Any = None
    account: str | None = None

    async def run(self, tx: Tx) -> Requested:
        tx.actor.require("domains", "write")
        errors: list[FieldError] = []
        name = _name(self.name, errors)
        link = None
        if name is not None:
            try:
                link = tx.services.registries.for_domain(name)
            except ValidationFailed as failed:
                errors += failed.errors
        years = _years(self.years, errors)
        hosts = validate_nameservers(list(self.nameservers) if isinstance(
            self.nameservers, list | tuple) else self.nameservers, "nameservers", errors)
        account = await target_account(tx, self.account, "domains", errors,
                                       required="staff must name the account of the domain")
        registrant = await _contact(tx, self.registrant, "registrant", account, errors)
        if self.registrant is None:
            errors.append(FieldError("registrant", "required", "a registrant contact is required"))
        tech = await _contact(tx, self.tech, "tech", account, errors)
        if errors:
            raise ValidationFailed(errors)
        assert name is not None and link is not None and account is not None
        if await live_domain(tx.session, name.ascii) is not None:
            raise Conflict(f"{name.ascii} is already registered through this registrar")
        domain = Domain(
            name=name.ascii, unicode_name=name.unicode, account_id=account.id,
            registry_link=link.name, state="pending_create",
            registrant_id=registrant.id if registrant else None,
            tech_id=tech.id if tech else None, nameservers=[], ds=[], holds=[],
            registry_statuses=[], created_at=tx.now, updated_at=tx.now)
        holds = {Hold.of(HoldReason.REGISTRAR_LOCK)}
        policy = transfer_policy(tx.now, tx.services.settings.tpr_effective)
        if policy.restriction_mandatory:  # TPR: no transfer in the first days, lock or not
            until = tx.now + policy.after_registration_restriction
            holds.add(Hold.of(HoldReason.TRANSFER_LOCK_AFTER_REGISTRATION,
                              reference=f"until:{until.isoformat()}"))
        store_holds(domain, frozenset(holds))
        tx.session.add(domain)
        await tx.session.flush()
        operation = new_operation(tx, domain, "create", {
            "years": years, "nameservers": [h.ascii for h in hosts]})
        tx.record("domains:create:requested", account=account.public_id, domain=name.ascii,
                  operation=operation.public_id, years=years,
                  nameservers=[h.ascii for h in hosts])
        return await requested_answer(tx, domain, operation)


# --- renew ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class DomainRenew:
    """Renew for `years`. The registry checks the current expiry date, so a renewal sent
    twice renews once. Raises PermissionDenied, NotFound, ValidationFailed, Conflict."""

    name: str
    years: Any = 1

    async def run(self, tx: Tx) -> Requested:
        domain, account = await _load(tx, self.name)
        errors: list[FieldError] = []
        years = _years(self.years, errors)
        if errors:
            raise ValidationFailed(errors)
        _active(domain)
        await _no_open_operation(tx, domain)
        _status_refusal(domain, Operation.RENEW, "name")
        assert domain.expires_at is not None
        current = domain.expires_at.date()
        try:
            expected = current.replace(year=current.year + years)
        except ValueError:  # 29 February
            expected = current.replace(year=current.year + years, day=28)
        operation = new_operation(tx, domain, "renew", {
            "years": years, "current_expiry": current.isoformat(),
            "expected_expiry": expected.isoformat()})
        tx.record("domains:renew:requested", account=account.public_id, domain=domain.name,
                  operation=operation.public_id, years=years)
        return await requested_answer(tx, domain, operation)


# --- nameservers and DS --------------------------------------------------------------------


@dataclass(frozen=True)
class NameserversSet:
    """Replace the nameservers (0 to 13). Needs a step-up.
    Raises PermissionDenied (StepUpRequired), NotFound, ValidationFailed, Conflict."""

    name: str
    nameservers: Any

    async def run(self, tx: Tx) -> Requested:
        domain, account = await _load(tx, self.name)
        errors: list[FieldError] = []
        if self.nameservers is None:
            errors.append(FieldError("nameservers", "required", "a list of host names"))
        hosts = validate_nameservers(self.nameservers, "nameservers", errors)
        if errors:
            raise ValidationFailed(errors)
        need_step_up(tx, "changing nameservers")
        _active(domain)
        await _no_open_operation(tx, domain)
        wanted = [h.ascii for h in hosts]
        if set(wanted) == set(domain.nameservers):
            return await requested_answer(tx, domain, None)
        _status_refusal(domain, Operation.UPDATE, "nameservers")
        operation = new_operation(tx, domain, "nameservers", {
            "nameservers": wanted, "previous": list(domain.nameservers)})
        tx.record("domains:nameservers:requested", account=account.public_id,
                  domain=domain.name, operation=operation.public_id,
                  nameservers=wanted, previous=list(domain.nameservers))
        return await requested_answer(tx, domain, operation)


@dataclass(frozen=True)
class DsSet:
    """Replace the DS records (an empty list turns DNSSEC off at the parent). Needs a step-up.
    A customer's DS set is checked against the DNSKEY RRset the zone serves now (asked of
    `[dns] resolver`); `force` sends one that would break resolution, or that could not be
    checked, all the same, and the event says so. What the algorithm policy refuses is refused
    even with `force`.
    Raises PermissionDenied (StepUpRequired), NotFound, ValidationFailed (`unverifiable` when
    the DNSKEY RRset could not be read or a digest type cannot be computed,
    `breaks_resolution` when no DS names a live zone key), Conflict."""

    name: str
    ds: Any
    # Set by regshield's own DNS signer for a zone it hosts: the one change a registry lock
    # lets through (a key rollover), inside the DS window (rules/registry_lock.py).
    hosted_zone: bool = False
    force: bool = False

    async def prepare(self, services: Services, context: Any, actor: Actor
                      ) -> LiveKeys | None:
        """The DNSKEY RRset the zone serves now; None when the DS records need no such check
        (none left: removing DS never breaks resolution; a zone regshield signs; bad input;
        a domain the actor may not change)."""
        if self.hosted_zone:
            return None
        errors: list[FieldError] = []
        name = _name(self.name, errors)
        records = validate_ds_set(self.ds, "ds", errors)
        if name is None or errors or not records \
                or not await actor_may_change(services, actor, name):
            return None
        resolver = services.settings.dns.resolver
        return await live_dnskeys(
            name.ascii, (resolver.host, resolver.port) if resolver else None, DS_LOOKUP_TIMEOUT)

    async def run(self, tx: Tx) -> Requested:
        if self.hosted_zone and tx.actor.kind != "system":
            raise PermissionDenied("only regshield's DNS signer vouches for a hosted zone")
        domain, account = await _load(tx, self.name)
        errors: list[FieldError] = []
        if self.ds is None:
            errors.append(FieldError("ds", "required", "a list of DS records"))
        records: Sequence[DsRecord] = validate_ds_set(self.ds, "ds", errors)
        if len(records) > MAX_DS:
            errors.append(FieldError("ds", "too_many", f"at most {MAX_DS} DS records"))
        if isinstance(self.ds, list | tuple):
            for index, raw in enumerate(self.ds):
                record = validate_ds(raw, f"ds.{index}", [])
                if record is not None:
                    errors.extend(ds_problems(record, f"ds.{index}"))
        link = tx.services.registries.link(domain.registry_link)
        if not link.secdns:
            errors.append(FieldError("ds", "not_supported",
                                     f"the registry of .{domain.name.rsplit('.', 1)[-1]} "
                                     "takes no DS records over EPP"))
        if errors:
            raise ValidationFailed(errors)
        need_step_up(tx, "changing DS records")
        _active(domain)
        await _no_open_operation(tx, domain)
        if self.hosted_zone:
            await _only_our_ds(tx, domain)
        wanted = [record.as_dict() for record in records]
        if {tuple(sorted(r.items())) for r in wanted} == \
                {tuple(sorted(r.items())) for r in domain.ds}:
            return await requested_answer(tx, domain, None)
        window = change_while_locked(
            DomainLock(domain.name, domain.registry_locked, domain.registry_lock_revision),
            {"ds"}, hosted_zone=self.hosted_zone)
        if window is None:
            _status_refusal(domain, Operation.UPDATE, "ds")
        problems = [] if self.hosted_zone else _live_problems(tx.prepared, records, domain.name)
        if problems and not self.force:
            raise ValidationFailed(problems)
        forced: dict[str, Any] = {} if not problems else {
            "forced": True, "reasons": [f"{p.field}: {p.message}" for p in problems]}
        operation = new_operation(tx, domain, "ds", {
            "ds": wanted, "previous": domain.ds, "ds_window": window is not None})
        tx.record("domains:ds:requested", account=account.public_id, domain=domain.name,
                  operation=operation.public_id, ds=[r.to_text() for r in records], **forced)
        return await requested_answer(tx, domain, operation)


async def _only_our_ds(tx: Tx, domain: Domain) -> None:
    """The signer replaces only DS records regshield itself put at the parent for the zone
    it hosts (`Zone.ds_owned`): a customer's DS (another DNS provider's keys) is never removed
    this way, nor through the registry lock's DS window, until the owner confirms it with a
    step-up (`ZoneDsTakeover` in flows/zone_keys.py)."""
    zone = await live_zone(tx.session, domain.name + ".")
    if zone is None or zone.account_id != domain.account_id or zone.state != "active":
        raise PermissionDenied(f"{domain.name} has no zone hosted here for its account")
    owned = {parse_ds(text).to_text() for text in zone.ds_owned}
    foreign = sorted(parse_ds(value).to_text() for value in domain.ds)
    foreign = [text for text in foreign if text not in owned]
    if foreign:
        raise Conflict(f"the parent of {domain.name} publishes DS records regshield did not "
                       f"put there ({', '.join(foreign)}): the owner confirms replacing them "
                       "with a one-time code")


def _live_problems(live: Any, records: Sequence[DsRecord], zone: str) -> list[FieldError]:
    """Why `records` cannot go to the registry as the zone is served now (`force` overrides).

    `live` is what `DsSet.prepare` found; anything else (the flow run without it) counts as
    a lookup that failed, so that no DS set goes unchecked."""
    if not records:
        return []
    if not isinstance(live, LiveKeys) or live.error is not None:
        reason = f"{live.error}: {live.message}" if isinstance(live, LiveKeys) \
            else "it was not looked up"
        return [FieldError("ds", "unverifiable", (
            f"the DNSKEY RRset of {zone} could not be read ({reason}); "
            "send force: true to set these DS records without the check"))]
    return ds_breakage(records, live.records, zone)


# --- registrar lock ------------------------------------------------------------------------


@dataclass(frozen=True)
class RegistrarLockSet:
    """Turn the registrar lock on or off. On: clientTransferProhibited and
    clientDeleteProhibited; `update_lock` adds clientUpdateProhibited, a separate choice
    because it also blocks the holder's own changes. Removing a lock needs a step-up.
    Raises PermissionDenied (StepUpRequired), NotFound, Conflict."""

    name: str
    locked: bool
    update_lock: bool | None = None

    async def run(self, tx: Tx) -> Requested:
        domain, account = await _load(tx, self.name)
        holds = holds_of(domain)
        wanted = holds
        if self.locked:
            wanted = place(wanted, Hold.of(HoldReason.REGISTRAR_LOCK))
            if self.update_lock:
                wanted = place(wanted, Hold.of(HoldReason.REGISTRAR_UPDATE_LOCK))
            elif self.update_lock is False:
                wanted = release(wanted, HoldReason.REGISTRAR_UPDATE_LOCK)
        else:
            wanted = release(release(wanted, HoldReason.REGISTRAR_LOCK),
                             HoldReason.REGISTRAR_UPDATE_LOCK)
        if wanted == holds:
            return await requested_answer(tx, domain, None)
        removing = {h.reason for h in holds} - {h.reason for h in wanted}
        if removing:
            need_step_up(tx, "removing a lock")
        _active(domain)
        await _no_open_operation(tx, domain)
        store_holds(domain, wanted)
        operation = new_operation(tx, domain, "statuses", {
            "holds": sorted(str(h.reason) for h in wanted)})
        tx.record("domains:registrar-lock:requested", account=account.public_id,
                  domain=domain.name, operation=operation.public_id, locked=self.locked,
                  update_lock=HoldReason.REGISTRAR_UPDATE_LOCK in {h.reason for h in wanted})
        return await requested_answer(tx, domain, operation)


# --- transfer codes and transfers ----------------------------------------------------------


@dataclass(frozen=True)
class IssuedCode:
    requested: Requested
    code: Secret
    expires_at: datetime


@dataclass(frozen=True)
class TransferCodeIssue:
    """Generate a transfer code (on request only, RFC 9154), keep only its salted hash, and
    set it at the registry. The code exists in memory until the registry confirms; then it
    is shown once. Needs a step-up.
    Raises PermissionDenied (StepUpRequired), NotFound, Conflict, ValidationFailed."""

    name: str

    async def run(self, tx: Tx) -> IssuedCode:
        domain, account = await _load(tx, self.name)
        need_step_up(tx, "generating a transfer code")
        _active(domain)
        await _no_open_operation(tx, domain)
        _status_refusal(domain, Operation.UPDATE, "name")
        code = new_transfer_code()
        expires = transfer_code_expiry(
            tx.now, transfer_policy(tx.now, tx.services.settings.tpr_effective))
        operation = new_operation(tx, domain, "transfer_code", {
            "code_hash": transfer_code_hash(code), "expires_at": expires.isoformat()})
        tx.record("domains:transfer-code:requested", account=account.public_id,
                  domain=domain.name, operation=operation.public_id,
                  expires_at=expires.isoformat())
        return IssuedCode(await requested_answer(tx, domain, operation), Secret(code), expires)


@dataclass(frozen=True)
class TransferRequest:
    """Ask the registry to move a domain to this registrar, with the code its holder got from
    the current registrar. The code is sent and forgotten. `registrant` names the contact (of
    the account) this registrar holds as the registrant once the domain arrives: RDAP and
    WHOIS publish it, and the accuracy program verifies it.
    Raises PermissionDenied, ValidationFailed, Conflict."""

    name: Any
    auth_code: Secret
    account: str | None = None
    registrant: Any = None

    async def run(self, tx: Tx) -> Requested:
        tx.actor.require("domains", "write")
        errors: list[FieldError] = []
        name = _name(self.name, errors)
        link = None
        if name is not None:
            try:
                link = tx.services.registries.for_domain(name)
            except ValidationFailed as failed:
                errors += failed.errors
        code = self.auth_code.reveal()
        if not 1 <= len(code) <= 255 or code != code.strip():
            errors.append(FieldError("auth_code", "invalid",
                                     "must be the transfer code, 1 to 255 characters"))
        else:  # it is sent as domain:authInfo: refused here, before anything is written
            check_xml_text(code, "auth_code", errors)
        account = await target_account(tx, self.account, "domains", errors,
                                       required="staff must name the account of the domain")
        registrant = await _contact(tx, self.registrant, "registrant", account, errors)
        if errors:
            raise ValidationFailed(errors)
        assert name is not None and link is not None and account is not None
        if await live_domain(tx.session, name.ascii) is not None:
            raise Conflict(f"{name.ascii} is already with this registrar")
        domain = Domain(
            name=name.ascii, unicode_name=name.unicode, account_id=account.id,
            registry_link=link.name, state="pending_transfer_in", nameservers=[], ds=[],
            holds=[], registry_statuses=[], created_at=tx.now, updated_at=tx.now,
            registrant_id=registrant.id if registrant is not None else None)
        tx.session.add(domain)
        await tx.session.flush()
        operation = new_operation(tx, domain, "transfer_request", {})
        tx.record("domains:transfer-in:requested", account=account.public_id,
                  domain=name.ascii, operation=operation.public_id)
        return await requested_answer(tx, domain, operation)


# --- registrant ----------------------------------------------------------------------------


@dataclass(frozen=True)
class RegistrantChange:
    """Give the domain another registrant (a contact of the same account). Needs a step-up.
    Under the Transfer Policy in force, a change of registrant locks the domain against
    inter-registrar transfer for 60 days unless the prior registrant opts out beforehand
    (`opt_out_of_transfer_lock`); under the TPR rules there is a notice instead.
    Raises PermissionDenied (StepUpRequired), NotFound, ValidationFailed, Conflict."""

    name: str
    registrant: Any
    opt_out_of_transfer_lock: bool = False

    async def run(self, tx: Tx) -> Requested:
        domain, account = await _load(tx, self.name)
        errors: list[FieldError] = []
        if self.registrant is None:
            errors.append(FieldError("registrant", "required", "a contact handle"))
        contact = await _contact(tx, self.registrant, "registrant", account, errors)
        if errors:
            raise ValidationFailed(errors)
        assert contact is not None
        need_step_up(tx, "changing the registrant")
        _active(domain)
        await _no_open_operation(tx, domain)
        if contact.id == domain.registrant_id:
            return await requested_answer(tx, domain, None)
        _status_refusal(domain, Operation.UPDATE, "registrant")
        previous = await tx.session.get(Contact, domain.registrant_id) \
            if domain.registrant_id else None
        lock_until = registrant_lock_until(tx, self.opt_out_of_transfer_lock)
        operation = new_operation(tx, domain, "registrant", {
            "registrant": contact.handle, "registrant_id": contact.id,
            "previous": previous.handle if previous else None,
            "opted_out": self.opt_out_of_transfer_lock,
            "lock_until": lock_until.isoformat() if lock_until else None})
        tx.record("domains:registrant:requested", account=account.public_id,
                  domain=domain.name, operation=operation.public_id,
                  registrant=contact.handle, previous=previous.handle if previous else None,
                  opted_out=self.opt_out_of_transfer_lock,
                  transfer_lock_until=lock_until.isoformat() if lock_until else None)
        return await requested_answer(tx, domain, operation)


def registrant_lock_until(tx: Tx, opted_out: bool) -> datetime | None:
    """When the inter-registrar transfer lock after a change of registrant made now ends,
    under the Transfer Policy in force (the TPR rules only from a configured date); None when
    the prior registrant opted out beforehand or the policy sends a notice instead."""
    policy = transfer_policy(tx.now, tx.services.settings.tpr_effective)
    return change_of_registrant_lock_end(policy, changed_at=tx.now, opted_out=opted_out)


def _registrant_frozen(domain: Domain) -> tuple[str, str] | None:
    """(code, reason) when a change of the domain's registrant is refused: a registry lock
    (rules/registry_lock.py), or what the status authority says of an update
    (server/clientUpdateProhibited, a pending operation at the registry)."""
    try:
        change_while_locked(
            DomainLock(domain.name, domain.registry_locked, domain.registry_lock_revision),
            {"registrant"}, hosted_zone=False)
    except LockRefused as refused:
        return "registry_locked", refused.detail
    reason = refusal(Operation.UPDATE, domain.registry_statuses)
    return None if reason is None else ("status_prohibits", reason)


async def registrant_edit_allowed(tx: Tx, domains: Sequence[Domain], fields: Sequence[str]
                                  ) -> None:
    """The checks of `RegistrantChange`, for a material change (`fields`: name,
    organization, email) of the data of a contact that is the registrant of `domains`: under
    the Transfer Policy that is a change of registrant of each. Refused where the registrant
    is frozen (registry lock, update prohibited: every changed field is named), without a
    step-up, or while an operation of one of the domains is still open at the registry.
    Raises ValidationFailed, PermissionDenied (StepUpRequired), Conflict."""
    errors: list[FieldError] = []
    for domain in domains:
        frozen = _registrant_frozen(domain)
        if frozen is not None:
            code, reason = frozen
            errors += [FieldError(name, code, f"this contact is the registrant of "
                                  f"{domain.name}, whose registrant cannot change: {reason}")
                       for name in fields]
    if errors:
        raise ValidationFailed(errors)
    more = f" and {len(domains) - 1} more" if len(domains) > 1 else ""
    need_step_up(tx, f"changing the {', '.join(fields)} of the registrant of "
                 f"{domains[0].name}{more}")
    for domain in domains:
        await _no_open_operation(tx, domain)


async def registrant_edited(tx: Tx, contact: Contact, account: Account,
                            domains: Sequence[Domain], fields: Sequence[str], *,
                            opted_out: bool) -> tuple[datetime | None, list[str]]:
    """Apply a change of registrant made by editing the registrant's data (after
    `registrant_edit_allowed`): the contact stays the same, so there is nothing to send to the
    domain at the registry; each domain gets the change-of-registrant transfer lock unless
    the prior registrant opted out (the statuses follow as an operation), and the events
    `RegistrantChange` leaves: `domains:registrant:requested` and `:confirmed` (the change is
    in force at once; the registry's copy of the contact follows by contact:update).
    Returns the end of the transfer lock (None: no lock) and the operations started."""
    lock_until = registrant_lock_until(tx, opted_out)
    started: list[str] = []
    until = lock_until.isoformat() if lock_until else None
    for domain in domains:
        place_registrant_lock(domain, until)
        domain.updated_at = tx.now
        summary: dict[str, Any] = {
            "account": account.public_id, "domain": domain.name,
            "registrant": contact.handle, "previous": contact.handle,
            "via": "contact_update", "fields": list(fields), "opted_out": opted_out,
            "transfer_lock_until": until}
        tx.record("domains:registrant:requested", **summary)
        operation = None
        if statuses_differ(domain):
            operation = new_operation(tx, domain, "statuses", {"after": "registrant"})
            started.append(operation.public_id)
        tx.record("domains:registrant:confirmed", **summary,
                  operation=operation.public_id if operation else None)
    return lock_until, started


@dataclass(frozen=True)
class ContactsSet:
    """Set or remove the tech contact (a contact of the same account, or None).
    Raises PermissionDenied, NotFound, ValidationFailed, Conflict."""

    name: str
    tech: Any

    async def run(self, tx: Tx) -> Requested:
        domain, account = await _load(tx, self.name)
        errors: list[FieldError] = []
        contact = await _contact(tx, self.tech, "tech", account, errors)
        if errors:
            raise ValidationFailed(errors)
        _active(domain)
        await _no_open_operation(tx, domain)
        if (contact.id if contact else None) == domain.tech_id:
            return await requested_answer(tx, domain, None)
        _status_refusal(domain, Operation.UPDATE, "tech")
        operation = new_operation(tx, domain, "contacts", {
            "tech": contact.handle if contact else None,
            "tech_id": contact.id if contact else None})
        tx.record("domains:contacts:requested", account=account.public_id, domain=domain.name,
                  operation=operation.public_id, tech=contact.handle if contact else None)
        return await requested_answer(tx, domain, operation)


@dataclass(frozen=True)
class HoldsSweep:
    """Release the holds whose time has ended (the change-of-registrant transfer lock, the
    post-transfer window), and clear transfer codes whose lifetime has ended at the registry
    (Transfer Policy: 14 days). Queues the registry changes; returns them."""

    async def run(self, tx: Tx) -> list[str]:
        started = await self._expire_transfer_codes(tx)
        # Only domains with a hold that ends (a reference "until:<time>" in the JSON's text):
        # loading every live domain each minute held the event loop for seconds at 100,000.
        rows = await tx.session.scalars(select(Domain).where(
            Domain.ended_at.is_(None), cast(Domain.holds, String).contains('"until:')))
        for domain in rows:
            holds = holds_of(domain)
            ended = [h for h in holds if h.reference.startswith("until:")
                     and datetime.fromisoformat(h.reference[6:]) <= tx.now]
            if not ended or await open_operations(tx.session, [domain.id]):
                continue
            for hold in ended:
                holds = release(holds, hold.reason, hold.reference)
            store_holds(domain, holds)
            operation = new_operation(tx, domain, "statuses", {
                "released": sorted(str(h.reason) for h in ended)})
            account = await tx.session.get(Account, domain.account_id)
            tx.record("domains:hold:released", account=account.public_id if account else None,
                      domain=domain.name, operation=operation.public_id,
                      holds=sorted(str(h.reason) for h in ended))
            started.append(operation.public_id)
        return started

    @staticmethod
    async def _expire_transfer_codes(tx: Tx) -> list[str]:
        rows = await tx.session.scalars(select(Domain).where(
            Domain.ended_at.is_(None), Domain.transfer_code_expires_at <= tx.now))
        started: list[str] = []
        for domain in rows:
            if await open_operations(tx.session, [domain.id]):
                continue
            operation = new_operation(tx, domain, "transfer_code_clear", {})
            account = await tx.session.get(Account, domain.account_id)
            tx.record("domains:transfer-code:expired",
                      account=account.public_id if account else None, domain=domain.name,
                      operation=operation.public_id)
            started.append(operation.public_id)
        return started


# --- delete, restore, transfer out -----------------------------------------------------------


@dataclass(frozen=True)
class DomainDelete:
    """Delete a domain. Where the registry keeps a redemption grace period the domain goes to
    pendingDelete and can be restored for 30 days. Needs a step-up, and the registrar lock
    off. Raises PermissionDenied (StepUpRequired), NotFound, ValidationFailed, Conflict."""

    name: str

    async def run(self, tx: Tx) -> Requested:
        domain, account = await _load(tx, self.name)
        need_step_up(tx, "deleting a domain")
        _active(domain)
        await _no_open_operation(tx, domain)
        _status_refusal(domain, Operation.DELETE, "name")
        operation = new_operation(tx, domain, "delete", {})
        tx.record("domains:delete:requested", account=account.public_id, domain=domain.name,
                  operation=operation.public_id)
        return await requested_answer(tx, domain, operation)


@dataclass(frozen=True)
class DomainRestore:
    """Restore a deleted domain during its redemption grace period (RFC 3915).
    Raises PermissionDenied, NotFound, ValidationFailed, Conflict."""

    name: str

    async def run(self, tx: Tx) -> Requested:
        domain, account = await _load(tx, self.name)
        if domain.state != "pending_delete":
            raise Conflict("only a deleted domain in its redemption period can be restored")
        if not tx.services.registries.link(domain.registry_link).rgp:
            raise ValidationFailed([FieldError("name", "not_supported",
                                               "this registry offers no restore (RGP)")])
        await _no_open_operation(tx, domain)
        operation = new_operation(tx, domain, "restore", {})
        tx.record("domains:restore:requested", account=account.public_id, domain=domain.name,
                  operation=operation.public_id)
        return await requested_answer(tx, domain, operation)


# Transfer Policy I.A.3.7: the reasons a registrar may deny a transfer.
DENIAL_REASONS: frozenset[str] = frozenset({
    "fraud", "dispute", "court_order", "identity_not_confirmed", "unpaid_previous_term",
    "express_objection", "registrar_lock", "within_restriction_period",
})


@dataclass(frozen=True)
class TransferDecide:
    """Approve or reject another registrar's request to take a domain away (we are the losing
    registrar). Approving gives the domain away and needs a step-up; rejecting needs one of
    the Transfer Policy's reasons. Raises PermissionDenied (StepUpRequired), NotFound,
    ValidationFailed, Conflict."""

    name: str
    approve: bool
    reason: str | None = None

    async def prepare(self, services: Services, context: Any, actor: Actor
                      ) -> frozenset[str] | None:
        """The statuses the registry reports now (a transfer request reaches us through the
        poll queue, which may lag); None when the registry cannot be asked, or the actor may
        not decide for this domain (`run` refuses)."""
        errors: list[FieldError] = []
        name = _name(self.name, errors)
        if name is None or not await actor_may_change(services, actor, name):
            return None
        try:
            link = services.registries.for_domain(name)
            response = await (await services.registries.pool(link)).execute(
                DomainInfo(name.ascii))
        except (ValidationFailed, RegistryError):
            return None
        info = response.item(DomainInfoData)
        return frozenset(s.value for s in info.statuses) if info else None

    async def run(self, tx: Tx) -> Requested:
        domain, account = await _load(tx, self.name)
        statuses = tx.prepared if tx.prepared is not None else frozenset(
            domain.registry_statuses)
        if "pendingTransfer" not in statuses:
            raise Conflict("no transfer of this domain is pending at the registry")
        if self.approve:
            need_step_up(tx, "approving a transfer away")
        elif not isinstance(self.reason, str) or self.reason not in DENIAL_REASONS:
            raise ValidationFailed([FieldError(
                "reason", "invalid",
                "must be one of " + ", ".join(sorted(DENIAL_REASONS)))])
        await _no_open_operation(tx, domain)
        decision = "approve" if self.approve else "reject"
        operation = new_operation(tx, domain, "transfer_decision", {
            "decision": decision, **({"reason": self.reason} if self.reason else {})})
        tx.record(f"domains:transfer-out:{decision}-requested", account=account.public_id,
                  domain=domain.name, operation=operation.public_id, reason=self.reason)
        return await requested_answer(tx, domain, operation)


# --- reads ---------------------------------------------------------------------------------


async def domain_read(services: Services, actor: Actor, name: str) -> DomainView:
    actor.require("domains", "read")
    errors: list[FieldError] = []
    parsed = _name(name, errors)
    if parsed is None:
        raise ValidationFailed(errors)
    async with services.store.read() as session:
        domain = await live_domain(session, parsed.ascii)
        if domain is None:
            raise NotFound("no such domain")
        actor.require_object("domains", "read", domain.account_id)
        return await domain_view(session, domain)


async def domain_list(services: Services, actor: Actor, *, limit: int = 100,
                      after: str = "", account: str | None = None) -> list[DomainView]:
    actor.require("domains", "read")
    async with services.store.read() as session:
        scope: int | None = actor.account_id
        if actor.can("domains", "read"):
            scope = None
            if account is not None:
                found = await account_by_reference(session, account)
                if found is None:
                    return []
                scope = found.id
        rows = await list_domains(session, scope, limit, after)
        accounts = await public_ids(session, {row.account_id for row in rows})
        return [await domain_view(session, row, accounts[row.account_id]) for row in rows]


@dataclass(frozen=True)
class Availability:
    name: str
    available: bool
    reason: str | None


async def domain_check(services: Services, actor: Actor, names: Sequence[Any]
                       ) -> list[Availability]:
    """Ask the registries whether names are available (read-only; no event)."""
    actor.require("domains", "read")
    errors: list[FieldError] = []
    parsed: list[DomainName] = []
    if not names or len(names) > 50:
        errors.append(FieldError("names", "invalid_count", "give 1 to 50 names"))
    for index, value in enumerate(names[:50]):
        found = validate_domain_name(value, f"names.{index}", errors)
        if found is not None:
            try:
                services.registries.for_domain(found, f"names.{index}")
                parsed.append(found)
            except ValidationFailed as failed:
                errors += failed.errors
    if errors:
        raise ValidationFailed(errors)
    answers: list[Availability] = []
    by_link: dict[str, list[DomainName]] = {}
    for name in parsed:
        by_link.setdefault(services.registries.for_domain(name).name, []).append(name)
    for link_name, group in by_link.items():
        pool = await services.registries.pool(services.registries.link(link_name))
        response = await pool.execute(DomainCheck(tuple(n.ascii for n in group)))
        data = response.item(DomainCheckData)
        if data is None:
            raise ValidationFailed([FieldError("names", "registry_refused",
                                               f"{int(response.code)} {response.message}")])
        answers += [Availability(r.name, r.available, r.reason) for r in data.results]
    return answers
