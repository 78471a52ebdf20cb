"""The kinds of domain:update the sandbox carries out: a registrar's update (statuses,
nameservers, contacts, registrant, authInfo, DS records), an RGP restore request and restore
report (RFC 3915), and the update of a registry-lock session.

Registry lock: the server statuses serverUpdateProhibited, serverDeleteProhibited and
serverTransferProhibited are the registry's, and a registry sets them only after verifying,
out of band, that the registrant's registrar asks. The sandbox models that verification as a
second credential per registrar, the lock password: a session opened with it may add or
remove exactly those statuses on the registrar's own domains, and do no other change. What
a lock leaves behind is checked by the status authority (`rules/statuses.py`), as every other
status change is; in a normal session, `refusal` decides and server statuses stay out of reach.
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from regshield.registry.codec import HostAttribute, RawElement, ResultCode, Status
from regshield.registry.commands import (
    DomainChanges,
    DomainUpdate,
    RgpRestoreReport,
    SecDnsUpdate,
)
from regshield.registry.responses import RgpUpdateData
from regshield.registry.sandbox.contacts import check_contact_references
from regshield.registry.sandbox.deletions import (
    PENDING_RESTORE,
    REDEMPTION_PERIOD,
    advance_deletions,
    request_restore,
)
from regshield.registry.sandbox.dnssec import updated_ds
from regshield.registry.sandbox.domains import (
    auth_info_hash,
    check_sponsor,
    contact_keys,
    contact_rows,
    existing,
    nameserver_names,
    served_name,
    status_values,
)
from regshield.registry.sandbox.hosts import check_nameserver_objects
from regshield.registry.sandbox.models import SandboxDomain
from regshield.registry.sandbox.refusals import Refusal, changed
from regshield.registry.sandbox.state import SandboxState
from regshield.rules.names import MAX_NAMESERVERS
from regshield.rules.statuses import (
    CLIENT_STATUSES,
    DomainStatus,
    Operation,
    refusal,
    status_problems,
)

REGISTRY_LOCK_STATUSES: frozenset[str] = frozenset({
    DomainStatus.SERVER_UPDATE_PROHIBITED, DomainStatus.SERVER_DELETE_PROHIBITED,
    DomainStatus.SERVER_TRANSFER_PROHIBITED,
})
log = structlog.get_logger("regshield.sandbox")


def refuse_unserved_forms(host_attributes: Sequence[HostAttribute] = (),
                          auth_info_ext: RawElement | None = None) -> None:
    """Refusal 2102 for the forms the codec reads but the sandbox does not keep: host
    attributes (it keeps host objects) and an `ext` authInfo (it keeps password hashes)."""
    if host_attributes:
        raise Refusal(ResultCode.UNIMPLEMENTED_OPTION,
                      "domain:hostAttr: this registry keeps host objects; name nameservers "
                      "with domain:hostObj")
    if auth_info_ext is not None:
        raise Refusal(ResultCode.UNIMPLEMENTED_OPTION,
                      "domain:ext: this registry takes a password (domain:pw) as authInfo")


async def update_domain(state: SandboxState, update: DomainUpdate, client: str,
                        ds_update: SecDnsUpdate | None, *, thick: bool = False) -> None:
    """A registrar's update, all of it or nothing. `thick`: the session manages contacts,
    so a new registrant or contact must be a contact object (contacts.py).

    Raises Refusal: 2003 it changes nothing; 2306 a server or unknown status, an add of what
    is there or a removal of what is not, DS records the policy refuses or more than the
    cap, secDNS key data; 2102 secDNS maxSigLife or urgent, host attributes, an `ext`
    authInfo; 2004 more than 13 nameservers; 2005 a bad host name; 2303 no such domain, a
    nameserver inside the served TLDs that is no host object, in a thick session a
    registrant or contact that is no contact object; 2201 not the sponsor; 2304 what the
    statuses prohibit (rules/statuses.py `refusal`, pendingDelete included)."""
    name = served_name(update.name, state.config.tlds)
    refuse_unserved_forms((*update.add.host_attributes, *update.remove.host_attributes),
                          update.auth_info_ext)
    added, removed = status_values(update.add.statuses), status_values(update.remove.statuses)
    other_change = _changes_other_fields(update) or ds_update is not None
    if not (other_change or added or removed):
        raise Refusal(ResultCode.REQUIRED_PARAMETER_MISSING, "the update changes nothing")
    foreign = sorted((added | removed) - CLIENT_STATUSES)
    if foreign:
        raise Refusal(ResultCode.PARAMETER_VALUE_POLICY_ERROR,
                      f"a registrar sets only client statuses, not {', '.join(foreign)}; "
                      "server statuses are the registry's (registry lock: a lock session)")
    added_hosts = nameserver_names(update.add.nameservers)
    removed_hosts = nameserver_names(update.remove.nameservers)
    async with state.store.write() as session:
        domain = await existing(session, name)
        check_sponsor(domain, client)
        reason = refusal(Operation.UPDATE, domain.statuses, adding=added, removing=removed,
                         changes_other_fields=other_change)
        if reason is not None:
            raise Refusal(ResultCode.OBJECT_STATUS_PROHIBITS_OPERATION, reason)
        await check_nameserver_objects(session, added_hosts, state.config.tlds)
        if thick:
            await check_contact_references(session, update.registrant, update.add.contacts)
        domain.statuses = sorted(changed(domain.statuses, added, removed, "status"))
        _change_nameservers(domain, added_hosts, removed_hosts)
        _change_contacts(domain, update.add, update.remove)
        if update.registrant is not None:
            domain.registrant = update.registrant
        if update.auth_info is not None:
            domain.auth_info_hash = auth_info_hash(update.auth_info)
        if update.remove_auth_info:
            domain.auth_info_hash = None
        if ds_update is not None:
            domain.ds_records = updated_ds(domain.ds_records, ds_update)
        _mark_updated(domain, client, state)
    log.info("sandbox:domain:updated", registrar=client, domain=name)


async def restore_domain(state: SandboxState, update: DomainUpdate, client: str,
                         extension_count: int) -> RgpUpdateData:
    """An RGP restore request (RFC 3915 section 4.2.5): the domain leaves its redemption
    period for pendingRestore, and is back once the configured wait is over; no restore
    report is asked for.

    Raises Refusal: 2306 the update changes anything besides; 2303 no such domain; 2201 not
    the sponsor; 2304 the domain is not in its redemption period."""
    name = served_name(update.name, state.config.tlds)
    if _changes_other_fields(update) or update.add.statuses or update.remove.statuses \
            or extension_count > 1:
        raise Refusal(ResultCode.PARAMETER_VALUE_POLICY_ERROR,
                      "a restore request changes nothing else; send other changes once the "
                      "domain is restored")
    async with state.store.write() as session:
        domain = await existing(session, name)
        check_sponsor(domain, client)
        if domain.rgp_status != REDEMPTION_PERIOD:
            raise Refusal(ResultCode.OBJECT_STATUS_PROHIBITS_OPERATION,
                          f"{name} is not in its redemption period")
        request_restore(domain, state.clock.now(), state.config)
        _mark_updated(domain, client, state)
    log.info("sandbox:domain:restore_requested", registrar=client, domain=name)
    return RgpUpdateData((Status(PENDING_RESTORE),))


async def report_restore(state: SandboxState, update: DomainUpdate, client: str,
                         report: RgpRestoreReport, extension_count: int) -> None:
    """An RGP restore report (RFC 3915 section 4.2.5) for a domain whose restore was
    requested: the registry takes it and the domain is restored at once (the sponsor hears
    by poll message, as after the configured wait).

    Raises Refusal: 2306 the update changes anything besides, or the report has the domain
    restored before it was deleted; 2303 no such domain; 2201 not the sponsor; 2304 no
    restore is pending."""
    name = served_name(update.name, state.config.tlds)
    if _changes_other_fields(update) or update.add.statuses or update.remove.statuses \
            or extension_count > 1:
        raise Refusal(ResultCode.PARAMETER_VALUE_POLICY_ERROR,
                      "a restore report changes nothing else")
    if report.restored < report.deleted:
        raise Refusal(ResultCode.PARAMETER_VALUE_POLICY_ERROR,
                      "rgp:resTime: the domain cannot be restored before it was deleted")
    now = state.clock.now()
    async with state.store.write() as session:
        domain = await existing(session, name)
        check_sponsor(domain, client)
        if domain.rgp_status != PENDING_RESTORE:
            raise Refusal(ResultCode.OBJECT_STATUS_PROHIBITS_OPERATION,
                          f"no restore of {name} is pending; request one first")
        domain.rgp_ends_at = now
        _mark_updated(domain, client, state)
        await session.flush()
        await advance_deletions(session, now, state.config)
    log.info("sandbox:domain:restore_reported", registrar=client, domain=name)


async def change_registry_lock(state: SandboxState, update: DomainUpdate, client: str,
                               has_extensions: bool) -> None:
    """The one update of a registry-lock session: registry-lock statuses added or removed.

    Raises Refusal: 2306 anything else in the update (another status, nameservers,
    contacts, registrant, authInfo, an extension), an add of what is there or a removal of
    what is not; 2003 it changes nothing; 2303 no such domain; 2201 not the sponsor; 2304
    the statuses it would leave break RFC 5731 section 2.3 (a lock on what is pending)."""
    name = served_name(update.name, state.config.tlds)
    added, removed = status_values(update.add.statuses), status_values(update.remove.statuses)
    others = sorted((added | removed) - REGISTRY_LOCK_STATUSES)
    if has_extensions or _changes_other_fields(update) or others:
        raise Refusal(ResultCode.PARAMETER_VALUE_POLICY_ERROR,
                      "a registry-lock session only adds or removes "
                      f"{', '.join(sorted(REGISTRY_LOCK_STATUSES))}")
    if not (added or removed):
        raise Refusal(ResultCode.REQUIRED_PARAMETER_MISSING, "the update changes nothing")
    async with state.store.write() as session:
        domain = await existing(session, name)
        check_sponsor(domain, client)
        statuses = changed(domain.statuses, added, removed, "status")
        problems = status_problems(statuses or {DomainStatus.OK})
        if problems:
            raise Refusal(ResultCode.OBJECT_STATUS_PROHIBITS_OPERATION, problems[0].message)
        domain.statuses = sorted(statuses)
        _mark_updated(domain, client, state)
    log.info("sandbox:registry_lock:changed", registrar=client, domain=name,
             added=sorted(added), removed=sorted(removed))


def _changes_other_fields(update: DomainUpdate) -> bool:
    """Whether the update changes anything but statuses."""
    return bool(update.add.nameservers or update.add.contacts or update.remove.nameservers
                or update.remove.contacts or update.add.host_attributes
                or update.remove.host_attributes or update.registrant is not None
                or update.changes_auth_info)


def _change_nameservers(domain: SandboxDomain, added: list[str], removed: list[str]) -> None:
    hosts = changed(domain.nameservers, added, removed, "nameserver")
    if len(hosts) > MAX_NAMESERVERS:
        raise Refusal(ResultCode.PARAMETER_VALUE_RANGE_ERROR,
                      f"at most {MAX_NAMESERVERS} nameservers")
    # The order the registrar gave is kept: the ones there first, then the ones added.
    domain.nameservers = [host for host in dict.fromkeys([*domain.nameservers, *added])
                          if host in hosts]


def _change_contacts(domain: SandboxDomain, added: DomainChanges,
                     removed: DomainChanges) -> None:
    contacts = changed(contact_keys(domain.contacts),
                       contact_keys(contact_rows(added.contacts)),
                       contact_keys(contact_rows(removed.contacts)), "contact")
    domain.contacts = [{"type": kind, "id": ident} for kind, ident in sorted(contacts)]


def _mark_updated(domain: SandboxDomain, client: str, state: SandboxState) -> None:
    domain.updated_at = state.clock.now()
    domain.updater_id = client


__all__ = ["REGISTRY_LOCK_STATUSES", "change_registry_lock", "refuse_unserved_forms",
           "report_restore", "restore_domain", "update_domain"]
