"""The outbox handler of `notices:mail`: send a WDRP reminder or an ERRP expiry notice
(flows/notices.py) to the domain's registrant and its account holder, once each.

The payload names the ledger row only. The addresses, and the registration data the WDRP
reminder shows, are opened from the sealed records when the message is sent: the outbox holds
no personal data, and the reminder shows the data as it is at that moment. A notice that no
longer applies when its turn comes (the domain ended, or was renewed so that the expiry it
speaks of is gone) is skipped with an event rather than sent.

Each recipient's outcome is an event (`notify:email:sent`, `:undeliverable`, `:skipped`) under
the sweep's request id; recipients already recorded are not sent the notice again, so a retry
is idempotent. A refusal of the registrant's address marks the ledger row bounced
(`mark_bounced`) and records `notice:<kind>:bounced` naming the contact: a bounced WDRP or ERRP
notice is a reason to verify the registrant's data again (WHOIS Accuracy Program).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from regshield.flows.contacts import open_contact
from regshield.flows.context import RequestContext, system_actor
from regshield.flows.notices import MAIL_KIND, mark_bounced
from regshield.flows.runner import Tx, run_flow
from regshield.flows.users import user_email
from regshield.notify.delivery import MessageRefused, open_transport
from regshield.notify.messages import format_utc, parse_utc
from regshield.outbox.worker import Handler
from regshield.rules.contacts import ContactData
from regshield.rules.notices import NoticeKind, expiry_cycle
from regshield.services import Services
from regshield.store.models import Contact, Domain, Event, NotificationLedger
from regshield.store.queries.accounts import public_ids, registrar
from regshield.store.queries.users import users_of_account

OUTCOMES = ("sent", "undeliverable", "skipped")
log = structlog.get_logger("regshield.notify")


def handlers() -> dict[str, Handler]:
    return {MAIL_KIND: send_registrant_notice}


@dataclass(frozen=True)
class Letter:
    """What every recipient of one notice reads."""

    registrar: str
    sender: str
    report_to: str | None
    public_url: str
    kind: NoticeKind
    notice_id: int
    domain: str
    unicode_domain: str
    expires_at: datetime | None
    nameservers: list[str]
    registrant_handle: str | None
    registrant: ContactData | None = field(repr=False)
    late: bool


@dataclass
class Addressees:
    found: list[tuple[str, str]] = field(default_factory=list)  # (label, address)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (label, reason)
    _seen: set[str] = field(default_factory=set, repr=False)

    def add(self, label: str, address: str) -> None:
        if address.casefold() not in self._seen:
            self._seen.add(address.casefold())
            self.found.append((label, address))


async def send_registrant_notice(services: Services, payload: dict[str, Any]) -> None:
    """Send the notice in `payload` to each of its recipients not yet recorded as done."""
    try:
        notice_id = int(payload["notice"])
        request_id = str(payload["request_id"])
        occurred_at = parse_utc(str(payload["occurred_at"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"malformed notice payload ({type(exc).__name__})") from None
    key = f"notice-{notice_id}"
    async with services.store.read() as session:
        row = await session.get(NotificationLedger, notice_id)
        domain = await session.get(Domain, row.domain_id) if row is not None else None
        if row is None or domain is None:
            raise ValueError(f"no notice {notice_id} in the ledger")
        account = (await public_ids(session, {domain.account_id}))[domain.account_id]
        letter, addressees = await _prepare(session, services, row, domain, account)
        done = await _recorded(session, key, request_id, occurred_at)
    context = RequestContext("system", request_id=request_id)
    summary = {"notice": key, "change": row.kind, "domain": domain.name}
    stale = _no_longer_applies(row, domain)
    for label, reason in addressees.skipped + [(label, stale) for label, _ in addressees.found
                                               if stale is not None]:
        if label not in done:
            await run_flow(services, system_actor("notify"), context, NoticeMailOutcome(
                "skipped", account, {**summary, "recipient": label, "reason": reason}))
    if stale is not None:
        return
    transport = open_transport(services.settings)
    try:
        for label, address in addressees.found:
            if label in done:
                continue
            message = compose(letter, address, sent_at=services.clock.now())
            outcome: dict[str, Any] = {"message": str(message["Message-ID"]),
                                       "via": transport.via}
            try:
                await transport.send(message, address)
            except MessageRefused as refused:
                outcome = {"refusal": refused.reason}
            result = "sent" if "message" in outcome else "undeliverable"
            await run_flow(services, system_actor("notify"), context, NoticeMailOutcome(
                result, account, {**summary, "recipient": label, **outcome},
                bounced=notice_id if result == "undeliverable" and label.startswith("contact:")
                else None))
            log.info(f"notify.{result}", change=row.kind, recipient=label,
                     request_id=request_id)
    finally:
        await transport.close()


def _no_longer_applies(row: NotificationLedger, domain: Domain) -> str | None:
    if domain.ended_at is not None or domain.state != "active":
        return "domain_not_active"
    if row.kind != NoticeKind.WDRP and (
            domain.expires_at is None or expiry_cycle(domain.expires_at) != row.cycle):
        return "expiry_changed"
    return None


async def _prepare(session: AsyncSession, services: Services, row: NotificationLedger,
                   domain: Domain, account: str) -> tuple[Letter, Addressees]:
    addressees = Addressees()
    registrant: ContactData | None = None
    handle: str | None = None
    # The registrant is the domain's registrant now, which a change since the notice was
    # queued may have replaced.
    if domain.registrant_id is not None:
        contact = await session.get(Contact, domain.registrant_id)
        if contact is not None and contact.deleted_at is None:
            registrant = (await open_contact(session, services.sealer, contact, account)).data
            handle = contact.handle
    roles = {recipient["role"] for recipient in row.recipients}
    if "registrant" in roles:
        if registrant is None or handle is None:
            addressees.skipped.append(("registrant", "no_registrant"))
        else:
            addressees.add(f"contact:{handle}", registrant.email)
    if "account_holder" in roles:
        owners = [u for u in await users_of_account(session, domain.account_id)
                  if u.role == "owner" and u.disabled_at is None]
        if not owners:
            addressees.skipped.append((f"account_owners:{account}", "account_without_owners"))
        for owner in owners:
            addressees.add(f"user:{owner.public_id}",
                           await user_email(session, services.sealer, owner))
    record = await registrar(session)
    smtp = services.settings.smtp
    letter = Letter(
        registrar=record.name if record is not None else "regshield", sender=smtp.sender,
        report_to=smtp.report_to or (record.abuse_email if record is not None else None),
        public_url=services.settings.public_url, kind=NoticeKind(row.kind), notice_id=row.id,
        domain=domain.name, unicode_domain=domain.unicode_name, expires_at=domain.expires_at,
        nameservers=list(domain.nameservers or []), registrant_handle=handle,
        registrant=registrant, late=row.late)
    return letter, addressees


async def _recorded(session: AsyncSession, key: str, request_id: str,
                    occurred_at: datetime) -> set[str]:
    query = select(Event.summary).where(
        Event.tag.in_([f"notify:email:{outcome}" for outcome in OUTCOMES]),
        Event.request_id == request_id, Event.occurred_at >= occurred_at)
    return {str(summary["recipient"]) for summary in (await session.execute(query)).scalars()
            if summary.get("notice") == key}


@dataclass(frozen=True)
class NoticeMailOutcome:
    """Record what became of one recipient's message; a refused one marks the notice
    bounced. Raises nothing of its own."""

    outcome: str
    account: str | None
    summary: dict[str, Any]
    bounced: int | None = None

    async def run(self, tx: Tx) -> None:
        tx.record(f"notify:email:{self.outcome}", account=self.account, **self.summary)
        if self.bounced is not None:
            await mark_bounced(tx, self.bounced, recipient=self.summary.get("recipient"),
                               reason=self.summary.get("refusal"))


# --- the messages --------------------------------------------------------------------------


def _day(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d") if moment is not None else "(unknown)"


def _name(letter: Letter) -> str:
    if letter.unicode_domain and letter.unicode_domain != letter.domain:
        return f"{letter.unicode_domain} ({letter.domain})"
    return letter.domain


def _renew_how(letter: Letter) -> list[str]:
    return [f"To renew it, sign in to your account with {letter.registrar} and renew the "
            "domain, or ask the API:",
            f"  POST {letter.public_url}/api/v1/domains/{letter.domain}/renew",
            "Renewing needs no other step; the notices stop once the new expiry is recorded."]


def _registration_data(letter: Letter) -> list[str]:
    data = letter.registrant
    if data is None:
        return ["The domain has no registrant contact on record: the account holder is the "
                "registered name holder. Add one by signing in and setting the registrant."]
    rows = [("Name", data.name), ("Organization", data.organization),
            *(("Street", line) for line in data.street), ("City", data.city),
            ("State/province", data.state), ("Postal code", data.postal_code),
            ("Country", data.country), ("Phone", data.phone), ("Fax", data.fax),
            ("Email", data.email)]
    return [f"Registrant (contact {letter.registrant_handle}):",
            *(f"  {label + ':':<16}{value}" for label, value in rows if value)]


def _wdrp(letter: Letter) -> tuple[str, list[str]]:
    lines = [f"Once a year {letter.registrar}, the registrar of the domain name {_name(letter)}, "
             "shows the registrant the registration data on record for it (ICANN's "
             "Registration Data Reminder Policy, WDRP), so that you can check it is accurate.",
             "", *_registration_data(letter), "",
             f"Nameservers:      {', '.join(letter.nameservers) or '(none)'}",
             f"Expires:          {_day(letter.expires_at)}", "",
             "If anything is wrong or out of date, correct it now: sign in and update the "
             "contact" + (f" ({letter.registrant_handle})." if letter.registrant_handle
                          else "."),
             "The registration agreement requires this data to be accurate. Giving false "
             "data, not updating it within seven days of a change, or not answering an "
             "inquiry about its accuracy within fifteen days can lead to the suspension or "
             "cancellation of the registration.",
             "", "If everything is correct, there is nothing to do."]
    return "Yearly reminder: check the registration data", lines


def _errp_before(letter: Letter, when: str) -> tuple[str, list[str]]:
    lines = [f"The domain name {_name(letter)} expires on {_day(letter.expires_at)} "
             f"({format_utc(letter.expires_at) if letter.expires_at else 'unknown'}), "
             f"in about {when}.", "", *_renew_how(letter), "",
             "If it is not renewed, the domain stops resolving after it expires: websites and "
             "email using it stop working. It can still be renewed for a while after that, "
             "and is then deleted."]
    return f"Expires on {_day(letter.expires_at)} (in about {when})", lines


def _errp_after(letter: Letter) -> tuple[str, list[str]]:
    lines = [f"The domain name {_name(letter)} expired on {_day(letter.expires_at)} and has "
             "not been renewed.", "",
             "Its DNS service is interrupted: websites and email using the domain stop "
             "working, or soon will.",
             "It can still be renewed, which restores it as it was.", "", *_renew_how(letter),
             "", "If you do not renew it, the domain is deleted and may be registered by "
             "someone else."]
    return f"Expired on {_day(letter.expires_at)}: renew to restore it", lines


CONTENT: dict[NoticeKind, Callable[[Letter], tuple[str, list[str]]]] = {
    NoticeKind.WDRP: _wdrp,
    NoticeKind.ERRP_MONTH: lambda letter: _errp_before(letter, "a month"),
    NoticeKind.ERRP_WEEK: lambda letter: _errp_before(letter, "a week"),
    NoticeKind.ERRP_EXPIRED: _errp_after,
}


def compose(letter: Letter, recipient: str, *, sent_at: datetime) -> EmailMessage:
    """The message to one recipient: plain text, marked as automatic, with a Message-ID that
    is the same for every attempt."""
    title, lines = CONTENT[letter.kind](letter)
    if letter.report_to:
        ask = f"Questions: reply to this message or write to {letter.report_to}."
    else:
        ask = f"Questions: contact {letter.registrar}."
    lines += ["", ask, f"Reference:  notice {letter.notice_id} ({letter.kind})", "", "-- ",
              f"A notice from {letter.registrar} sent to the registrant and the account holder "
              "of the domain; ICANN policy requires it, so it needs no subscription and cannot "
              "be turned off."]
    material = f"{letter.notice_id}\0{recipient.casefold()}".encode()
    domain_part = letter.sender.rpartition("@")[2] or "regshield.invalid"
    message = EmailMessage()
    message["Subject"] = f"[{letter.registrar}] {title}: {letter.domain}"
    message["From"] = formataddr((letter.registrar, letter.sender))
    message["To"] = recipient
    if letter.report_to:
        message["Reply-To"] = letter.report_to
    message["Date"] = format_datetime(sent_at)
    message["Message-ID"] = f"<notice.{hashlib.sha256(material).hexdigest()[:32]}@{domain_part}>"
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no automatic replies to it
    message["X-Auto-Response-Suppress"] = "All"
    message.set_content("\n".join(lines) + "\n")
    return message
