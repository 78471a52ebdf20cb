"""Sending messages: over SMTP (the standard library's smtplib, in a worker thread) or, when
SMTP is disabled (the embedded default), as `.eml` files in `<home>/outbox-mail/`.

TLS, implicit (`tls`) or upgraded (`starttls`), verifies the server's certificate and name
against the system's trust store or the configured CA file; a server that does not offer
STARTTLS is an error, never a quiet fall back to clear text. The errors raised here never quote
the server's replies, which may repeat an address: they name the reply code only.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.policy
import os
import smtplib
import ssl
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol

from regshield.config import Settings, SmtpSettings

MAIL_DIRECTORY = "outbox-mail"
# UTF-8 headers, as SMTPUTF8 carries them: an internationalized address stays readable.
FILE_POLICY = email.policy.default.clone(utf8=True)


class DeliveryDeferred(Exception):
    """The message could not be handed over now (connection, TLS, a 4xx reply): try later."""


class MessageRefused(Exception):
    """This message cannot be delivered through this server, however often it is tried: a 5xx
    reply to its recipient or content, or an internationalized address the server cannot
    take. `reason` is the reply code or a fixed phrase, never the server's text."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"the SMTP server refused the message ({reason})")
        self.reason = reason


class Transport(Protocol):
    via: str

    async def send(self, message: EmailMessage, recipient: str) -> None: ...

    async def close(self) -> None: ...


def open_transport(settings: Settings) -> Transport:
    """SMTP when it is enabled, else files in the data directory."""
    if settings.smtp.enabled:
        return SmtpTransport(settings.smtp)
    return FileTransport(settings.home / MAIL_DIRECTORY)


class SmtpTransport:
    """One SMTP connection, opened at the first message and reused for the next ones."""

    via = "smtp"

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        self._client: smtplib.SMTP | None = None

    async def send(self, message: EmailMessage, recipient: str) -> None:
        await asyncio.to_thread(self._send, message, recipient)

    async def close(self) -> None:
        await asyncio.to_thread(self._close)

    def _send(self, message: EmailMessage, recipient: str) -> None:
        try:
            if self._client is None:
                self._client = self._connect()
            client = self._client
            if not client.has_extn("smtputf8") and not _is_ascii(recipient, self.settings.sender):
                raise MessageRefused("the server does not take internationalized addresses")
            client.send_message(message, from_addr=self.settings.sender, to_addrs=[recipient])
        except smtplib.SMTPRecipientsRefused as refused:
            # smtplib has reset the transaction: the connection serves the next message.
            code = max(code for code, _reply in refused.recipients.values())
            if code >= 500:
                raise MessageRefused(str(code)) from None
            raise DeliveryDeferred(f"the SMTP server answered {code} to the recipient") from None
        except smtplib.SMTPDataError as refused:
            if refused.smtp_code >= 500:
                raise MessageRefused(str(refused.smtp_code)) from None
            self._close()
            raise DeliveryDeferred(f"the SMTP server answered {refused.smtp_code} to the "
                                   "message") from None
        except smtplib.SMTPResponseException as failed:
            self._close()
            raise DeliveryDeferred(f"the SMTP server answered {failed.smtp_code}") from None
        except (smtplib.SMTPException, OSError) as failed:
            # Connection, TLS and protocol errors: their text is smtplib's or the TLS
            # library's own, which names no recipient.
            self._close()
            raise DeliveryDeferred(
                f"SMTP to {self.settings.host}:{self.settings.port} failed: "
                f"{type(failed).__name__}: {failed}") from None

    def _connect(self) -> smtplib.SMTP:
        settings = self.settings
        cafile = str(settings.ca_file) if settings.ca_file else None
        client: smtplib.SMTP
        if settings.security == "tls":
            context = ssl.create_default_context(cafile=cafile)
            client = smtplib.SMTP_SSL(settings.host, settings.port, timeout=settings.timeout,
                                      context=context)
        else:
            client = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout)
        try:
            client.ehlo()
            if settings.security == "starttls":
                client.starttls(context=ssl.create_default_context(cafile=cafile))
                client.ehlo()
            if settings.username:
                client.login(settings.username, settings.read_password() or "")
        except BaseException:
            client.close()
            raise
        return client

    def _close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            client.quit()
        except (smtplib.SMTPException, OSError):
            client.close()


def _is_ascii(*addresses: str) -> bool:
    return all(address.isascii() for address in addresses)


class FileTransport:
    """Writes each message to `<directory>/<Message-ID>.eml` (mode 0600: the files hold
    addresses). Sending the same message again replaces its file rather than adding one."""

    via = "file"

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def send(self, message: EmailMessage, recipient: str) -> None:
        await asyncio.to_thread(self._write, message)

    async def close(self) -> None:
        return None

    def path_of(self, message: EmailMessage) -> Path:
        token = str(message["Message-ID"]).strip("<>").partition("@")[0]
        if not token or not all(ch.isalnum() or ch in ".-_" for ch in token):
            raise ValueError("the message has no usable Message-ID")
        return self.directory / f"{token}.eml"

    def _write(self, message: EmailMessage) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = self.path_of(message)
        temporary = path.with_name(f".{path.name}.tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(message.as_bytes(policy=FILE_POLICY))
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise


def destination(settings: Settings) -> str:
    """Where notices go, as `regshield serve` announces it."""
    smtp = settings.smtp
    if smtp.enabled:
        return f"SMTP {smtp.host}:{smtp.port} ({smtp.security}), from {smtp.sender}"
    return (f"written to {settings.home / MAIL_DIRECTORY}/ (SMTP is off; "
            "set [smtp] enabled = true to send)")
