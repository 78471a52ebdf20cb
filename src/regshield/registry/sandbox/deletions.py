"""Deleted domains through the registry grace periods of RFC 3915, in the sandbox's state.

A domain deleted within the add grace period is purged at once. Any other enters the
redemption period (EPP status pendingDelete, rgp status redemptionPeriod), in which its sponsor
may restore it; then pendingDelete (rgp pendingDelete), which nothing undoes; then it is
purged and its name is free. A restore request makes the rgp status pendingRestore; the
sandbox needs no restore report (RFC 3915 section 4.2.5) and gives the domain back when the
configured wait is over. The sponsor is told by poll message at each step the registry takes
on its own.

No EPP refusals here: the session decides who may do what; this module changes the records in
the caller's transaction and never commits (as transfers.py).
"""

from __future__ import annotations

from datetime import datetime

import structlog
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from regshield.registry.sandbox.models import SandboxDomain
from regshield.registry.sandbox.state import SandboxConfig
from regshield.registry.sandbox.transfers import queue_message
from regshield.rules.statuses import DomainStatus

ADD_PERIOD = "addPeriod"
REDEMPTION_PERIOD = "redemptionPeriod"
PENDING_RESTORE = "pendingRestore"
PENDING_DELETE = "pendingDelete"
log = structlog.get_logger("regshield.sandbox")


def in_add_grace(domain: SandboxDomain, now: datetime, config: SandboxConfig) -> bool:
    return now < domain.created_at + config.add_grace_period


def rgp_statuses(domain: SandboxDomain, now: datetime, config: SandboxConfig) -> tuple[str, ...]:
    """The grace periods the domain is in, as an info's rgp:infData reports them."""
    if domain.rgp_status is not None:
        return (domain.rgp_status,)
    return (ADD_PERIOD,) if in_add_grace(domain, now, config) else ()


def start_redemption(domain: SandboxDomain, now: datetime, config: SandboxConfig) -> None:
    domain.statuses = sorted({*domain.statuses, DomainStatus.PENDING_DELETE})
    domain.rgp_status = REDEMPTION_PERIOD
    domain.rgp_ends_at = now + config.redemption_period


def request_restore(domain: SandboxDomain, now: datetime, config: SandboxConfig) -> None:
    domain.rgp_status = PENDING_RESTORE
    domain.rgp_ends_at = now + config.restore_wait


def purge(domain: SandboxDomain, now: datetime) -> None:
    """The name is free again; the record stays, deleted, as history."""
    domain.deleted_at = now
    domain.rgp_status = None
    domain.rgp_ends_at = None


async def advance_deletions(session: AsyncSession, now: datetime,
                            config: SandboxConfig) -> None:
    """Move every deleted domain whose current period has ended on, as far as `now` allows:
    a sandbox that was stopped for weeks catches up in one pass."""
    due = await session.scalars(select(SandboxDomain).where(*_due(now))
                                .order_by(SandboxDomain.rgp_ends_at))
    for domain in due:
        while domain.rgp_ends_at is not None and domain.rgp_ends_at <= now:
            _next_period(session, domain, now, config)


async def has_due_deletions(session: AsyncSession, now: datetime) -> bool:
    count = await session.scalar(select(func.count()).select_from(SandboxDomain)
                                 .where(*_due(now)))
    return bool(count)


def _due(now: datetime) -> tuple[ColumnElement[bool], ...]:
    return (SandboxDomain.rgp_status.is_not(None), SandboxDomain.rgp_ends_at <= now,
            SandboxDomain.deleted_at.is_(None))


def _next_period(session: AsyncSession, domain: SandboxDomain, now: datetime,
                 config: SandboxConfig) -> None:
    ended, ended_at = domain.rgp_status, domain.rgp_ends_at
    assert ended_at is not None
    if ended == REDEMPTION_PERIOD:
        domain.rgp_status = PENDING_DELETE
        domain.rgp_ends_at = ended_at + config.pending_delete_period
        text = "Redemption period ended, deletion pending"
    elif ended == PENDING_RESTORE:
        domain.statuses = [value for value in domain.statuses
                           if value != DomainStatus.PENDING_DELETE]
        domain.rgp_status = None
        domain.rgp_ends_at = None
        text = "Domain restored"
    else:
        purge(domain, ended_at)
        text = "Domain purged"
    queue_message(session, domain.sponsor_id, f"{text}: {domain.name}", now)
    log.info("sandbox:domain:grace_period_ended", domain=domain.name, ended=ended,
             sponsor=domain.sponsor_id)


__all__ = ["ADD_PERIOD", "PENDING_DELETE", "PENDING_RESTORE", "REDEMPTION_PERIOD",
           "advance_deletions", "has_due_deletions", "in_add_grace", "purge",
           "request_restore", "rgp_statuses", "start_redemption"]
