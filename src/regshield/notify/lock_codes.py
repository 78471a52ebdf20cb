"""Registry-lock verification codes, sent at once to the requester's separate lock address.

Unlike notices, a code is never queued in the outbox: it would sit in the database in clear.
The request that made it sends it and forgets it; if it cannot be sent, the request is
cancelled and the user asks again.
"""

from __future__ import annotations

import secrets
from datetime import UTC
from email.message import EmailMessage
from email.utils import format_datetime, formataddr

from regshield.clock import Clock
from regshield.config import Settings
from regshield.notify.delivery import open_transport
from regshield.notify.messages import format_utc
from regshield.rules.registry_lock import LockRequest


def compose_lock_code(request: LockRequest, code: str, domain: str, recipient: str,
                      sender: str, clock: Clock) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = f"Registry {request.action} of {domain}: your verification code"
    message["From"] = formataddr(("regshield", sender))
    message["To"] = recipient
    message["Date"] = format_datetime(clock.now().astimezone(UTC))
    message["Message-ID"] = (f"<lock.{secrets.token_hex(16)}@"
                             f"{sender.rpartition('@')[2] or 'regshield.invalid'}>")
    message["Auto-Submitted"] = "auto-generated"
    message.set_content("\n".join([
        f"A registry {request.action} of {domain} was requested (request {request.public_id}).",
        "",
        "To confirm it, send this code to POST /api/v1/registry-lock/verify:",
        "",
        f"    {code}",
        "",
        f"The code works once, until {format_utc(request.expires_at)}.",
        *(["A second staff member must also approve the request."]
          if request.needs_approval else []),
        "",
        "If you did not ask for this, do not use the code: someone holds your registry-lock",
        "password. Change it and tell the registrar's security team.",
    ]))
    return message


async def send_lock_code(settings: Settings, clock: Clock, request: LockRequest, code: str,
                         domain: str, recipient: str) -> None:
    """Send the code now. Raises what the transport raises (the caller cancels the request)."""
    message = compose_lock_code(request, code, domain, recipient, settings.smtp.sender, clock)
    transport = open_transport(settings)
    try:
        await transport.send(message, recipient)
    finally:
        await transport.close()
