"""The WHOIS Accuracy Program as flows: verifying a registrant, reminding, suspending and
lifting (the rules and numbers are in rules/accuracy.py).

- `verification_after_change` runs inside the transaction that settles a registration, an
  inbound transfer or a change of registrant (flows/operations.py, flows/poll.py): it starts a
  verification of the registrant, unless one is already open for that contact or identical
  data was verified before (then it records the exemption).
- A verification queues `accuracy:verification-mail`; its handler (notify/verification.py)
  mints the token only when it sends the mail (`VerificationMailPrepare` keeps its SHA-256
  digest), so no token is ever written down in clear, in the outbox or anywhere else.
- `AccuracySweep` sends the reminders and, once the 15 days have run out, suspends the
  contact's domains through the status authority (an `ACCURACY_SUSPENSION` hold: clientHold
  and clientTransferProhibited at the registry; nameservers untouched).
- `VerificationConfirm` answers a link: the verification ends, the holds are released and the
  registry is told to drop clientHold.
- `AccuracyComplaint` (staff) and `BounceReported` (staff or regshield itself) start a new
  verification, whatever was verified before: the 15-day clock starts again.

The account's owners are told of each step by notice; the registrant contact gets the links,
and the notices of suspension and lifting. Events name contacts by handle and domains by
name, never by their data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from regshield.errors import FieldError, NotFound, PermissionDenied, ValidationFailed
from regshield.flows.contacts import open_contact
from regshield.flows.operations import holds_of, new_operation, store_holds
from regshield.flows.runner import Tx
from regshield.notify.messages import Change
from regshield.notify.requests import notice, to_account_owners, to_contact
from regshield.rules.accuracy import (
    FINGERPRINT_PURPOSE,
    FORCED_CAUSES,
    Cause,
    State,
    Verdict,
    deadline,
    fingerprint_input,
    link_expiry,
    overdue,
    plausible_token,
    reminder_due,
    verdict,
)
from regshield.rules.contacts import ContactData, validate_contact
from regshield.rules.names import validate_domain_name
from regshield.rules.statuses import Hold, HoldReason, place, release
from regshield.security.tokens import digest, new_public_id
from regshield.store.models import (
    Account,
    Contact,
    ContactVerification,
    Domain,
    VerificationToken,
)
from regshield.store.queries.accounts import registrar
from regshield.store.queries.contacts import contact_by_handle
from regshield.store.queries.domains import live_domain, open_operations

MAIL_KIND = "accuracy:verification-mail"
INITIAL_MAIL = "initial"
MAX_REFERENCE = 64


def suspension_reference(handle: str) -> str:
    """The reference of the accuracy hold for one contact: verifying that contact releases it
    on every domain it was placed on, and on no other hold."""
    return f"contact:{handle}"


def reminder_mail(number: int) -> str:
    return f"reminder-{number}"


@dataclass(frozen=True)
class VerificationView:
    """A verification as flows report it (no personal data)."""

    id: str
    contact: str
    state: str
    cause: str
    domain: str | None
    started_at: datetime
    deadline: datetime

    @classmethod
    def of(cls, row: ContactVerification, handle: str) -> VerificationView:
        return cls(row.public_id, handle, row.state, row.cause, row.domain, row.started_at,
                   deadline(row.started_at))


# --- starting a verification ---------------------------------------------------------------


def fingerprint(tx: Tx, data: ContactData) -> str:
    """The keyed hash (the key ring's index key) of the normalized contact data."""
    return tx.services.keyring.index(FINGERPRINT_PURPOSE, fingerprint_input(data))


async def verification_after_change(tx: Tx, domain: Domain, cause: Cause) -> None:
    """Start the verification of `domain`'s registrant after a confirmed registration,
    inbound transfer or change of registrant (called inside the settling transaction)."""
    account = await tx.session.get(Account, domain.account_id)
    assert account is not None
    contact = await tx.session.get(Contact, domain.registrant_id) \
        if domain.registrant_id is not None else None
    if contact is None:
        # A transfer in keeps the registry's registrant, of which regshield holds no copy.
        tx.record("accuracy:verification:skipped", account=account.public_id,
                  domain=domain.name, cause=str(cause), reason="no_registrant")
        return
    await begin_verification(tx, contact, account, cause, domain.name)


async def begin_verification(tx: Tx, contact: Contact, account: Account, cause: Cause,
                             domain: str | None) -> ContactVerification:
    """Open a verification of `contact`, or join the one already open (unless its time ran
    out), or record that identical verified data exempts it. A complaint or a bounce always
    opens a new one, replacing the open one, and no longer lets the earlier verification of
    the same data exempt anyone."""
    view = await open_contact(tx.session, tx.sealer, contact, account.public_id)
    _revalidate(tx, view.data, contact.handle, account.public_id, domain)
    data_fingerprint = fingerprint(tx, view.data)
    summary: dict[str, Any] = {"contact": contact.handle, "domain": domain, "cause": str(cause)}
    current = await _open_verification(tx, contact.id)
    # An open verification whose time has run out is not joined: the new domain gets its own
    # 15 days and a fresh link (the domains already suspended stay so until it is answered).
    # Nor is one of other data (the registrant edited it since): its link would confirm data
    # that is no longer the registrant's.
    forced = cause in FORCED_CAUSES
    if current is not None and not forced and not overdue(current.started_at, tx.now) \
            and current.fingerprint == data_fingerprint:
        tx.record("accuracy:verification:joined", account=account.public_id,
                  verification=current.public_id, **summary)
        return current
    if not forced:
        earlier = await _verified(tx, data_fingerprint)
        if earlier is not None:
            row = _new_row(tx, contact, account, data_fingerprint, cause, domain, State.EXEMPT)
            row.ended_at = tx.now
            await tx.session.flush()
            tx.record("accuracy:verification:exempt", account=account.public_id,
                      verification=row.public_id, verified_by=earlier.public_id, **summary)
            return row
    replaced: list[str] = []
    if current is not None:
        current.state, current.ended_at = State.SUPERSEDED, tx.now
        replaced.append(current.public_id)
    if forced:
        # Contrary evidence: neither the open verification nor an earlier one of the same
        # data counts any more.
        rows = await tx.session.scalars(select(ContactVerification).where(
            ContactVerification.state.in_([State.PENDING, State.VERIFIED, State.EXEMPT]),
            (ContactVerification.contact_id == contact.id)
            | (ContactVerification.fingerprint == data_fingerprint)))
        for old in rows:
            old.state, old.ended_at = State.SUPERSEDED, old.ended_at or tx.now
            replaced.append(old.public_id)
    row = _new_row(tx, contact, account, data_fingerprint, cause, domain, State.PENDING)
    await tx.session.flush()
    tx.enqueue(MAIL_KIND, {"verification": row.public_id, "mail": INITIAL_MAIL},
               dedupe_key=f"{MAIL_KIND}:{row.public_id}:{INITIAL_MAIL}")
    tx.record("accuracy:verification:started", account=account.public_id,
              verification=row.public_id, deadline=deadline(tx.now).isoformat(),
              replaced=sorted(set(replaced)), **summary)
    return row


def _new_row(tx: Tx, contact: Contact, account: Account, data_fingerprint: str, cause: Cause,
             domain: str | None, state: State) -> ContactVerification:
    row = ContactVerification(
        public_id=new_public_id("ver"), contact_id=contact.id, account_id=account.id,
        fingerprint=data_fingerprint, cause=str(cause), domain=domain, state=str(state),
        started_at=tx.now, reminders_sent=0)
    tx.session.add(row)
    return row


def _revalidate(tx: Tx, data: ContactData, handle: str, account: str,
                domain: str | None) -> None:
    """Record the fields that no longer pass validation (WAPS 1: data kept since rules
    tightened); the verification goes ahead all the same."""
    try:
        validate_contact(data.as_dict())
    except ValidationFailed as failed:
        tx.record("accuracy:validation:failed", account=account, contact=handle,
                  domain=domain, fields=sorted({e.field for e in failed.errors}))


async def _open_verification(tx: Tx, contact_id: int) -> ContactVerification | None:
    return (await tx.session.scalars(select(ContactVerification).where(
        ContactVerification.contact_id == contact_id,
        ContactVerification.state == State.PENDING).order_by(
        ContactVerification.id.desc()).limit(1))).first()


async def _verified(tx: Tx, data_fingerprint: str) -> ContactVerification | None:
    return (await tx.session.scalars(select(ContactVerification).where(
        ContactVerification.fingerprint == data_fingerprint,
        ContactVerification.state == State.VERIFIED).order_by(
        ContactVerification.id.desc()).limit(1))).first()


# --- the mails (run by the outbox handler in notify/verification.py) ------------------------


@dataclass(frozen=True)
class MailPlan:
    """What one verification mail needs; the address is opened here and kept in memory."""

    verification: str
    mail: str
    contact: str
    account: str
    domains: tuple[str, ...]
    deadline: datetime
    link_expires_at: datetime
    registrar: str
    address: str = field(repr=False)


@dataclass(frozen=True)
class VerificationMailPrepare:
    """Keep the digest of the token about to be mailed (replacing the one of an earlier
    attempt at the same mail, which was then never delivered, or is now dead). Returns None
    when the mail is no longer wanted: the verification ended, or the contact is gone."""

    verification: str
    mail: str
    token_hash: str = field(repr=False)

    async def run(self, tx: Tx) -> MailPlan | None:
        row = await _verification(tx, self.verification)
        if row is None or row.state != State.PENDING:
            return None
        contact = await tx.session.get(Contact, row.contact_id)
        account = await tx.session.get(Account, row.account_id)
        assert account is not None
        if contact is None or contact.deleted_at is not None:
            tx.record("accuracy:verification:undeliverable", account=account.public_id,
                      verification=row.public_id, mail=self.mail, reason="contact_deleted")
            return None
        token = (await tx.session.scalars(select(VerificationToken).where(
            VerificationToken.verification_id == row.id,
            VerificationToken.mail == self.mail))).first()
        if token is None:
            token = VerificationToken(verification_id=row.id, mail=self.mail)
            tx.session.add(token)
        token.token_hash, token.created_at = self.token_hash, tx.now
        token.expires_at, token.used_at = link_expiry(tx.now), None
        view = await open_contact(tx.session, tx.sealer, contact, account.public_id)
        domains = tuple(d.unicode_name for d in await _domains_of(tx, contact.id))
        found = await registrar(tx.session)
        tx.record("accuracy:link:issued", account=account.public_id,
                  verification=row.public_id, contact=contact.handle, mail=self.mail,
                  expires_at=token.expires_at.isoformat())
        return MailPlan(row.public_id, self.mail, contact.handle, account.public_id, domains,
                        deadline(row.started_at), token.expires_at,
                        found.name if found else "regshield", view.data.email)


@dataclass(frozen=True)
class VerificationMailRecorded:
    """Record what became of a verification mail; a sent one is told to the account's
    owners (the first as the start of the verification, the others as reminders)."""

    plan: MailPlan
    outcome: str  # sent | undeliverable
    details: dict[str, Any] = field(default_factory=dict)

    async def run(self, tx: Tx) -> None:
        plan = self.plan
        tx.record(f"accuracy:verification:{self.outcome}", account=plan.account,
                  verification=plan.verification, contact=plan.contact, mail=plan.mail,
                  domains=list(plan.domains), **self.details)
        if self.outcome != "sent":
            return
        change = Change.ACCURACY_VERIFICATION if plan.mail == INITIAL_MAIL \
            else Change.ACCURACY_REMINDER
        notice(tx, change=change, recipients=[to_account_owners(plan.account)],
               details={"contact": plan.contact, "domains": list(plan.domains),
                        "deadline": plan.deadline.isoformat()})


# --- answering a link ----------------------------------------------------------------------


@dataclass(frozen=True)
class Confirmation:
    verdict: Verdict
    operations: list[str]


@dataclass(frozen=True)
class VerificationConfirm:
    """Answer a verification link (anyone holding it may: the link is the credential). A
    used, expired or unknown token changes nothing. On success the verification ends and
    every accuracy hold of the contact is released; returns the registry operations that
    drop clientHold (to be run at once). Raises nothing for a bad token."""

    token: str = field(repr=False)

    async def run(self, tx: Tx) -> Confirmation:
        if not plausible_token(self.token):
            return Confirmation(Verdict.UNKNOWN, [])
        token = (await tx.session.scalars(select(VerificationToken).where(
            VerificationToken.token_hash == digest(self.token)))).first()
        row = await tx.session.get(ContactVerification, token.verification_id) \
            if token is not None else None
        answer = verdict(found=row is not None, used=token is not None and
                         token.used_at is not None,
                         expires_at=token.expires_at if token is not None else None,
                         state=row.state if row is not None else None, now=tx.now)
        if answer is Verdict.UNKNOWN:
            return Confirmation(answer, [])
        assert token is not None and row is not None
        account = await tx.session.get(Account, row.account_id)
        contact = await tx.session.get(Contact, row.contact_id)
        assert account is not None and contact is not None
        if answer is not Verdict.VERIFIED:
            tx.record("accuracy:link:refused", account=account.public_id,
                      verification=row.public_id, contact=contact.handle, mail=token.mail,
                      verdict=str(answer))
            return Confirmation(answer, [])
        token.used_at = tx.now
        row.state, row.verified_at, row.ended_at = State.VERIFIED, tx.now, tx.now
        tx.record("accuracy:verification:verified", account=account.public_id,
                  verification=row.public_id, contact=contact.handle, mail=token.mail)
        operations = await _lift(tx, contact, account, row)
        return Confirmation(answer, operations)


async def _lift(tx: Tx, contact: Contact, account: Account,
                row: ContactVerification) -> list[str]:
    reference = suspension_reference(contact.handle)
    started: list[str] = []
    domains = await tx.session.scalars(select(Domain).where(
        Domain.account_id == account.id, Domain.ended_at.is_(None)))
    for domain in domains:
        holds = holds_of(domain)
        if (HoldReason.ACCURACY_SUSPENSION, reference) not in {h.key for h in holds}:
            continue
        store_holds(domain, release(holds, HoldReason.ACCURACY_SUSPENSION, reference))
        domain.updated_at = tx.now
        operation = new_operation(tx, domain, "statuses", {
            "accuracy": "lift", "verification": row.public_id})
        tx.record("accuracy:domain:lifted", account=account.public_id, domain=domain.name,
                  contact=contact.handle, verification=row.public_id,
                  operation=operation.public_id)
        notice(tx, change=Change.ACCURACY_LIFTED, domain=domain.unicode_name,
               recipients=[to_contact(contact.handle), to_account_owners(account.public_id)],
               details={"contact": contact.handle})
        started.append(operation.public_id)
    return started


# --- the sweep -----------------------------------------------------------------------------


@dataclass(frozen=True)
class AccuracySweep:
    """Send the reminders that are due and suspend the domains of registrants whose time has
    run out. Run twice, it does nothing more: a domain with the hold is not suspended again,
    and a reminder counts as sent once queued. A domain with an operation still open at the
    registry is suspended on a later pass. Returns the registry operations it started."""

    async def run(self, tx: Tx) -> list[str]:
        started: list[str] = []
        rows = list(await tx.session.scalars(select(ContactVerification).where(
            ContactVerification.state == State.PENDING).order_by(ContactVerification.id)))
        for row in rows:
            if overdue(row.started_at, tx.now):
                started += await self._suspend(tx, row)
                continue
            due = reminder_due(row.started_at, row.reminders_sent, tx.now)
            if due is None:
                continue
            row.reminders_sent = due
            mail = reminder_mail(due)
            tx.enqueue(MAIL_KIND, {"verification": row.public_id, "mail": mail},
                       dedupe_key=f"{MAIL_KIND}:{row.public_id}:{mail}")
            account = await tx.session.get(Account, row.account_id)
            contact = await tx.session.get(Contact, row.contact_id)
            tx.record("accuracy:reminder:queued",
                      account=account.public_id if account else None,
                      verification=row.public_id, contact=contact.handle if contact else None,
                      mail=mail)
        return started

    @staticmethod
    async def _suspend(tx: Tx, row: ContactVerification) -> list[str]:
        contact = await tx.session.get(Contact, row.contact_id)
        account = await tx.session.get(Account, row.account_id)
        assert contact is not None and account is not None
        hold = Hold.of(HoldReason.ACCURACY_SUSPENSION,
                       reference=suspension_reference(contact.handle))
        started: list[str] = []
        for domain in await _domains_of(tx, contact.id):
            holds = holds_of(domain)
            if hold.key in {h.key for h in holds} or domain.state != "active":
                continue
            if await open_operations(tx.session, [domain.id]):
                continue  # one change at a time; the next pass suspends it
            store_holds(domain, place(holds, hold))
            domain.updated_at = tx.now
            operation = new_operation(tx, domain, "statuses", {
                "accuracy": "suspend", "verification": row.public_id})
            row.suspended_at = row.suspended_at or tx.now
            tx.record("accuracy:domain:suspended", account=account.public_id,
                      domain=domain.name, contact=contact.handle, verification=row.public_id,
                      operation=operation.public_id,
                      deadline=deadline(row.started_at).isoformat())
            notice(tx, change=Change.ACCURACY_SUSPENDED, domain=domain.unicode_name,
                   recipients=[to_contact(contact.handle), to_account_owners(account.public_id)],
                   details={"contact": contact.handle})
            started.append(operation.public_id)
        return started


# --- re-verification -----------------------------------------------------------------------


def _require_staff(tx: Tx) -> None:
    """A complaint or a bounce starts a verification that suspends domains after 15 days: a
    change, for staff who may write `accuracy` (compliance, support, admin), never a read."""
    if not (tx.actor.is_staff and tx.actor.can("accuracy", "write")):
        raise PermissionDenied("only registrar staff with accuracy:write may start a "
                               "re-verification")


def _reference(value: str | None) -> str | None:
    if value is None:
        return None
    if not (isinstance(value, str) and 0 < len(value) <= MAX_REFERENCE
            and all(ch.isalnum() or ch in "._-:#" for ch in value)):
        raise ValidationFailed([FieldError(
            "reference", "invalid",
            f"must be 1 to {MAX_REFERENCE} letters, digits or . _ - : # (a ticket number)")])
    return value


@dataclass(frozen=True)
class AccuracyComplaint:
    """Record an inaccuracy complaint about a domain (WAPS 4) and verify its registrant
    again, whatever was verified before: the 15-day clock starts anew. Staff only.
    Raises PermissionDenied, ValidationFailed (name, reference; a domain without a
    registrant), NotFound."""

    name: str
    reference: str | None = None

    async def run(self, tx: Tx) -> VerificationView:
        _require_staff(tx)
        errors: list[FieldError] = []
        parsed = validate_domain_name(self.name, "name", errors)
        if parsed is None:
            raise ValidationFailed(errors)
        reference = _reference(self.reference)
        domain = await live_domain(tx.session, parsed.ascii)
        if domain is None:
            raise NotFound("no such domain")
        contact = await tx.session.get(Contact, domain.registrant_id) \
            if domain.registrant_id is not None else None
        if contact is None:
            raise ValidationFailed([FieldError(
                "name", "no_registrant", "regshield holds no registrant for this domain")])
        account = await tx.session.get(Account, domain.account_id)
        assert account is not None
        tx.record("accuracy:complaint:received", account=account.public_id,
                  domain=domain.name, contact=contact.handle, reference=reference)
        row = await begin_verification(tx, contact, account, Cause.COMPLAINT, domain.name)
        return VerificationView.of(row, contact.handle)


@dataclass(frozen=True)
class BounceReported:
    """A notice to a contact bounced (reported by the mail system or by staff): if the contact
    is the registrant of a live domain, verify it again (WAPS 4). Returns None when it is the
    registrant of none. Raises PermissionDenied, NotFound, ValidationFailed (reference)."""

    contact: str
    reference: str | None = None

    async def run(self, tx: Tx) -> VerificationView | None:
        _require_staff(tx)
        reference = _reference(self.reference)
        contact = await contact_by_handle(tx.session, self.contact)
        if contact is None:
            raise NotFound("no such contact")
        row = await reverify_after_bounce(tx, contact, reference)
        return None if row is None else VerificationView.of(row, contact.handle)


async def reverify_after_bounce(tx: Tx, contact: Contact, reference: str | None
                                ) -> ContactVerification | None:
    """Record the bounce and, if `contact` is the registrant of a live domain, verify it
    again. Shared by `BounceReported` and the notice ledger (flows/notices.py), which reports
    a bounced WDRP or ERRP notice to the registrant."""
    account = await tx.session.get(Account, contact.account_id)
    assert account is not None
    domains = await _domains_of(tx, contact.id)
    tx.record("accuracy:bounce:reported", account=account.public_id,
              contact=contact.handle, reference=reference,
              domains=[d.name for d in domains])
    if not domains:
        return None
    return await begin_verification(tx, contact, account, Cause.BOUNCE, domains[0].name)


async def verification_after_update(tx: Tx, contact: Contact, account: Account) -> None:
    """The registrant edited its own data: verify it again unless identical data was already
    verified (WAPS 1f). A contact that is no live domain's registrant starts nothing."""
    domains = await _domains_of(tx, contact.id)
    if domains:
        await begin_verification(tx, contact, account, Cause.CONTACT_UPDATE, domains[0].name)


# --- shared reads --------------------------------------------------------------------------


async def _verification(tx: Tx, public_id: str) -> ContactVerification | None:
    return (await tx.session.scalars(select(ContactVerification).where(
        ContactVerification.public_id == public_id))).first()


async def _domains_of(tx: Tx, contact_id: int) -> list[Domain]:
    """The live domains whose registrant the contact is, by name."""
    return list(await tx.session.scalars(select(Domain).where(
        Domain.registrant_id == contact_id, Domain.ended_at.is_(None),
        Domain.state != "pending_transfer_in").order_by(Domain.name)))

