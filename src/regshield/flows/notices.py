"""Registrant notices that ICANN policy requires, and their ledger: the annual registration
data reminder (WDRP) and the expiry notices (ERRP), refs/icann-obligations.md rows 19 and 20.

`NoticesSweep` (run by `flows/sweeps.py`) finds the notices due (rules/notices.py decides,
policy/notices.py holds the numbers) among the few domains whose expiry or anniversary is in a
window, and for each writes a `NotificationLedger` row, an event `notice:<kind>:queued` and the
outbox row of its mail (`notices:mail`, sent by notify/notices.py), in one transaction. The
ledger's unique (domain, kind, cycle) makes each notice once per cycle: a second sweep, or two
running at once on PostgreSQL, finds the row there and queues nothing.

A notice goes to the registrant (its contact's address) and to the account holder (the
account's owners). Its ledger row is the compliance evidence: what was sent, when, to which
roles, late or on time, and whether it bounced (`mark_bounced`: a refusal when the mail was
sent, notify/notices.py, or a bounce reported later, `NoticeBounceRecord`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from regshield.errors import FieldError, NotFound, PermissionDenied, ValidationFailed
from regshield.flows.accuracy import reverify_after_bounce
from regshield.flows.context import Actor
from regshield.flows.runner import Tx
from regshield.policy.notices import notice_policy
from regshield.rules.names import validate_domain_name
from regshield.rules.notices import (
    SHORTEST_YEAR,
    DueNotice,
    NoticeKind,
    NoticeSubject,
    due_notices,
    expiry_range,
)
from regshield.services import Services
from regshield.store.models import Contact, Domain, NotificationLedger
from regshield.store.queries.accounts import public_ids
from regshield.store.queries.contacts import contact_by_handle
from regshield.store.queries.domains import live_domain
from regshield.store.queries.notices import (
    insert_notice,
    notice_candidates,
    notices_of_domain,
    notices_sent,
)

MAIL_KIND = "notices:mail"
# Notices queued by one sweep at most (the rest go in the next pass, a minute later): the first
# run on an installation with many domains a year old must not be one huge transaction.
SWEEP_LIMIT = 500
PAGE = 200
MAX_LIST = 500

# How a notice names a contact recipient (never by address): `contact:<handle>`.
CONTACT_LABEL = "contact:"


def mail_key(domain_id: int, kind: str, cycle: str) -> str:
    """The outbox dedupe key of a notice's mail: one per ledger row."""
    return f"{MAIL_KIND}:{domain_id}:{kind}:{cycle}"


@dataclass(frozen=True)
class NoticesSweep:
    """Queue every WDRP reminder and ERRP notice due now, once per (domain, kind, cycle).

    Starts no registry operation: returns an empty list, as the sweeps' tuple expects. Raises
    nothing of its own."""

    limit: int = SWEEP_LIMIT

    async def run(self, tx: Tx) -> list[str]:
        policy = notice_policy(tx.now)
        ranges = {window.kind: expiry_range(window, tx.now) for window in policy.expiry_notices}
        queued, after_id = 0, 0
        while queued < self.limit:
            page = await notice_candidates(
                tx.session, expiry_ranges=ranges, reminder_kind=NoticeKind.WDRP,
                reminder_since=tx.now - SHORTEST_YEAR, after_id=after_id, limit=PAGE)
            if not page:
                break
            after_id = page[-1].id
            sent = await notices_sent(tx.session, [domain.id for domain in page])
            accounts = await public_ids(tx.session, {domain.account_id for domain in page})
            for domain in page:
                subject = NoticeSubject(domain.created_at, domain.expires_at,
                                        active=domain.state == "active")
                for due in due_notices(subject, tx.now, policy, sent[domain.id]):
                    if queued < self.limit and await _queue(tx, domain,
                                                            accounts[domain.account_id], due):
                        queued += 1
        return []


async def _queue(tx: Tx, domain: Domain, account: str, due: DueNotice) -> bool:
    recipients = []
    if domain.registrant_id is not None:
        registrant = await tx.session.get(Contact, domain.registrant_id)
        if registrant is not None and registrant.deleted_at is None:
            recipients.append({"role": "registrant", "recipient": f"contact:{registrant.handle}"})
    recipients.append({"role": "account_holder", "recipient": f"account_owners:{account}"})
    key = mail_key(domain.id, due.kind, due.cycle)
    notice_id = await insert_notice(tx.session, {
        "domain_id": domain.id, "kind": str(due.kind), "cycle": due.cycle, "about": due.about,
        "recipients": recipients, "late": due.late, "queued_at": tx.now, "outbox_key": key})
    if notice_id is None:  # a concurrent sweep has it
        return False
    tx.record(f"notice:{due.kind}:queued", account=account, domain=domain.name,
              notice=notice_id, cycle=due.cycle, late=due.late,
              recipients=[r["recipient"] for r in recipients])
    tx.enqueue(MAIL_KIND, {"notice": notice_id, "request_id": tx.context.request_id,
                           "occurred_at": tx.now.isoformat()}, dedupe_key=key)
    return True


async def mark_bounced(tx: Tx, notice_id: int, *, recipient: str | None = None,
                       reason: str | None = None) -> NotificationLedger | None:
    """Mark a notice as bounced (the first bounce counts) and record `notice:<kind>:bounced`,
    inside the caller's flow. `recipient` is a label (`contact:...`), never an address;
    `reason` a reply code or a fixed phrase. Returns the row, or None for an unknown id."""
    row = await tx.session.get(NotificationLedger, notice_id)
    if row is None:
        return None
    domain = await tx.session.get(Domain, row.domain_id)
    first = row.bounced_at is None
    if first:
        row.bounced_at = tx.now
    account = None
    if domain is not None:
        account = (await public_ids(tx.session, {domain.account_id}))[domain.account_id]
    tx.record(f"notice:{row.kind}:bounced", account=account,
              domain=domain.name if domain is not None else None, notice=row.id,
              cycle=row.cycle, recipient=recipient, reason=reason, first=first)
    # A bounce to the registrant is contrary evidence (WAPS 4): its data is verified again.
    if first and recipient is not None and recipient.startswith(CONTACT_LABEL):
        contact = await contact_by_handle(tx.session, recipient.removeprefix(CONTACT_LABEL))
        if contact is not None:
            await reverify_after_bounce(tx, contact, f"notice:{row.id}")
    return row


@dataclass(frozen=True)
class NoticeBounceRecord:
    """Record that a notice bounced (a delivery status notification, a refusal). Staff or the
    system only. Raises PermissionDenied, NotFound."""

    notice: int
    recipient: str | None = None
    reason: str | None = None

    async def run(self, tx: Tx) -> NotificationLedger:
        if not tx.actor.is_staff:
            raise PermissionDenied("only staff or the system record bounces")
        tx.actor.require("domains", "write")
        row = await mark_bounced(tx, self.notice, recipient=self.recipient, reason=self.reason)
        if row is None:
            raise NotFound("no such notice")
        return row


# --- reads ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class NoticeView:
    """A ledger row as staff and the account read it. `delivery`: queued (the outbox has not
    run it yet), done (the worker ran it: each recipient's outcome is a `notify:email:*`
    event), failed (given up), unknown (the outbox row is gone)."""

    id: int
    domain: str
    kind: str
    cycle: str
    about: datetime
    recipients: list[dict[str, str]]
    late: bool
    queued_at: datetime
    bounced_at: datetime | None
    delivery: str
    outbox_id: int | None

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "domain": self.domain, "kind": self.kind, "cycle": self.cycle,
                "about": self.about, "recipients": self.recipients, "late": self.late,
                "queued_at": self.queued_at, "bounced_at": self.bounced_at,
                "delivery": self.delivery, "outbox_id": self.outbox_id}


async def notices_list(services: Services, actor: Actor, name: str, *,
                       limit: int = MAX_LIST) -> list[NoticeView]:
    """The ledger of one domain, newest first: compliance evidence, so it needs the right to
    read the event log (`events:read`: compliance, auditors, admins; an account's owners for
    their own domains). Raises PermissionDenied, ValidationFailed, NotFound."""
    actor.require("events", "read")
    errors: list[FieldError] = []
    parsed = validate_domain_name(name, "name", errors)
    if parsed is None:
        raise ValidationFailed(errors)
    if not 1 <= limit <= MAX_LIST:
        raise ValidationFailed([FieldError("limit", "out_of_range",
                                           f"must be between 1 and {MAX_LIST}")])
    async with services.store.read() as session:
        domain = await live_domain(session, parsed.ascii)
        if domain is None:
            raise NotFound("no such domain")
        if not actor.can("events", "read", domain.account_id):
            raise NotFound("no such domain")  # another account's domain is as none at all
        rows = await notices_of_domain(session, domain.id, limit)
    return [NoticeView(
        id=row.id, domain=domain.name, kind=row.kind, cycle=row.cycle, about=row.about,
        recipients=list(row.recipients), late=row.late, queued_at=row.queued_at,
        bounced_at=row.bounced_at, delivery=_delivery(outbox),
        outbox_id=outbox.id if outbox is not None else None) for row, outbox in rows]


def _delivery(outbox: Any) -> str:
    if outbox is None:
        return "unknown"
    if outbox.failed:
        return "failed"
    return "done" if outbox.completed_at is not None else "queued"
