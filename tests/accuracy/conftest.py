"""The accuracy program end to end: domains registered through the sandbox registry, the
outbox run by hand, mail written to files, the fake clock moved day by day."""

from __future__ import annotations

import email
import email.policy
import re
from datetime import datetime
from email.message import EmailMessage
from email.utils import parsedate_to_datetime

from domains.conftest import holder, registry

from regshield.flows.operations import run_queued
from regshield.notify.delivery import MAIL_DIRECTORY
from regshield.notify.handler import handlers as notice_handlers
from regshield.notify.verification import handlers as verification_handlers
from regshield.outbox.worker import OutboxWorker
from regshield.services import Services

__all__ = ["holder", "registry"]

LINK = re.compile(r"(\S+)/verify/([A-Za-z0-9_-]+)")


async def run_outbox(services: Services) -> None:
    """Run what the outbox holds until nothing new is due."""
    worker = OutboxWorker(services, {**notice_handlers(), **verification_handlers(),
                                     "registry:operation": run_queued})
    for _ in range(5):
        if not await worker.run_once():
            return


def mails(services: Services) -> list[EmailMessage]:
    """Every message written so far, in the order of their Date (then of writing)."""
    directory = services.settings.home / MAIL_DIRECTORY
    found: list[tuple[datetime, int, EmailMessage]] = []
    for path in directory.glob("*.eml"):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        found.append((parsedate_to_datetime(str(message["Date"])), path.stat().st_mtime_ns,
                      message))
    return [message for _, _, message in sorted(found, key=lambda item: item[:2])]


def text_of(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    return str(body.get_content())


def verification_mails(services: Services, to: str | None = None) -> list[EmailMessage]:
    return [m for m in mails(services) if "confirm your domain registration data"
            in str(m["Subject"]) and (to is None or str(m["To"]) == to)]


def tokens(services: Services, to: str | None = None) -> list[str]:
    """The tokens of the verification links mailed so far, oldest first."""
    found: list[str] = []
    for message in verification_mails(services, to):
        match = LINK.search(text_of(message))
        assert match is not None
        found.append(match.group(2))
    return found
