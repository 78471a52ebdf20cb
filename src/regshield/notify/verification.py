"""Verification mails of the WHOIS Accuracy Program: the outbox handler of
`accuracy:verification-mail` and the message it sends.

The token is minted here, at send time: its SHA-256 digest is committed first
(`VerificationMailPrepare`), then the mail goes out, then the outcome is recorded. The outbox
payload names only the verification and which mail it is, so the token never sits anywhere in
clear. A mail sent again (a retry after a failure or a crash) carries a new token that
replaces the earlier one's digest: at most the latest link of each mail works.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from typing import Any

import structlog

from regshield.flows.accuracy import (
    INITIAL_MAIL,
    MAIL_KIND,
    MailPlan,
    VerificationMailPrepare,
    VerificationMailRecorded,
)
from regshield.flows.context import RequestContext, system_actor
from regshield.flows.runner import run_flow
from regshield.notify.delivery import MessageRefused, open_transport
from regshield.notify.messages import format_utc
from regshield.outbox.worker import Handler
from regshield.security.tokens import new_credential
from regshield.services import Services

log = structlog.get_logger("regshield.accuracy")


def handlers() -> dict[str, Handler]:
    """The outbox handler of this module, for the worker that `regshield serve` starts."""
    return {MAIL_KIND: send_verification}


def verification_link(public_url: str, token: str) -> str:
    return f"{public_url.rstrip('/')}/verify/{token}"


def compose_verification(plan: MailPlan, link: str, sender: str,
                         sent_at: datetime) -> EmailMessage:
    """The mail to the registrant: the link, until when it works, what happens without it.
    It repeats none of the registrant's data."""
    domains = ", ".join(plan.domains) or "(none at the moment)"
    message = EmailMessage()
    title = "Please confirm your domain registration data" if plan.mail == INITIAL_MAIL \
        else "Reminder: please confirm your domain registration data"
    message["Subject"] = f"[{plan.registrar}] {title}"
    message["From"] = formataddr((plan.registrar, sender))
    message["To"] = plan.address
    message["Date"] = format_datetime(sent_at.astimezone(UTC))
    message["Message-ID"] = (f"<verify.{secrets.token_hex(16)}@"
                             f"{sender.rpartition('@')[2] or 'regshield.invalid'}>")
    message["Auto-Submitted"] = "auto-generated"
    message["X-Auto-Response-Suppress"] = "All"
    message.set_content("\n".join([
        f"{plan.registrar} holds this address as the registrant's email address of:",
        "",
        f"    {domains}",
        "",
        "ICANN requires registrars to verify it. To confirm that the registration data is",
        "yours and accurate, open this link and press the button on the page:",
        "",
        f"    {link}",
        "",
        f"The link works once, until {format_utc(plan.link_expires_at)}.",
        f"Unless the data is confirmed by {format_utc(plan.deadline)}, the domains above are",
        "suspended (they stop resolving) until it is.",
        "",
        "If the data is not accurate, sign in and correct it instead: a new link follows for",
        "the corrected data, and this one stops working.",
        f"Reference: verification {plan.verification}, contact {plan.contact}.",
        "",
        "-- ",
        f"An automatic message from {plan.registrar}.",
    ]) + "\n")
    return message


async def send_verification(services: Services, payload: dict[str, Any]) -> None:
    """Mint the token, keep its digest, send the mail, record the outcome. Raises (so that
    the outbox retries) when the mail could not be handed over now."""
    token, token_hash = new_credential("")
    context = RequestContext("system")
    actor = system_actor("accuracy")
    plan = await run_flow(services, actor, context, VerificationMailPrepare(
        str(payload["verification"]), str(payload["mail"]), token_hash))
    if plan is None:
        return
    message = compose_verification(plan, verification_link(services.settings.public_url, token),
                                   services.settings.smtp.sender, services.clock.now())
    transport = open_transport(services.settings)
    try:
        await transport.send(message, plan.address)
    except MessageRefused as refused:
        await run_flow(services, actor, context, VerificationMailRecorded(
            plan, "undeliverable", {"refusal": refused.reason}))
        log.warning("accuracy.mail_undeliverable", verification=plan.verification,
                    mail=plan.mail, refusal=refused.reason)
        return
    finally:
        await transport.close()
    await run_flow(services, actor, context, VerificationMailRecorded(
        plan, "sent", {"message": str(message["Message-ID"]), "via": transport.via}))
    log.info("accuracy.mail_sent", verification=plan.verification, mail=plan.mail)
