"""The outbox handler of `disclosure:letter`: tell a disclosure requester that their request
was acknowledged, approved or denied.

The queued payload names the request and the letter only. The requester's address and the
decision's rationale are opened from the sealed request when the letter is sent, so the outbox
holds no personal data. Each outcome is an event (`notify:email:sent`, `:undeliverable`) under
the request id of the step, which also keeps a retried letter from going out twice.
"""

from __future__ import annotations

import hashlib
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from typing import Any

import structlog
from sqlalchemy import select

from regshield.flows.context import RequestContext, system_actor
from regshield.flows.disclosure import DisclosureView, disclosure_read
from regshield.flows.runner import Tx, run_flow
from regshield.notify.delivery import MessageRefused, open_transport
from regshield.notify.messages import format_utc, parse_utc
from regshield.services import Services
from regshield.store.models import Event
from regshield.store.queries.accounts import registrar

LETTERS = ("acknowledged", "approved", "denied")
log = structlog.get_logger("regshield.notify")


def _body(view: DisclosureView, letter: str, registrar_name: str, public_url: str) -> str:
    lines = [f"{registrar_name} has your request for the non-public registration data of "
             f"the domain name {view.domain}.", "",
             f"Reference:  {view.reference}",
             f"Received:   {format_utc(view.received_at)}"]
    if letter == "acknowledged":
        lines += [f"Decision due by {format_utc(view.decision_due_at)} at the latest.", "",
                  "The request was acknowledged and is being reviewed. You will get the "
                  "decision, with its rationale, at this address."]
    elif letter == "approved":
        assert view.expires_at is not None
        roles = ", ".join(view.granted_roles)
        fields = ", ".join(view.granted_fields)
        lines += ["", f"The request was APPROVED for the contact roles: {roles};",
                  f"and of their data, for these fields only: {fields}.",
                  f"The approval ends on {format_utc(view.expires_at)}.", "",
                  f"Sign in as user {view.requester_user} and look the domain up in RDAP "
                  f"({public_url}/rdap/domain/{view.domain}) with your API token, or in "
                  "WHOIS; every lookup made under this approval is recorded."]
    else:
        lines += ["", "The request was DENIED."]
    if letter != "acknowledged":
        lines += ["", "Rationale:", *(f"  {line}" for line in (view.rationale or "").splitlines())]
    lines += ["", "-- ", f"An automatic message from {registrar_name} about a disclosure "
              "request made with this address."]
    return "\n".join(lines) + "\n"


async def send_letter(services: Services, payload: dict[str, Any]) -> None:
    """Send the letter in `payload` to the request's requester, once."""
    try:
        reference, letter = str(payload["request"]), str(payload["letter"])
        request_id = str(payload["request_id"])
        occurred_at = parse_utc(str(payload["occurred_at"]))
    except (KeyError, ValueError) as exc:
        raise ValueError(f"malformed disclosure letter payload ({exc})") from None
    if letter not in LETTERS:
        raise ValueError(f"unknown disclosure letter {letter!r}")
    key = hashlib.sha256(f"{reference}\0{letter}".encode()).hexdigest()[:24]
    label = f"disclosure:{reference}"
    view = await disclosure_read(services, system_actor("notify"), reference)
    async with services.store.read() as session:
        record = await registrar(session)
        summaries = (await session.execute(select(Event.summary).where(
            Event.tag.in_(["notify:email:sent", "notify:email:undeliverable"]),
            Event.request_id == request_id, Event.occurred_at >= occurred_at))).scalars()
        if any(summary.get("notice") == key for summary in summaries):
            return
    name = record.name if record is not None else "regshield"
    smtp = services.settings.smtp
    address = str(view.requester["email"])
    message = EmailMessage()
    message["Subject"] = f"[{name}] Disclosure request {view.reference} {letter}: {view.domain}"
    message["From"] = formataddr((name, smtp.sender))
    message["To"] = address
    if smtp.report_to:
        message["Reply-To"] = smtp.report_to
    message["Date"] = format_datetime(services.clock.now())
    domain_part = smtp.sender.rpartition("@")[2] or "regshield.invalid"
    message["Message-ID"] = f"<disclosure.{key}@{domain_part}>"
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(_body(view, letter, name, services.settings.public_url))
    transport = open_transport(services.settings)
    outcome, details = "sent", {"message": str(message["Message-ID"]), "via": transport.via}
    try:
        await transport.send(message, address)
    except MessageRefused as refused:
        outcome, details = "undeliverable", {"refusal": refused.reason}
    finally:
        await transport.close()
    await run_flow(services, system_actor("notify"),
                   RequestContext("system", request_id=request_id),
                   LetterOutcomeRecord(outcome, {"notice": key, "change": f"disclosure_{letter}",
                                                 "recipient": label, "domain": view.domain,
                                                 **details}))
    log.info(f"notify.{outcome}", change=f"disclosure_{letter}", recipient=label,
             request_id=request_id)


class LetterOutcomeRecord:
    """Record what became of a letter. Raises nothing of its own."""

    def __init__(self, outcome: str, summary: dict[str, Any]) -> None:
        self.outcome = outcome
        self.summary = summary

    async def run(self, tx: Tx) -> None:
        tx.record(f"notify:email:{self.outcome}", account=None, **self.summary)
