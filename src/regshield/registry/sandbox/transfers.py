"""Transfers and the poll queue in the sandbox's state: ending a transfer (approved by either
party or by the registry when its time is up), and the service messages that tell registrars.

No EPP refusals here: the session decides who may do what; this module changes the records in
the caller's transaction and never commits.
"""

from __future__ import annotations

from datetime import datetime

import structlog
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from regshield.clock import as_utc
from regshield.registry.responses import DomainTransferData
from regshield.registry.sandbox.hosts import move_subordinate_hosts
from regshield.registry.sandbox.models import SandboxDomain, SandboxMessage, SandboxTransfer
from regshield.rules.statuses import DomainStatus

PENDING = "pending"
# What each ending of a transfer is called in a poll message, by its RFC 5731 trStatus.
OUTCOMES: dict[str, str] = {
    "clientApproved": "Transfer approved",
    "clientRejected": "Transfer rejected",
    "clientCancelled": "Transfer cancelled",
    "serverApproved": "Transfer approved by the registry",
}
log = structlog.get_logger("regshield.sandbox")


def transfer_data(transfer: SandboxTransfer, domain_name: str) -> DomainTransferData:
    return DomainTransferData(
        name=domain_name, status=transfer.status, requesting_client=transfer.requesting_id,
        requested=transfer.requested_at, acting_client=transfer.acting_id,
        act_by=transfer.act_by, expires=transfer.expires_at)


async def latest_transfer(session: AsyncSession, domain: SandboxDomain) -> SandboxTransfer | None:
    found = await session.scalars(select(SandboxTransfer)
                                  .where(SandboxTransfer.domain_id == domain.id)
                                  .order_by(SandboxTransfer.id.desc()).limit(1))
    return found.one_or_none()


def queue_message(session: AsyncSession, registrar_id: str, text: str, now: datetime,
                  about: DomainTransferData | None = None) -> None:
    snapshot = None if about is None else {
        "name": about.name, "status": about.status, "reID": about.requesting_client,
        "reDate": about.requested.isoformat(), "acID": about.acting_client,
        "acDate": about.act_by.isoformat(),
        "exDate": "" if about.expires is None else about.expires.isoformat()}
    session.add(SandboxMessage(registrar_id=registrar_id, queued_at=now, summary=text,
                               transfer=snapshot))


def message_transfer_data(message: SandboxMessage) -> DomainTransferData | None:
    """The trnData a message carries, as it was when the message was queued."""
    snapshot = message.transfer
    if snapshot is None:
        return None
    return DomainTransferData(
        name=snapshot["name"], status=snapshot["status"], requesting_client=snapshot["reID"],
        requested=_moment(snapshot["reDate"]), acting_client=snapshot["acID"],
        act_by=_moment(snapshot["acDate"]),
        expires=_moment(snapshot["exDate"]) if snapshot["exDate"] else None)


def _moment(value: str) -> datetime:
    return as_utc(datetime.fromisoformat(value))


async def end_transfer(session: AsyncSession, domain: SandboxDomain,
                       transfer: SandboxTransfer, status: str, now: datetime
                       ) -> DomainTransferData:
    """End a pending transfer with `status` and tell the party that did not act (both parties
    when the registry approved it). On approval the gaining registrar sponsors the domain and
    its subordinate hosts, the expiry moves by the period asked for and the authInfo is
    cleared: it is single use (RFC 9154 section 4.3)."""
    transfer.status = status
    transfer.resolved_at = now
    domain.statuses = [value for value in domain.statuses
                       if value != DomainStatus.PENDING_TRANSFER]
    if status in ("clientApproved", "serverApproved"):
        domain.sponsor_id = transfer.requesting_id
        domain.expires_at = transfer.expires_at
        domain.auth_info_hash = None
        domain.transferred_at = now
        await move_subordinate_hosts(session, domain, now)
    else:
        # The exDate reported from now on is the expiry the domain keeps.
        transfer.expires_at = domain.expires_at
    data = transfer_data(transfer, domain.name)
    text = f"{OUTCOMES[status]}: {domain.name}"
    told = {"clientApproved": (transfer.requesting_id,),
            "clientRejected": (transfer.requesting_id,),
            "clientCancelled": (transfer.acting_id,),
            "serverApproved": (transfer.requesting_id, transfer.acting_id)}[status]
    for registrar_id in told:
        queue_message(session, registrar_id, text, now, data)
    log.info("sandbox:transfer:ended", domain=domain.name, status=status,
             gaining=transfer.requesting_id, losing=transfer.acting_id)
    return data


async def approve_due_transfers(session: AsyncSession, now: datetime) -> None:
    """The registry approves every pending transfer whose losing registrar let its time pass
    (Transfer Policy: auto-approval after 5 days)."""
    due = await session.execute(
        select(SandboxTransfer, SandboxDomain)
        .join(SandboxDomain, SandboxDomain.id == SandboxTransfer.domain_id)
        .where(SandboxTransfer.status == PENDING, SandboxTransfer.act_by <= now))
    for transfer, domain in due:
        await end_transfer(session, domain, transfer, "serverApproved", now)


async def has_due_transfers(session: AsyncSession, now: datetime) -> bool:
    count = await session.scalar(select(func.count()).select_from(SandboxTransfer).where(
        SandboxTransfer.status == PENDING, SandboxTransfer.act_by <= now))
    return bool(count)


async def waiting_messages(session: AsyncSession, registrar_id: str) -> int:
    count = await session.scalar(select(func.count()).select_from(SandboxMessage).where(
        SandboxMessage.registrar_id == registrar_id, SandboxMessage.acknowledged_at.is_(None)))
    return int(count or 0)


async def oldest_message(session: AsyncSession, registrar_id: str) -> SandboxMessage | None:
    found = await session.scalars(
        select(SandboxMessage)
        .where(SandboxMessage.registrar_id == registrar_id,
               SandboxMessage.acknowledged_at.is_(None))
        .order_by(SandboxMessage.id).limit(1))
    return found.one_or_none()


__all__ = ["PENDING", "approve_due_transfers", "end_transfer", "has_due_transfers",
           "latest_transfer", "message_transfer_data", "oldest_message", "queue_message",
           "transfer_data", "waiting_messages"]
