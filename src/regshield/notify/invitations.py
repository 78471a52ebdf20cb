"""Invitation mails: the outbox handler of `users:invitation-mail` and the message it sends.

The token is minted here, at send time, and only its SHA-256 digest is kept
(`InvitationMailPrepare`), so it never sits in the outbox in clear. When the invited address
already has a user, the mail carries no link: it tells the holder that someone asked to add
the address and that nothing changed. The inviting owner's answer was the same either way.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from typing import Any

import structlog

from regshield.flows.context import RequestContext, system_actor
from regshield.flows.runner import Tx, run_flow
from regshield.flows.users import InvitationMail, InvitationMailPrepare
from regshield.notify.delivery import MessageRefused, open_transport
from regshield.notify.messages import format_utc
from regshield.security.tokens import new_credential
from regshield.services import Services

log = structlog.get_logger("regshield.notify")


def compose_invitation(mail: InvitationMail, token: str, public_url: str, sender: str,
                       sent_at: datetime) -> EmailMessage:
    message = EmailMessage()
    title = "Request to add this address as a user" if mail.taken else "Invitation"
    message["Subject"] = f"[{mail.registrar}] {title}"
    message["From"] = formataddr((mail.registrar, sender))
    message["To"] = mail.address
    message["Date"] = format_datetime(sent_at.astimezone(UTC))
    message["Message-ID"] = (f"<invite.{secrets.token_hex(16)}@"
                             f"{sender.rpartition('@')[2] or 'regshield.invalid'}>")
    message["Auto-Submitted"] = "auto-generated"
    message["X-Auto-Response-Suppress"] = "All"
    if mail.taken:
        lines = [
            f"Someone with access to account {mail.account} at {mail.registrar} asked to add "
            f"this address as a user ({mail.role}).",
            "This address already has a user here, so nothing was changed and no second user",
            "was made for it. If you expected this, ask them to use your existing user.",
        ]
    else:
        url = f"{public_url.rstrip('/')}/api/v1/invitations/accept"
        lines = [
            f"You are invited to become a user ({mail.role}) of account {mail.account} at "
            f"{mail.registrar}.",
            "",
            "To accept, choose a password of your own and send it with this token:",
            "",
            f"    POST {url}",
            f'    {{"token": "{token}", "password": "..."}}',
            "",
            f"The token works once, until {format_utc(mail.expires_at)}.",
            "If you did not expect this invitation, ignore this message.",
        ]
    message.set_content("\n".join([*lines, "", f"Reference: invitation {mail.invitation}.",
                                   "", "-- ", f"An automatic message from {mail.registrar}."])
                        + "\n")
    return message


class InvitationMailRecorded:
    """Record what became of an invitation mail (registrar-wide). Raises nothing."""

    def __init__(self, invitation: str, outcome: str, summary: dict[str, Any]) -> None:
        self.invitation, self.outcome, self.summary = invitation, outcome, summary

    async def run(self, tx: Tx) -> None:
        tx.record(f"users:invitation:{self.outcome}", account=None,
                  invitation=self.invitation, **self.summary)


async def send_invitation(services: Services, payload: dict[str, Any]) -> None:
    """Mint the token, keep its digest, send the mail, record the outcome. Raises (so that
    the outbox retries) when the mail could not be handed over now."""
    token, token_hash = new_credential("")
    context = RequestContext("system")
    actor = system_actor("notify")
    mail = await run_flow(services, actor, context,
                          InvitationMailPrepare(str(payload["invitation"]), token_hash))
    if mail is None:
        return
    message = compose_invitation(mail, token, services.settings.public_url,
                                 services.settings.smtp.sender, services.clock.now())
    transport = open_transport(services.settings)
    try:
        await transport.send(message, mail.address)
    except MessageRefused as refused:
        await run_flow(services, actor, context, InvitationMailRecorded(
            mail.invitation, "undeliverable", {"refusal": refused.reason}))
        return
    finally:
        await transport.close()
    await run_flow(services, actor, context, InvitationMailRecorded(
        mail.invitation, "sent", {"message": str(message["Message-ID"]), "via": transport.via}))
    log.info("notify.invitation_sent", invitation=mail.invitation)
