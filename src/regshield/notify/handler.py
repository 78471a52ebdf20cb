"""The outbox handler of `notify:email`: address a queued notice and send it, one message to
each recipient, recording what became of each one.

Recipients are resolved when the notice is sent: a contact's address is opened from its sealed
data, a user's from `User.email_sealed`, an account's owners are its users with the role
`owner` that are not disabled. Two references to the same address make one message. A
recipient that no longer exists (a deleted contact, a disabled user) is skipped with an event,
so the notice completes instead of failing again and again.

Each outcome is an event (`notify:email:sent`, `:undeliverable`, `:skipped`) under the request
id of the change, which is the evidence that the holder was told and also what makes a retry
idempotent: recipients already recorded for this notice are not sent it again. A message sent
just before a crash, and not yet recorded, is sent again with the same Message-ID.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from cryptography.exceptions import InvalidTag
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from regshield.config import SmtpSettings
from regshield.flows.contacts import open_contact
from regshield.flows.context import RequestContext, system_actor
from regshield.flows.disclosure import LETTER_KIND
from regshield.flows.notices import MAIL_KIND as NOTICES_MAIL_KIND
from regshield.flows.runner import Tx, run_flow
from regshield.flows.users import INVITATION_KIND, user_email
from regshield.notify.delivery import MessageRefused, open_transport
from regshield.notify.disclosure import send_letter
from regshield.notify.invitations import send_invitation
from regshield.notify.messages import Letterhead, Notice, compose
from regshield.notify.notices import send_registrant_notice
from regshield.notify.requests import KIND, Recipient, previous_address_binding
from regshield.outbox.worker import Handler
from regshield.security.fields import Sealer
from regshield.services import Services
from regshield.store.models import Event, User
from regshield.store.queries.accounts import account_by_public_id, public_ids, registrar
from regshield.store.queries.contacts import contact_by_handle
from regshield.store.queries.users import user_by_public_id, users_of_account

OUTCOMES = ("sent", "undeliverable", "skipped")
log = structlog.get_logger("regshield.notify")


def handlers() -> dict[str, Handler]:
    """The outbox handlers of this package, for the worker that `regshield serve` starts."""
    return {KIND: send_notice, LETTER_KIND: send_letter, NOTICES_MAIL_KIND: send_registrant_notice,
            INVITATION_KIND: send_invitation}


@dataclass(frozen=True)
class Addressee:
    """A recipient resolved to an address; `label` names it in events (never the address)."""

    label: str
    account: str | None
    address: str = field(repr=False)


@dataclass(frozen=True)
class Skipped:
    label: str
    account: str | None
    reason: str


@dataclass
class Resolution:
    addressees: list[Addressee] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    _seen: set[str] = field(default_factory=set, repr=False)

    def add(self, label: str, account: str | None, address: str) -> None:
        if address.casefold() not in self._seen:
            self._seen.add(address.casefold())
            self.addressees.append(Addressee(label, account, address))


async def send_notice(services: Services, payload: dict[str, Any]) -> None:
    """Send the notice in `payload` to each recipient not yet recorded as done."""
    notice = Notice.from_payload(payload)
    recipients = [Recipient.from_payload(r) for r in payload.get("recipients") or []]
    async with services.store.read() as session:
        letterhead = await _letterhead(session, services.settings.smtp)
        resolution = await _resolve(session, services.sealer, recipients)
        event_seq = await _event_seq(session, notice)
        done = await _recorded(session, notice)
    for skip in resolution.skipped:
        if skip.label not in done:
            await _record(services, notice, "skipped", skip.account, recipient=skip.label,
                          reason=skip.reason)
            log.info("notify.skipped", change=str(notice.change), recipient=skip.label,
                     reason=skip.reason, request_id=notice.request_id)
    transport = open_transport(services.settings)
    try:
        for addressee in resolution.addressees:
            if addressee.label in done:
                continue
            message = compose(notice, addressee.address, letterhead,
                              sent_at=services.clock.now(), event_seq=event_seq)
            try:
                await transport.send(message, addressee.address)
            except MessageRefused as refused:
                await _record(services, notice, "undeliverable", addressee.account,
                              recipient=addressee.label, refusal=refused.reason)
                log.warning("notify.undeliverable", change=str(notice.change),
                            recipient=addressee.label, refusal=refused.reason,
                            request_id=notice.request_id)
                continue
            await _record(services, notice, "sent", addressee.account, recipient=addressee.label,
                          message=str(message["Message-ID"]), via=transport.via)
            log.info("notify.sent", change=str(notice.change), recipient=addressee.label,
                     via=transport.via, request_id=notice.request_id)
    finally:
        await transport.close()


async def _letterhead(session: AsyncSession, smtp: SmtpSettings) -> Letterhead:
    record = await registrar(session)
    name = record.name if record is not None else "regshield"
    abuse = record.abuse_email if record is not None else None
    return Letterhead(registrar=name, sender=smtp.sender, report_to=smtp.report_to or abuse)


async def _resolve(session: AsyncSession, sealer: Sealer,
                   recipients: Sequence[Recipient]) -> Resolution:
    """Open the address of every recipient that still exists, in the order given."""
    resolution = Resolution()
    for recipient in dict.fromkeys(recipients):
        if recipient.kind == "contact":
            contact = await contact_by_handle(session, recipient.reference, include_deleted=True)
            if contact is None:
                resolution.skipped.append(Skipped(recipient.label, None, "contact_unknown"))
                continue
            account = (await public_ids(session, {contact.account_id}))[contact.account_id]
            if contact.deleted_at is not None:
                resolution.skipped.append(Skipped(recipient.label, account, "contact_deleted"))
                continue
            view = await open_contact(session, sealer, contact, account)
            resolution.add(recipient.label, account, view.data.email)
        elif recipient.kind == "contact_previous":
            await _add_previous(session, sealer, resolution, recipient)
        elif recipient.kind == "user":
            user = await user_by_public_id(session, recipient.reference)
            if user is None:
                resolution.skipped.append(Skipped(recipient.label, None, "user_unknown"))
                continue
            await _add_user(session, sealer, resolution, user)
        else:
            owner_account = await account_by_public_id(session, recipient.reference)
            if owner_account is None:
                resolution.skipped.append(Skipped(recipient.label, None, "account_unknown"))
                continue
            owners = [u for u in await users_of_account(session, owner_account.id)
                      if u.role == "owner" and u.disabled_at is None]
            if not owners:
                resolution.skipped.append(Skipped(recipient.label, owner_account.public_id,
                                                  "account_without_owners"))
            for owner in owners:
                await _add_user(session, sealer, resolution, owner)
    return resolution


async def _add_previous(session: AsyncSession, sealer: Sealer, resolution: Resolution,
                        recipient: Recipient) -> None:
    """A contact's address before an edit, opened with the contact's data key."""
    handle, _, sealed = recipient.reference.partition(":")
    contact = await contact_by_handle(session, handle, include_deleted=True)
    if contact is None:
        resolution.skipped.append(Skipped(recipient.label, None, "contact_unknown"))
        return
    account = (await public_ids(session, {contact.account_id}))[contact.account_id]
    data_key = await sealer.data_key(session, contact.data_key_id)
    try:
        address = Sealer.open_json(data_key, base64.urlsafe_b64decode(sealed),
                                   previous_address_binding(handle))
    except (ValueError, InvalidTag):
        resolution.skipped.append(Skipped(recipient.label, account, "address_unreadable"))
        return
    resolution.add(recipient.label, account, str(address))


async def _add_user(session: AsyncSession, sealer: Sealer, resolution: Resolution,
                    user: User) -> None:
    label = f"user:{user.public_id}"
    account = None
    if user.account_id is not None:
        account = (await public_ids(session, {user.account_id}))[user.account_id]
    if user.disabled_at is not None:
        resolution.skipped.append(Skipped(label, account, "user_disabled"))
        return
    resolution.add(label, account, await user_email(session, sealer, user))


async def _event_seq(session: AsyncSession, notice: Notice) -> int | None:
    """The sequence number of the event that records the change (found through the indexed
    time, which the event and the notice share)."""
    if notice.event is None:
        return None
    query = (select(Event.seq)
             .where(Event.occurred_at == notice.occurred_at, Event.tag == notice.event,
                    Event.request_id == notice.request_id)
             .order_by(Event.seq).limit(1))
    return (await session.execute(query)).scalar_one_or_none()


async def _recorded(session: AsyncSession, notice: Notice) -> set[str]:
    """Labels of the recipients whose outcome for this notice is already an event."""
    query = select(Event.summary).where(
        Event.tag.in_([f"notify:email:{outcome}" for outcome in OUTCOMES]),
        Event.request_id == notice.request_id, Event.occurred_at >= notice.occurred_at)
    return {str(summary["recipient"]) for summary in (await session.execute(query)).scalars()
            if summary.get("notice") == notice.key}


@dataclass(frozen=True)
class NoticeOutcomeRecord:
    """Record what became of one recipient's message. Raises nothing of its own."""

    outcome: str
    account: str | None
    summary: dict[str, Any]

    async def run(self, tx: Tx) -> None:
        tx.record(f"notify:email:{self.outcome}", account=self.account, **self.summary)


async def _record(services: Services, notice: Notice, outcome: str, account: str | None,
                  **summary: Any) -> None:
    details = {"notice": notice.key, "change": str(notice.change), **summary}
    if notice.domain:
        details["domain"] = notice.domain
    context = RequestContext("system", request_id=notice.request_id)
    await run_flow(services, system_actor("notify"), context,
                   NoticeOutcomeRecord(outcome, account, details))
