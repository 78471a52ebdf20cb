"""Where the sandbox keeps its state, and the registrar records it holds.

The schema is made with `metadata.create_all` when the state is opened, not with Alembic
migrations: the sandbox stands in for another party's registry, its data is test data that
can be thrown away with its directory, and it must start with no setup step. If its tables
ever change shape, an old sandbox directory is deleted rather than migrated.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from regshield.clock import Clock, SystemClock
from regshield.config import Listen
from regshield.errors import FieldError, RegshieldError, ValidationFailed
from regshield.policy.transfer import POLICY_2016
from regshield.registry.commands import LOGIN_PASSWORD_LENGTH
from regshield.registry.sandbox.certificates import (
    CertificateRefused,
    certificate_subject,
    read_client_certificate,
)
from regshield.registry.sandbox.models import SandboxBase, SandboxRegistrar
from regshield.security.passwords import hash_password
from regshield.store.engine import Store

DIRECTORY_NAME = "sandbox-registry"
DATABASE_NAME = "registry.db"
DEFAULT_LISTEN = "127.0.0.1:7700"  # 700, EPP's port, needs privileges
DEFAULT_TLDS: tuple[str, ...] = ("test", "example")  # reserved by RFC 2606, never delegated


class RegistrarExists(RegshieldError):
    http_status = 409
    epp_code = 2302
    type_slug = "sandbox-registrar-exists"
    title = "A registrar with this identifier exists"


@dataclass(frozen=True)
class SandboxConfig:
    """The sandbox's directory (state, server certificate), where it listens, the TLDs it
    serves, how long an idle session is kept and how long a transfer waits for the losing
    registrar before the registry approves it (5 days under the Transfer Policy)."""

    directory: Path
    listen: Listen = field(default_factory=lambda: Listen.parse(DEFAULT_LISTEN))
    tlds: tuple[str, ...] = DEFAULT_TLDS
    database: Path | None = None
    idle_timeout: float = 600.0  # seconds without a command before the session is closed
    max_login_failures: int = 3
    transfer_auto_approve: timedelta = POLICY_2016.registry_auto_approve

    @property
    def database_file(self) -> Path:
        return self.database or self.directory / DATABASE_NAME


def sandbox_directory(home: Path) -> Path:
    """The sandbox's directory inside an installation's data directory."""
    return home / DIRECTORY_NAME


class SandboxState:
    """The sandbox's store: its own SQLite file, opened through regshield's Store (WAL,
    secure_delete, one writer at a time)."""

    def __init__(self, config: SandboxConfig, clock: Clock | None = None) -> None:
        self.config = config
        self.clock: Clock = clock or SystemClock()
        self.store = Store(f"sqlite+aiosqlite:///{config.database_file}")

    @classmethod
    async def open(cls, config: SandboxConfig, clock: Clock | None = None) -> SandboxState:
        config.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(config.directory, 0o700)
        state = cls(config, clock)
        async with state.store.engine.begin() as connection:
            await connection.run_sync(SandboxBase.metadata.create_all)
        return state

    async def close(self) -> None:
        await self.store.close()

    async def add_registrar(self, registrar_id: str, password: str,
                            certificate_pem: bytes | None = None) -> SandboxRegistrar:
        """Accredit a registrar. Its EPP password must fit RFC 5730's pwType (6 to 16
        characters); with a certificate, it must present that certificate to log in.

        Raises ValidationFailed (every reason at once), CertificateRefused, RegistrarExists."""
        problems: list[FieldError] = []
        if not 3 <= len(registrar_id) <= 16 or registrar_id != " ".join(registrar_id.split()):
            problems.append(FieldError("id", "invalid",
                                       "must be 3 to 16 characters, without surrounding or "
                                       "repeated spaces (RFC 5730 clIDType)"))
        low, high = LOGIN_PASSWORD_LENGTH
        if not low <= len(password) <= high or password != password.strip():
            problems.append(FieldError("password", "invalid", f"must be {low} to {high} "
                                       "characters without surrounding spaces (RFC 5730 pwType)"))
        if problems:
            raise ValidationFailed(problems)
        pem, sha256 = (None, None) if certificate_pem is None \
            else read_client_certificate(certificate_pem)
        registrar = SandboxRegistrar(id=registrar_id, password_hash=hash_password(password),
                                     certificate_sha256=sha256, certificate_pem=pem,
                                     created_at=self.clock.now())
        async with self.store.write() as session:
            if await session.get(SandboxRegistrar, registrar_id) is not None:
                raise RegistrarExists(f"registrar {registrar_id} exists")
            if pem is not None:
                await _check_subject_is_new(session, pem)
            session.add(registrar)
        return registrar

    async def registrar(self, registrar_id: str) -> SandboxRegistrar | None:
        async with self.store.read() as session:
            return await session.get(SandboxRegistrar, registrar_id)

    async def client_certificates(self) -> tuple[str, ...]:
        """The PEM client certificates of every registrar that has one, in a stable order."""
        async with self.store.read() as session:
            rows = await session.scalars(
                select(SandboxRegistrar.certificate_pem)
                .where(SandboxRegistrar.certificate_pem.is_not(None))
                .order_by(SandboxRegistrar.id))
            return tuple(pem for pem in rows if pem is not None)

    async def set_password_hash(self, registrar_id: str, password_hash: str) -> None:
        async with self.store.write() as session:
            registrar = await session.get(SandboxRegistrar, registrar_id)
            if registrar is not None:
                registrar.password_hash = password_hash


async def _check_subject_is_new(session: AsyncSession, pem: str) -> None:
    """Registrars' certificates are the TLS trust anchors, found by subject name: two
    different certificates with one subject would shadow each other, and one registrar could
    no longer connect. Such a certificate is refused when it is added."""
    subject = certificate_subject(pem)
    others = await session.scalars(select(SandboxRegistrar)
                                   .where(SandboxRegistrar.certificate_pem.is_not(None)))
    for other in others:
        if other.certificate_pem and certificate_subject(other.certificate_pem) == subject:
            raise CertificateRefused(f"registrar {other.id} has a certificate with the same "
                                     f"subject ({subject}); give each certificate its own")
