"""Shared fixtures. Every test that touches the store runs twice: on SQLite and on PostgreSQL.

PostgreSQL comes from REGSHIELD_TEST_POSTGRES (default: trust auth on 127.0.0.1:5432, database
`test`); the suite makes a database of its own there and drops it at the end.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import os
import secrets
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import structlog
import uvicorn
from sqlalchemy import text

from regshield.api.app import create_app
from regshield.clock import FakeClock
from regshield.config import Settings
from regshield.dns.publisher import Publisher
from regshield.dns.server import DnsServer
from regshield.flows.accounts import AccountCreate
from regshield.flows.auth import TokenCreate
from regshield.flows.context import RequestContext, system_actor
from regshield.flows.runner import run_flow
from regshield.flows.users import UserCreate
from regshield.services import Services
from regshield.setup import initialize
from regshield.store.engine import Store
from regshield.store.models import Base

POSTGRES_ADMIN = os.environ.get("REGSHIELD_TEST_POSTGRES",
                                "postgresql://postgres@127.0.0.1:5432/test")
BACKENDS = [b for b in os.environ.get("REGSHIELD_TEST_BACKENDS", "sqlite,postgresql").split(",")
            if b]
PASSWORD = "a long unguessable passphrase 42"
START = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


# A test that has not ended after this long has hung: it fails with the traceback of where it
# waited, and the run goes on, instead of the whole run being stopped from outside.
TEST_LIMIT_SECONDS = 600


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        function = getattr(item, "obj", None)
        if isinstance(item, pytest.Function) and inspect.iscoroutinefunction(function):
            item.obj = _bounded(function)


def _bounded(test: Callable[..., Coroutine[Any, Any, None]]
             ) -> Callable[..., Coroutine[Any, Any, None]]:
    @functools.wraps(test)
    async def bounded(*args: Any, **kwargs: Any) -> None:
        async with asyncio.timeout(TEST_LIMIT_SECONDS):
            await test(*args, **kwargs)
    return bounded


def _in_own_loop(coroutine: Coroutine[Any, Any, None]) -> None:
    """Run setup work on a loop of its own, outside the tests' loop."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, coroutine).result()


async def _create_database(name: str, url: str) -> None:
    admin = await asyncpg.connect(POSTGRES_ADMIN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    store = Store(url)
    await store.migrate()
    await store.close()


async def _drop_database(name: str) -> None:
    admin = await asyncpg.connect(POSTGRES_ADMIN)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture(scope="session", autouse=True)
def quick_password_hashes() -> Iterator[None]:
    """argon2id at the lowest cost in this process: a test makes and checks passwords by the
    dozen (its users, the sandbox registry's registrars, logins), each 60 ms at the real cost,
    which was a fifth of the suite's time. tests/security/test_passwords.py checks the real
    cost, and `serve` started as a process of its own hashes at it."""
    from argon2 import PasswordHasher

    from regshield.security import passwords

    quick = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(passwords, "_hasher", quick)
        patch.setattr(passwords, "_DUMMY_HASH", quick.hash("regshield-timing-equalizer"))
        yield


@pytest.fixture(autouse=True)
def logging_as_configured() -> Iterator[None]:
    """A test that runs the CLI in this process configures logging for the whole process;
    the next test gets the configuration back as it was."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


@dataclass(frozen=True)
class SoftHsm:
    """A SoftHSM token for PKCS#11 keys; python-pkcs11 reads the SoftHSM configuration once
    per process, so every test shares this one."""

    config: Path
    label: str
    pin: str


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SoftHsm]:
    tool = shutil.which("softhsm2-util")
    if tool is None or not Path("/usr/lib/softhsm/libsofthsm2.so").exists():
        pytest.fail("SoftHSM is missing: install the softhsm2 package (scripts/test-services)")
    home = tmp_path_factory.mktemp("softhsm")
    (home / "tokens").mkdir()
    config = home / "softhsm2.conf"
    config.write_text(f"directories.tokendir = {home / 'tokens'}\nobjectstore.backend = file\n"
                      "log.level = ERROR\n")
    token = SoftHsm(config, "regshield", "271828")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SOFTHSM2_CONF", str(config))
        subprocess.run([tool, "--init-token", "--free", "--label", token.label, "--pin",
                        token.pin, "--so-pin", "314159"], check=True, capture_output=True,
                       env={**os.environ, "SOFTHSM2_CONF": str(config)})
        yield token


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A database of this test session's own on the PostgreSQL server, migrated once."""
    name = f"regshield_test_{os.getpid()}_{secrets.token_hex(3)}"
    url = f"{POSTGRES_ADMIN.rsplit('/', 1)[0]}/{name}".replace(
        "postgresql://", "postgresql+asyncpg://")
    _in_own_loop(_create_database(name, url))
    yield url
    _in_own_loop(_drop_database(name))


async def _reset_postgres(url: str) -> None:
    store = Store(url)
    try:
        async with store.engine.begin() as connection:
            await connection.execute(text("SET LOCAL session_replication_role = replica"))
            tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
            await connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
            await connection.execute(text(
                "INSERT INTO event_chain (id, last_seq, last_hash) VALUES (1, 0, :g)"
            ).bindparams(g="0" * 64))
    finally:
        await store.close()


async def _migrate(url: str) -> None:
    store = Store(url)
    await store.migrate()
    await store.close()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test (faster than migrating each time)."""
    path = tmp_path_factory.mktemp("template") / "regshield.db"
    _in_own_loop(_migrate(f"sqlite+aiosqlite:///{path}"))
    return path


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def settings(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    home = tmp_path / "home"
    if backend == "postgresql":
        url = str(request.getfixturevalue("postgres_url"))
    else:
        home.mkdir(mode=0o700)
        shutil.copyfile(request.getfixturevalue("sqlite_template"), home / "regshield.db")
        url = f"sqlite:///{home / 'regshield.db'}"
    # The clock stands still in tests, so no bucket refills: the API's general rate limit is
    # set out of the way of tests that walk every route, and tested where it is set
    # (tests/api/test_listener.py, tests/rdds/test_metrics.py).
    return Settings.load(home=home, database_url=url,
                         environ={"REGSHIELD_LIMITS_API_BURST": "10000000"})


@pytest.fixture
async def services(settings: Settings, clock: FakeClock) -> AsyncIterator[Services]:
    if not settings.is_sqlite:
        await _reset_postgres(settings.database_url)
    await initialize(settings, clock)
    opened = Services.open(settings, clock)
    yield opened
    await opened.close()


@pytest.fixture
async def served(services: Services) -> AsyncIterator[tuple[Publisher, DnsServer]]:
    """regshield's publisher and its DNS listener on loopback."""
    publisher = Publisher(services, notify_timeout=0.2, notify_retries=0)
    server = DnsServer(publisher.table, keyring=publisher.keyring,
                       transfers=publisher.transfers)
    await server.start("127.0.0.1", 0)
    yield publisher, server
    await server.close()
    await publisher.close()


@dataclass
class Identity:
    """A user made for a test, with an API token."""

    user_id: str
    email: str
    role: str
    account: str | None
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


class World:
    """Makes accounts, users and tokens through the real flows."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.context = RequestContext("cli")

    async def flow(self, flow: Any) -> Any:
        return await run_flow(self.services, system_actor("test"), self.context, flow)

    async def account(self, name: str | None = None) -> str:
        created = await self.flow(AccountCreate(name or f"account-{secrets.token_hex(3)}"))
        return str(created.public_id)

    async def user(self, role: str, account: str | None = None, email: str | None = None,
                   password: str = PASSWORD) -> Identity:
        email = email or f"{role}-{secrets.token_hex(3)}@example.net"
        created = await self.flow(UserCreate(email, password, role, account))
        issued = await self.flow(TokenCreate(created.user.public_id, "test"))
        return Identity(created.user.public_id, email, role, created.account, issued.value)


@pytest.fixture
def world(services: Services) -> World:
    return World(services)


@pytest.fixture
async def api(services: Services) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(services), client=("192.0.2.10", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://regshield.test") as client:
        yield client


@asynccontextmanager
async def uvicorn_listening(config: uvicorn.Config) -> AsyncIterator[int]:
    """A real uvicorn server with `config` (on a loopback port), its port while it runs."""
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(1000):  # at most ten seconds to listen
        if server.started or task.done():
            break
        await asyncio.sleep(0.01)
    assert server.started
    try:
        yield int(server.servers[0].sockets[0].getsockname()[1])
    finally:
        server.should_exit = True
        await task
