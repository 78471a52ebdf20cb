"""A real SMTP server (aiosmtpd) on loopback that keeps what it receives, and services that
send through it."""

from __future__ import annotations

import dataclasses
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from regshield.config import SmtpSettings
from regshield.registry.sandbox.certificates import ensure_server_certificate
from regshield.services import Services

SMTP_USER = "regshield-relay"
SMTP_PASSWORD = "relay passphrase for tests"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Received:
    sender: str
    recipients: list[str]
    message: EmailMessage
    over_tls: bool
    signed_in_as: str | None


@dataclass
class Mailbox:
    """The server's handler: accepts mail, or answers as told (`451` next N times, `550` for
    some recipients)."""

    received: list[Received] = field(default_factory=list)
    defer_next: int = 0
    defer_for: set[str] = field(default_factory=set)
    unknown: set[str] = field(default_factory=set)

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        if address in self.unknown:
            return "550 5.1.1 no such mailbox"
        if self.defer_next > 0 or address in self.defer_for:
            self.defer_next = max(0, self.defer_next - 1)
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or envelope.content
        assert isinstance(content, bytes)
        message = message_from_bytes(content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        login = session.auth_data if session.authenticated else None
        assert server.transport is not None
        self.received.append(Received(
            str(envelope.mail_from), list(envelope.rcpt_tos), message,
            over_tls=server.transport.get_extra_info("ssl_object") is not None,
            signed_in_as=login.decode() if isinstance(login, bytes) else None))
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        return [r.message for r in self.received if address in r.recipients]


def _authenticate(server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                  auth_data: Any) -> AuthResult:
    ok = (isinstance(auth_data, LoginPassword) and auth_data.login == SMTP_USER.encode()
          and auth_data.password == SMTP_PASSWORD.encode())
    return AuthResult(success=ok, auth_data=auth_data.login if ok else None)


@dataclass
class SmtpServer:
    mailbox: Mailbox
    port: int
    certificate: Path | None = None


def _start(mailbox: Mailbox, **options: Any) -> tuple[Controller, int]:
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port, ready_timeout=10,
                            **options)
    controller.start()
    return controller, port


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A plain SMTP server, as a local relay would be."""
    mailbox = Mailbox()
    controller, port = _start(mailbox)
    yield SmtpServer(mailbox, port)
    controller.stop()


@pytest.fixture
def ascii_smtp_server() -> Iterator[SmtpServer]:
    """An older server: no SMTPUTF8, so no internationalized addresses."""
    mailbox = Mailbox()
    controller, port = _start(mailbox, enable_SMTPUTF8=False)
    yield SmtpServer(mailbox, port)
    controller.stop()


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (the sandbox registry's own maker)."""
    directory = tmp_path / "tls"
    directory.mkdir()
    return ensure_server_certificate(directory, datetime.now(UTC))


def _server_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    return context


@pytest.fixture
def starttls_server(certificate: tuple[Path, Path]) -> Iterator[SmtpServer]:
    """A submission server that insists on STARTTLS before anything else, and on signing in."""
    mailbox = Mailbox()
    controller, port = _start(mailbox, tls_context=_server_context(certificate),
                              require_starttls=True, auth_required=True,
                              auth_require_tls=True, authenticator=_authenticate)
    yield SmtpServer(mailbox, port, certificate[0])
    controller.stop()


@pytest.fixture
def tls_server(certificate: tuple[Path, Path]) -> Iterator[SmtpServer]:
    """A server speaking TLS from the first byte (port 465 style)."""
    mailbox = Mailbox()
    controller, port = _start(mailbox, ssl_context=_server_context(certificate),
                              server_hostname="localhost")
    yield SmtpServer(mailbox, port, certificate[0])
    controller.stop()


def send_through(services: Services, server: SmtpServer, **options: Any) -> None:
    """Point the services at `server` (SMTP enabled)."""
    smtp = SmtpSettings(enabled=True, host="127.0.0.1", port=server.port, timeout=10,
                        sender="notices@registrar.test", **options)
    services.settings = dataclasses.replace(services.settings, smtp=smtp)
