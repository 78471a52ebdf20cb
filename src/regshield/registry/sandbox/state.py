"""Where the sandbox keeps its state, and the registrar records it holds.

The schema is made with `metadata.create_all` when the state is opened, not with Alembic
migrations: the sandbox stands in for another party's registry, its data is test data that
can be thrown away with its directory, and it must start with no setup step. If its tables
ever change shape, an old sandbox directory is deleted rather than migrated: opening one that
lacks a table (the host and contact objects came later than the domains) or a column fails
with `OutdatedSandbox`, which says so.

Besides what registrars do over EPP, the registry's operator edits its own database here:
accrediting registrars, handing out registry-lock passwords, setting server statuses.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import Connection, inspect, select
from sqlalchemy.ext.asyncio import AsyncSession

from regshield.clock import Clock, SystemClock
from regshield.config import Listen, Settings
from regshield.errors import FieldError, NotFound, RegshieldError, ValidationFailed
from regshield.policy.transfer import POLICY_2016
from regshield.registry.commands import LOGIN_PASSWORD_LENGTH
from regshield.registry.sandbox.certificates import (
    CertificateRefused,
    certificate_subject,
    read_client_certificate,
)
from regshield.registry.sandbox.models import SandboxBase, SandboxDomain, SandboxRegistrar
from regshield.rules.names import parse_domain_name
from regshield.rules.statuses import SERVER_STATUSES, status_problems
from regshield.security.passwords import hash_password, verify_password
from regshield.store.engine import Store

DIRECTORY_NAME = "sandbox-registry"
DATABASE_NAME = "registry.db"
DEFAULT_LISTEN = "127.0.0.1:7700"  # 700, EPP's port, needs privileges
DEFAULT_TLDS: tuple[str, ...] = ("test", "example")  # reserved by RFC 2606, never delegated
log = structlog.get_logger("regshield.sandbox")


class RegistrarExists(RegshieldError):
    http_status = 409
    epp_code = 2302
    type_slug = "sandbox-registrar-exists"
    title = "A registrar with this identifier exists"


class UnknownRegistrar(NotFound):
    type_slug = "sandbox-registrar-not-found"
    title = "No registrar with this identifier"


class UnknownDomain(NotFound):
    type_slug = "sandbox-domain-not-found"
    title = "No live domain with this name"


class OutdatedSandbox(RegshieldError):
    type_slug = "sandbox-outdated"
    title = "The sandbox registry's data was made by an older version"


@dataclass(frozen=True)
class SandboxConfig:
    """The sandbox's directory (state, server certificate), where it listens, the TLDs it
    serves, how long an idle session is kept and how long a transfer waits for the losing
    registrar before the registry approves it (5 days under the Transfer Policy).

    The grace periods of RFC 3915 are those of the gTLD registries: a domain deleted within
    `add_grace_period` of its creation is purged at once; any other is restorable for
    `redemption_period`, then waits `pending_delete_period` before it is purged. A restore
    request is accepted without a restore report and completes after `restore_wait`.
    `schedule_interval` is how often, in seconds, the server does this work (and approves due
    transfers) while no command arrives.

    With `dns_listen`, the server also publishes its TLD zones, signed, over DNS on that
    address (zone.py; port 0 picks a free port); `dns_ttl` is the TTL of their records (the
    DS TTL a key rollover waits out). None, the default, publishes nothing.

    Against floods: a data unit longer than `max_frame_bytes` is refused from its length
    header alone (nothing is allocated for it); at most `max_connections` connections are
    open at once and `connections_per_source` from one address (one more is closed before
    its TLS handshake); a session that has not logged in within `login_timeout` seconds, or
    sends nothing for `idle_timeout`, is closed with a last word."""

    directory: Path
    listen: Listen = field(default_factory=lambda: Listen.parse(DEFAULT_LISTEN))
    tlds: tuple[str, ...] = DEFAULT_TLDS
    database: Path | None = None
    idle_timeout: float = 600.0  # seconds without a command before the session is closed
    login_timeout: float = 60.0  # seconds from connecting to a successful login
    max_frame_bytes: int = 256 * 1024  # a client's largest command is a few KiB
    max_connections: int = 256
    connections_per_source: int = 16
    max_login_failures: int = 3
    transfer_auto_approve: timedelta = POLICY_2016.registry_auto_approve
    add_grace_period: timedelta = timedelta(days=5)
    redemption_period: timedelta = timedelta(days=30)
    pending_delete_period: timedelta = timedelta(days=5)
    restore_wait: timedelta = timedelta(0)
    schedule_interval: float = 60.0
    dns_listen: Listen | None = None
    dns_ttl: int = 3600

    def __post_init__(self) -> None:
        if self.schedule_interval <= 0:
            raise ValueError("schedule_interval must be a positive number of seconds")
        if not 1 <= self.dns_ttl <= 86400 * 7:
            raise ValueError("dns_ttl must be 1 second to 7 days")

    @property
    def database_file(self) -> Path:
        return self.database or self.directory / DATABASE_NAME

    @classmethod
    def of(cls, settings: Settings, **overrides: Any) -> SandboxConfig:
        """The sandbox an installation runs: its directory under the home, the addresses of
        `[sandbox]` and its caps on clients (`SandboxCaps`), with `overrides`."""
        config = cls(directory=sandbox_directory(settings.home), listen=settings.sandbox_listen,
                     dns_listen=settings.sandbox_dns_listen,
                     **dataclasses.asdict(settings.sandbox_caps))
        return dataclasses.replace(config, **overrides)


def sandbox_directory(home: Path) -> Path:
    """The sandbox's directory inside an installation's data directory."""
    return home / DIRECTORY_NAME


class SandboxStore(Store):
    """regshield's Store, which also tells its watchers after each committed write (the DNS
    side builds the TLD zones again), before the writer goes on."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self._watchers: list[Callable[[], Awaitable[None]]] = []

    def after_commit(self, watcher: Callable[[], Awaitable[None]]) -> None:
        self._watchers.append(watcher)

    def stop_watching(self, watcher: Callable[[], Awaitable[None]]) -> None:
        if watcher in self._watchers:
            self._watchers.remove(watcher)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        async with super().write() as session:
            yield session
        for watcher in list(self._watchers):
            await watcher()


class SandboxState:
    """The sandbox's store: its own SQLite file, opened through regshield's Store (WAL,
    secure_delete, one writer at a time)."""

    def __init__(self, config: SandboxConfig, clock: Clock | None = None) -> None:
        self.config = config
        self.clock: Clock = clock or SystemClock()
        self.store = SandboxStore(f"sqlite+aiosqlite:///{config.database_file}")

    @classmethod
    async def open(cls, config: SandboxConfig, clock: Clock | None = None) -> SandboxState:
        config.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(config.directory, 0o700)
        state = cls(config, clock)
        async with state.store.engine.begin() as connection:
            missing = await connection.run_sync(_missing_tables)
            if not missing:
                await connection.run_sync(SandboxBase.metadata.create_all)
                missing = await connection.run_sync(_missing_columns)
        if missing:
            await state.close()
            raise OutdatedSandbox(f"{config.directory} was made by an older regshield (no "
                                  f"{', '.join(missing)}); delete that directory and start "
                                  "again")
        return state

    async def close(self) -> None:
        await self.store.close()

    async def add_registrar(self, registrar_id: str, password: str,
                            certificate_pem: bytes | None = None, *,
                            lock_password: str | None = None) -> SandboxRegistrar:
        """Accredit a registrar. Its EPP password must fit RFC 5730's pwType (6 to 16
        characters); with a certificate, it must present that certificate to log in; with a
        lock password (pwType too, and not the EPP password), it can open registry-lock
        sessions.

        Raises ValidationFailed (every reason at once), CertificateRefused, RegistrarExists."""
        problems: list[FieldError] = []
        if not 3 <= len(registrar_id) <= 16 or registrar_id != " ".join(registrar_id.split()):
            problems.append(FieldError("id", "invalid",
                                       "must be 3 to 16 characters, without surrounding or "
                                       "repeated spaces (RFC 5730 clIDType)"))
        problems += _password_problems("password", password)
        if lock_password is not None:
            problems += _password_problems("lock_password", lock_password)
            if lock_password == password:
                problems.append(_SAME_AS_PASSWORD)
        if problems:
            raise ValidationFailed(problems)
        pem, sha256 = (None, None) if certificate_pem is None \
            else read_client_certificate(certificate_pem)
        registrar = SandboxRegistrar(
            id=registrar_id, password_hash=hash_password(password),
            lock_password_hash=None if lock_password is None else hash_password(lock_password),
            certificate_sha256=sha256, certificate_pem=pem, created_at=self.clock.now())
        async with self.store.write() as session:
            if await session.get(SandboxRegistrar, registrar_id) is not None:
                raise RegistrarExists(f"registrar {registrar_id} exists")
            if pem is not None:
                await _check_subject_is_new(session, pem)
            session.add(registrar)
        return registrar

    async def set_lock_password(self, registrar_id: str, password: str) -> None:
        """Give a registrar a (new) registry-lock password, as a registry does out of band
        once it has verified who asks. It fits pwType and is not the registrar's EPP password,
        or the two credentials would be one.

        Raises ValidationFailed, UnknownRegistrar."""
        problems = _password_problems("lock_password", password)
        if problems:
            raise ValidationFailed(problems)
        registrar = await self.registrar(registrar_id)
        if registrar is None:
            raise UnknownRegistrar(f"no registrar {registrar_id}")
        # argon2 takes tens of milliseconds: off the event loop, so sessions go on.
        if await asyncio.to_thread(verify_password, registrar.password_hash, password):
            raise ValidationFailed([_SAME_AS_PASSWORD])
        password_hash = await asyncio.to_thread(hash_password, password)
        async with self.store.write() as session:
            stored = await session.get(SandboxRegistrar, registrar_id)
            if stored is None:
                raise UnknownRegistrar(f"no registrar {registrar_id}")
            stored.lock_password_hash = password_hash
        log.info("sandbox:registrar:lock_password_set", registrar=registrar_id)

    async def set_server_statuses(self, name: str, *, add: Iterable[str] = (),
                                  remove: Iterable[str] = ()) -> list[str]:
        """Set or lift server statuses on a live domain, as the registry's staff do in its own
        database; adding what is there or removing what is not changes nothing. Returns the
        domain's statuses afterwards.

        Raises ValidationFailed (a value that is not a server status, a name that is not a
        domain name, or statuses RFC 5731 does not allow together), UnknownDomain."""
        added, removed = frozenset(add), frozenset(remove)
        foreign = sorted((added | removed) - SERVER_STATUSES)
        if foreign:
            raise ValidationFailed([FieldError("statuses", "not_server_status",
                                               f"{', '.join(foreign)}: only server statuses "
                                               "are set this way")])
        canonical = parse_domain_name(name, "name").ascii
        async with self.store.write() as session:
            domain = await live_domain(session, canonical)
            if domain is None:
                raise UnknownDomain(f"{canonical} is not registered")
            statuses = (set(domain.statuses) - removed) | added
            problems = status_problems(statuses or {"ok"})
            if problems:
                raise ValidationFailed(problems)
            domain.statuses = sorted(statuses)
        log.info("sandbox:domain:server_statuses_set", domain=canonical,
                 added=sorted(added), removed=sorted(removed))
        return sorted(statuses)

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


async def live_domain(session: AsyncSession, name: str) -> SandboxDomain | None:
    """The domain registered under `name` (in redemption or not), or None once purged."""
    found = await session.scalars(select(SandboxDomain).where(
        SandboxDomain.name == name, SandboxDomain.deleted_at.is_(None)))
    return found.one_or_none()


_SAME_AS_PASSWORD = FieldError("lock_password", "same_as_password",
                               "must differ from the registrar's EPP password")


def _password_problems(field_name: str, password: str) -> list[FieldError]:
    low, high = LOGIN_PASSWORD_LENGTH
    if low <= len(password) <= high and password == password.strip():
        return []
    return [FieldError(field_name, "invalid", f"must be {low} to {high} characters without "
                       "surrounding spaces (RFC 5730 pwType)")]


def _missing_tables(connection: Connection) -> list[str]:
    """The sandbox's tables that a database file made by an older version lacks; none for a
    new (empty) file, whose tables create_all makes."""
    present = set(inspect(connection).get_table_names())
    wanted = [table.name for table in SandboxBase.metadata.sorted_tables]
    if not present & set(wanted):
        return []
    return [f"table {name}" for name in wanted if name not in present]


def _missing_columns(connection: Connection) -> list[str]:
    """The sandbox's columns that the database file lacks (an older version made it)."""
    inspector = inspect(connection)
    missing: list[str] = []
    for table in SandboxBase.metadata.sorted_tables:
        present = {column["name"] for column in inspector.get_columns(table.name)}
        missing += [f"{table.name}.{column.name}" for column in table.columns
                    if column.name not in present]
    return missing


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
