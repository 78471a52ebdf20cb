"""Registry sync: every live domain of a link compared with the registry's copy.

Drift is a difference nobody asked for through regshield: the registry's staff set a status,
another channel changed the nameservers, a domain was purged or moved while regshield was not
told. `sync_registry` asks the registry (`domain:info` on the link's pool, a few commands at
a time) for each live domain, compares with the row (`differences` in flows/operations.py),
and for each domain that differs records `domains:registry:drift` with the registry's value
and ours for every differing field, then makes the row equal to the registry (`adopt`). A
domain the registry no longer has for us (2303, 2201, or another sponsor) is drift `gone`:
the row ends.

Domains with an operation still open (pending, running, unknown) are skipped: the operation
itself reconciles them. So is a transfer in that is still waiting: the registry does not show
that domain to us yet. A row that changed between the registry's answer and the write is
left for the next run rather than overwritten with an older answer.

Each run ends with `registry:sync:completed` (the counts) and stamps `synced_at` on the
domains found in step.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog

from regshield.flows.context import RequestContext, system_actor
from regshield.flows.operations import Snapshot, adopt, differences, ds_records, holds_of
from regshield.flows.runner import Tx, run_flow
from regshield.registry.client import (
    RegistryConnectionLost,
    RegistryProtocolError,
    RegistryUnavailable,
)
from regshield.registry.codec import ResultCode
from regshield.registry.commands import DomainInfo
from regshield.registry.responses import DomainInfoData, SecDnsInfo
from regshield.services import Services
from regshield.store.models import Account, Domain
from regshield.store.queries.domains import all_live_domains, open_operations

CONCURRENCY = 4  # domain:info commands in flight at once, at most
SYNCED_STATES = frozenset({"active", "pending_delete"})
GONE_CODES = frozenset({ResultCode.OBJECT_DOES_NOT_EXIST, ResultCode.AUTHORIZATION_ERROR})
GONE = "gone"
log = structlog.get_logger("regshield.registry")


@dataclass(frozen=True)
class Drift:
    domain: str
    differences: tuple[str, ...]


@dataclass
class SyncReport:
    """What one run found: `drift` holds the domains adopted from the registry (`gone`
    among their differences when the registry no longer has them for us)."""

    link: str
    checked: int = 0  # domains the registry was asked about
    in_step: int = 0
    drift: list[Drift] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (domain, why)
    errors: list[tuple[str, str]] = field(default_factory=list)  # (domain, what failed)


@dataclass(frozen=True)
class _Row:
    id: int
    name: str
    updated_at: datetime
    snapshot: Snapshot


@dataclass(frozen=True)
class _Answer:
    row: _Row
    info: DomainInfoData | None = None
    secdns: SecDnsInfo | None = None
    gone: bool = False
    error: str | None = None


async def sync_registry(services: Services, link_name: str, *,
                        concurrency: int = CONCURRENCY) -> SyncReport:
    """Compare every live domain of the link with the registry; record and adopt drift.

    Raises ConfigurationError (no such link), RegistryUnavailable and RegistryLoginRefused
    (the registry cannot be reached at all: nothing was compared). A domain whose own
    command fails is reported in `errors`."""
    link = services.registries.link(link_name)
    report = SyncReport(link.name)
    rows = await _rows(services, link.name, report)
    pool = await services.registries.pool(link)
    client_id = link.endpoint.client_id
    gate = asyncio.Semaphore(max(1, concurrency))

    async def ask(row: _Row) -> _Answer:
        async with gate:
            try:
                response = await pool.execute(DomainInfo(row.name))
            except (RegistryUnavailable, RegistryConnectionLost, RegistryProtocolError) as exc:
                return _Answer(row, error=f"{type(exc).__name__}: {exc.detail}")
        info = response.item(DomainInfoData)
        if response.code in GONE_CODES or (
                info is not None and info.sponsoring_client != client_id):
            return _Answer(row, gone=True)
        if not response.succeeded or info is None:
            return _Answer(row, error=f"{int(response.code)} {response.message}")
        return _Answer(row, info, response.item(SecDnsInfo))

    answers = await asyncio.gather(*(ask(row) for row in rows))
    in_step: list[int] = []
    context = RequestContext("system")
    for answer in answers:
        report.checked += 1
        if answer.error is not None:
            report.errors.append((answer.row.name, answer.error))
            continue
        found = [GONE] if answer.gone else differences(answer.row.snapshot, answer.info,
                                                       answer.secdns)
        if not found:
            in_step.append(answer.row.id)
            continue
        recorded = await run_flow(services, system_actor("registry"), context, DomainDriftRecord(
            link.name, answer.row.id, answer.row.updated_at, answer.info, answer.secdns,
            answer.gone))
        if recorded is None:
            report.skipped.append((answer.row.name, "changed while the registry was asked"))
        elif recorded:
            report.drift.append(Drift(answer.row.name, tuple(recorded)))
        else:
            in_step.append(answer.row.id)
    report.in_step = len(in_step)
    await run_flow(services, system_actor("registry"), context,
                   RegistrySyncRecord(report, tuple(in_step)))
    log.info("registry:sync:done", link=link.name, checked=report.checked,
             drift=len(report.drift), skipped=len(report.skipped), errors=len(report.errors))
    return report


async def _rows(services: Services, link_name: str, report: SyncReport) -> list[_Row]:
    """The live domains of the link that can be compared now; the others go to `skipped`."""
    async with services.store.read() as session:
        domains = await all_live_domains(session, link_name)
        busy = {o.domain_id: o for o in await open_operations(session, [d.id for d in domains])}
    rows: list[_Row] = []
    for domain in domains:
        operation = busy.get(domain.id)
        if operation is not None:
            report.skipped.append((domain.name, f"operation {operation.public_id} "
                                                f"({operation.kind}) is {operation.state}"))
        elif domain.state not in SYNCED_STATES:
            report.skipped.append((domain.name, f"the domain is "
                                                f"{domain.state.replace('_', ' ')}"))
        else:
            rows.append(_Row(domain.id, domain.name, domain.updated_at, snapshot_of(domain)))
    return rows


def snapshot_of(domain: Domain) -> Snapshot:
    """What `differences` compares: the row's registry-side values (contacts are not)."""
    return Snapshot(
        name=domain.name, registry_link=domain.registry_link, expires_at=domain.expires_at,
        nameservers=tuple(domain.nameservers), ds=ds_records(domain.ds),
        registry_statuses=frozenset(domain.registry_statuses), holds=holds_of(domain),
        registrant=None, tech=None)


def _values(found: list[str], domain: Domain, info: DomainInfoData | None,
            secdns: SecDnsInfo | None) -> dict[str, dict[str, Any]]:
    """For each differing field, the registry's value and ours (none of them personal)."""
    if info is None:
        return {}
    registry: dict[str, Any] = {
        "nameservers": list(info.nameservers),
        "ds": [record.to_text() for record in (secdns.ds if secdns else ())],
        "statuses": sorted(s.value for s in info.statuses),
        "expires_at": info.expires.isoformat() if info.expires else None,
    }
    ours: dict[str, Any] = {
        "nameservers": list(domain.nameservers),
        "ds": [record.to_text() for record in ds_records(domain.ds)],
        "statuses": sorted(domain.registry_statuses),
        "expires_at": domain.expires_at.isoformat() if domain.expires_at else None,
    }
    return {name: {"registry": registry[name], "ours": ours[name]}
            for name in found if name in registry}


@dataclass(frozen=True)
class DomainDriftRecord:
    """Record how one domain differs from the registry's copy and adopt the registry's.
    Returns the differences recorded ([] when there are none any more), or None when the row
    changed after `seen_updated_at` or an operation opened on it: the answer is stale then.
    Raises nothing of its own."""

    link: str
    domain_id: int
    seen_updated_at: datetime
    info: DomainInfoData | None
    secdns: SecDnsInfo | None
    gone: bool = False

    async def run(self, tx: Tx) -> list[str] | None:
        domain = await tx.session.get(Domain, self.domain_id)
        if domain is None or domain.ended_at is not None \
                or domain.updated_at != self.seen_updated_at \
                or await open_operations(tx.session, [domain.id]):
            return None
        if self.gone:
            found = [GONE]
        else:
            found = differences(snapshot_of(domain), self.info, self.secdns)
            if not found:
                return []
        account = await tx.session.get(Account, domain.account_id)
        assert account is not None
        tx.record("domains:registry:drift", account=account.public_id, domain=domain.name,
                  link=self.link, source="sync", differences=found,
                  values=_values(found, domain, self.info, self.secdns))
        if self.gone:
            domain.state, domain.ended_at = "ended", tx.now
        else:
            assert self.info is not None
            adopt(domain, self.info, self.secdns, tx.now)
        domain.updated_at = tx.now
        log.info("registry:drift:adopted", domain=domain.name, differences=found)
        return found


@dataclass(frozen=True)
class RegistrySyncRecord:
    """Close a sync run: its counts as an event, `synced_at` on the domains found in step."""

    report: SyncReport
    in_step: tuple[int, ...]

    async def run(self, tx: Tx) -> None:
        for domain_id in self.in_step:
            domain = await tx.session.get(Domain, domain_id)
            if domain is not None and domain.ended_at is None:
                domain.synced_at = tx.now
        report = self.report
        tx.record("registry:sync:completed", account=None, link=report.link,
                  checked=report.checked, in_step=report.in_step,
                  drift=[d.domain for d in report.drift], skipped=len(report.skipped),
                  errors=len(report.errors))


__all__ = [
    "DomainDriftRecord",
    "Drift",
    "RegistrySyncRecord",
    "SyncReport",
    "snapshot_of",
    "sync_registry",
]
