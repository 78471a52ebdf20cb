"""Host objects in the sandbox registry (RFC 5732): check, create, info, update, delete, and
what domain commands ask of them.

Internal and external hosts. A host whose name falls in a TLD the sandbox serves is internal:
it is subordinate to a domain registered here (the superordinate domain, its last two
labels), is created and changed only by that domain's sponsor, carries at least one address
(the glue the registry publishes) and moves with the domain when it is transferred. Any other
host is external: it has no addresses here, since its glue lives in someone else's zone.

Nameservers of domains. A domain names its nameservers as host objects (`domain:hostObj`).
Those inside the served TLDs must exist as host objects: the registry publishes their glue,
so it must hold it. Those outside are accepted by name without a host object, as thin test
registries do, so that a registrar can delegate to `ns1.example.net` without creating hosts
first. The choice keeps the common case (external nameservers) as simple as it was, and makes
the case that needs registry data (glue) go through the objects that hold it.

Statuses: a registrar adds or removes clientDeleteProhibited and clientUpdateProhibited;
server statuses are the registry's. What statuses prohibit is decided by `rules/statuses.py`'s
`refusal`, as for domains (the host statuses of RFC 5732 have the same names and meaning).
"linked" is reported, not stored: a host that a domain names is linked, and cannot be deleted.
"""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Iterable, Sequence
from datetime import datetime

import structlog
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from regshield.errors import ValidationFailed
from regshield.registry.codec import HostAddress, ResultCode, Status
from regshield.registry.commands import HostCheck, HostCreate, HostDelete, HostInfo, HostUpdate
from regshield.registry.responses import CheckResult, HostCheckData, HostCreateData, HostInfoData
from regshield.registry.sandbox.domains import check_sponsor, shown_statuses, status_values
from regshield.registry.sandbox.models import SandboxDomain, SandboxHost
from regshield.registry.sandbox.refusals import Refusal, changed
from regshield.registry.sandbox.state import SandboxState, live_domain
from regshield.rules.names import parse_host_name
from regshield.rules.statuses import DomainStatus, Operation, refusal

# RFC 5732 section 2.3: the statuses a client may set on a host.
HOST_CLIENT_STATUSES: frozenset[str] = frozenset({
    DomainStatus.CLIENT_DELETE_PROHIBITED, DomainStatus.CLIENT_UPDATE_PROHIBITED,
})
LINKED = "linked"
log = structlog.get_logger("regshield.sandbox")


def host_name(raw: str, field: str = "host:name") -> str:
    """The canonical A-label form of a host name, or a Refusal: 2005 not a host name."""
    try:
        return parse_host_name(raw, field).ascii
    except ValidationFailed as exc:
        raise Refusal(ResultCode.PARAMETER_VALUE_SYNTAX_ERROR,
                      f"{field}: {exc.errors[0].message}") from None


def superordinate(name: str, tlds: Iterable[str]) -> str | None:
    """The registered domain an internal host is subordinate to, None for an external host.
    Refusal 2306 for a host named as a domain of a served TLD itself (`foo.test`): a host
    lies below the domain it belongs to."""
    labels = name.split(".")
    if labels[-1] not in tuple(tlds):
        return None
    if len(labels) < 3:
        raise Refusal(ResultCode.PARAMETER_VALUE_POLICY_ERROR,
                      f"host:name: {name} is a domain name of a served TLD; a host is named "
                      "below its domain (ns1.example.test)")
    return ".".join(labels[-2:])


async def live_host(session: AsyncSession, name: str) -> SandboxHost | None:
    found = await session.scalars(select(SandboxHost).where(
        SandboxHost.name == name, SandboxHost.deleted_at.is_(None)))
    return found.one_or_none()


async def existing_host(session: AsyncSession, name: str) -> SandboxHost:
    """The live host `name`, or a Refusal: 2303."""
    host = await live_host(session, name)
    if host is None:
        raise Refusal(ResultCode.OBJECT_DOES_NOT_EXIST, f"host {name} does not exist")
    return host


async def domains_naming(session: AsyncSession, name: str) -> list[SandboxDomain]:
    """The live domains (in redemption too) that name the host `name` as a nameserver."""
    each = func.json_each(SandboxDomain.nameservers).table_valued("value")
    found = await session.scalars(select(SandboxDomain).where(
        SandboxDomain.deleted_at.is_(None),
        select(each.c.value).where(each.c.value == name).exists()))
    return list(found)


async def subordinate_hosts(session: AsyncSession, domain: str) -> list[SandboxHost]:
    """The live hosts below `domain`, by name."""
    found = await session.scalars(
        select(SandboxHost).where(SandboxHost.deleted_at.is_(None),
                                  SandboxHost.name.endswith(f".{domain}", autoescape=True))
        .order_by(SandboxHost.name))
    return list(found)


async def check_nameserver_objects(session: AsyncSession, names: Iterable[str],
                                   tlds: Iterable[str]) -> None:
    """Refusal 2303 for a nameserver inside the served TLDs that is not a host object (see
    the module's docstring for why external ones need none)."""
    served = tuple(tlds)
    for name in names:
        if name.split(".")[-1] in served and await live_host(session, name) is None:
            raise Refusal(ResultCode.OBJECT_DOES_NOT_EXIST,
                          f"the nameserver {name} is inside a served TLD and is not a host "
                          "object; create the host first")


async def move_subordinate_hosts(session: AsyncSession, domain: SandboxDomain,
                                 now: datetime) -> None:
    """Subordinate hosts follow their domain to its new sponsor (RFC 5732 section 1: the
    sponsor of an internal host is the sponsor of its superordinate domain)."""
    for host in await subordinate_hosts(session, domain.name):
        host.sponsor_id = domain.sponsor_id
        host.transferred_at = now


async def check_hosts(state: SandboxState, check: HostCheck) -> HostCheckData:
    results: list[CheckResult] = []
    async with state.store.read() as session:
        for raw in check.names:
            try:
                name = host_name(raw)
            except Refusal:
                results.append(CheckResult(raw, False, "Invalid host name"))
                continue
            taken = await live_host(session, name) is not None
            results.append(CheckResult(name, not taken, "In use" if taken else None))
    return HostCheckData(tuple(results))


async def create_host(state: SandboxState, create: HostCreate, client: str) -> HostCreateData:
    """Raises Refusal: 2005 not a host name; 2306 an address listed twice, addresses for an
    external host, a host named as a domain of a served TLD; 2003 an internal host without an
    address; 2303 its superordinate domain is not registered; 2201 that domain is another
    registrar's; 2304 that domain is pending deletion; 2302 the host exists."""
    name = host_name(create.name)
    addresses = _address_rows(create.addresses)
    parent = superordinate(name, state.config.tlds)
    _check_glue(name, parent, addresses)
    now = state.clock.now()
    async with state.store.write() as session:
        if await live_host(session, name) is not None:
            raise Refusal(ResultCode.OBJECT_EXISTS, f"host {name} exists")
        if parent is not None:
            await _check_superordinate(session, parent, client)
        session.add(SandboxHost(
            name=name, roid=f"H{secrets.token_hex(8).upper()}-SANDBOX", sponsor_id=client,
            creator_id=client, statuses=[], addresses=_ordered_addresses(addresses),
            created_at=now))
    log.info("sandbox:host:created", registrar=client, host=name)
    return HostCreateData(name, now)


async def host_info(state: SandboxState, info: HostInfo) -> HostInfoData:
    """Any registrar may read a host (RFC 5732 has no authInfo for hosts). Raises Refusal:
    2005, 2303."""
    name = host_name(info.name)
    async with state.store.read() as session:
        host = await existing_host(session, name)
        linked = bool(await domains_naming(session, name))
    statuses = [*shown_statuses(host.statuses), *([LINKED] if linked else [])]
    return HostInfoData(
        name=host.name, roid=host.roid, statuses=tuple(Status(value) for value in statuses),
        sponsoring_client=host.sponsor_id, created_by=host.creator_id,
        created=host.created_at,
        addresses=tuple(ipaddress.ip_address(address) for address in host.addresses),
        updated_by=host.updater_id, updated=host.updated_at, transferred=host.transferred_at)


async def update_host(state: SandboxState, update: HostUpdate, client: str) -> None:
    """Addresses, statuses and the name, all of it or nothing. A renamed host stays the
    nameserver of the domains that name it.

    Raises Refusal: 2003 it changes nothing; 2306 a server or unknown status, an add of what
    is there or a removal of what is not, addresses on an external host, an internal host
    left without an address; 2005 a bad name; 2303 no such host, or the new name's
    superordinate domain is not registered; 2201 not the sponsor (of the host, or of the new
    name's domain); 2302 the new name is taken; 2304 what the statuses prohibit."""
    name = host_name(update.name)
    added, removed = status_values(update.add.statuses), status_values(update.remove.statuses)
    other_change = bool(update.add.addresses or update.remove.addresses or update.new_name)
    if not (other_change or added or removed):
        raise Refusal(ResultCode.REQUIRED_PARAMETER_MISSING, "the update changes nothing")
    check_client_statuses(added | removed, HOST_CLIENT_STATUSES, "host")
    new_name = None if update.new_name is None else host_name(update.new_name, "host:chg")
    async with state.store.write() as session:
        host = await existing_host(session, name)
        _check_host_sponsor(host, client)
        reason = refusal(Operation.UPDATE, host.statuses, adding=added, removing=removed,
                         changes_other_fields=other_change)
        if reason is not None:
            raise Refusal(ResultCode.OBJECT_STATUS_PROHIBITS_OPERATION,
                          reason.replace("domain", "host"))
        statuses = changed(host.statuses, added, removed, "status", "host")
        addresses = changed(host.addresses, _address_rows(update.add.addresses),
                            _address_rows(update.remove.addresses), "address", "host")
        final_name = name if new_name is None or new_name == name else new_name
        parent = superordinate(final_name, state.config.tlds)
        _check_glue(final_name, parent, sorted(addresses))
        if final_name != name:
            if await live_host(session, final_name) is not None:
                raise Refusal(ResultCode.OBJECT_EXISTS, f"host {final_name} exists")
            if parent is not None:
                await _check_superordinate(session, parent, client)
            for domain in await domains_naming(session, name):
                domain.nameservers = [final_name if host_name_ == name else host_name_
                                      for host_name_ in domain.nameservers]
        host.name = final_name
        host.statuses = sorted(statuses)
        host.addresses = _ordered_addresses(addresses)
        host.updated_at = state.clock.now()
        host.updater_id = client
    log.info("sandbox:host:updated", registrar=client, host=name, renamed_to=new_name)


async def delete_host(state: SandboxState, delete: HostDelete, client: str) -> None:
    """Raises Refusal: 2005; 2303 no such host; 2201 not the sponsor; 2304 a status
    prohibits deletion; 2305 a domain names the host as a nameserver."""
    name = host_name(delete.name)
    async with state.store.write() as session:
        host = await existing_host(session, name)
        _check_host_sponsor(host, client)
        reason = refusal(Operation.DELETE, host.statuses)
        if reason is not None:
            raise Refusal(ResultCode.OBJECT_STATUS_PROHIBITS_OPERATION,
                          reason.replace("domain", "host"))
        users = await domains_naming(session, name)
        if users:
            raise Refusal(ResultCode.OBJECT_ASSOCIATION_PROHIBITS_OPERATION,
                          f"host {name} is a nameserver of {users[0].name}"
                          + (f" and {len(users) - 1} more" if len(users) > 1 else ""))
        host.deleted_at = state.clock.now()
        host.updater_id = client
    log.info("sandbox:host:deleted", registrar=client, host=name)


def check_client_statuses(values: Iterable[str], allowed: frozenset[str], what: str) -> None:
    """Refusal 2306 for a status a registrar may not add or remove on that kind of object."""
    foreign = sorted(frozenset(values) - allowed)
    if foreign:
        raise Refusal(ResultCode.PARAMETER_VALUE_POLICY_ERROR,
                      f"a registrar sets only {', '.join(sorted(allowed))} on a {what}, not "
                      f"{', '.join(foreign)}")


def _check_host_sponsor(host: SandboxHost, client: str) -> None:
    if host.sponsor_id != client:
        raise Refusal(ResultCode.AUTHORIZATION_ERROR,
                      f"host {host.name} is sponsored by another registrar")


async def _check_superordinate(session: AsyncSession, parent: str, client: str) -> None:
    domain = await live_domain(session, parent)
    if domain is None:
        raise Refusal(ResultCode.OBJECT_DOES_NOT_EXIST,
                      f"{parent}, the host's superordinate domain, is not registered")
    check_sponsor(domain, client)
    if DomainStatus.PENDING_DELETE in domain.statuses:
        raise Refusal(ResultCode.OBJECT_STATUS_PROHIBITS_OPERATION,
                      f"{parent}, the host's superordinate domain, is pending deletion")


def _check_glue(name: str, parent: str | None, addresses: Sequence[str]) -> None:
    if parent is None and addresses:
        raise Refusal(ResultCode.PARAMETER_VALUE_POLICY_ERROR,
                      f"host {name} is outside the served TLDs: it takes no addresses here")
    if parent is not None and not addresses:
        raise Refusal(ResultCode.REQUIRED_PARAMETER_MISSING,
                      f"host {name} is inside a served TLD: it needs at least one address")


def _address_rows(addresses: Iterable[HostAddress]) -> list[str]:
    rows = [address.compressed for address in addresses]
    if len(set(rows)) != len(rows):
        raise Refusal(ResultCode.PARAMETER_VALUE_POLICY_ERROR, "host:addr: an address is "
                      "listed twice")
    return rows


def _ordered_addresses(addresses: Iterable[str]) -> list[str]:
    """IPv4 before IPv6, each in numeric order."""
    return [str(a) for a in sorted((ipaddress.ip_address(a) for a in addresses),
                                   key=lambda a: (a.version, int(a)))]


__all__ = ["HOST_CLIENT_STATUSES", "check_client_statuses", "check_hosts",
           "check_nameserver_objects", "create_host", "delete_host", "domains_naming",
           "existing_host", "host_info", "host_name", "live_host", "move_subordinate_hosts",
           "subordinate_hosts", "superordinate", "update_host"]
