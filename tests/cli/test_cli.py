"""`regshield` from the shell: setting up an installation, users and tokens, rotating keys, and
refusing bad input with a message rather than a traceback."""

from __future__ import annotations

import asyncio
import json
import os
import re
import stat
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from conftest import PASSWORD, _reset_postgres
from sqlalchemy import select

from regshield.api.app import create_app
from regshield.config import Settings
from regshield.services import Services
from regshield.store.models import Event

REGSHIELD = str(Path(sys.executable).with_name("regshield"))


@dataclass(frozen=True)
class Completed:
    code: int
    stdout: str
    stderr: str

    @property
    def lines(self) -> list[str]:
        return self.stdout.strip().splitlines()


def operator_url(settings: Settings) -> str:
    """The database URL as an operator writes it (no driver names)."""
    return (settings.database_url.replace("postgresql+asyncpg://", "postgresql://")
            .replace("sqlite+aiosqlite:///", "sqlite:///"))


async def regshield(settings: Settings, *args: str, stdin: str | None = None,
                    database_url: str | None = None) -> Completed:
    """Run the CLI in a process of its own, configured by options only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGSHIELD_")}
    process = await asyncio.create_subprocess_exec(
        REGSHIELD, "--home", str(settings.home),
        "--database-url", database_url or operator_url(settings), *args,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=env,
    )
    stdout, stderr = await asyncio.wait_for(
        process.communicate((stdin or "").encode()), timeout=120)
    assert process.returncode is not None
    return Completed(process.returncode, stdout.decode(), stderr.decode())


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def assert_refused(result: Completed) -> None:
    """A refusal: non-zero exit, a message, and no Python traceback."""
    assert result.code != 0
    assert result.stderr.strip().startswith("error:"), result.stderr
    assert "Traceback" not in result.stderr + result.stdout


@pytest.fixture
async def fresh(settings: Settings, tmp_path: Path) -> Settings:
    """Settings of an installation that does not exist yet (an empty database on PostgreSQL)."""
    home = tmp_path / "fresh-home"
    if settings.is_sqlite:
        url = f"sqlite:///{home / 'regshield.db'}"
    else:
        await _reset_postgres(settings.database_url)
        url = settings.database_url
    return Settings.load(home=home, database_url=url, environ={})


@pytest.fixture
async def services_of_cli(fresh: Settings) -> AsyncIterator[list[Services]]:
    """Services opened by the test on the installation that the CLI set up (closed at the end)."""
    opened: list[Services] = []
    yield opened
    for services in opened:
        await services.close()


def api_client(services: Services) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_app(services), client=("192.0.2.20", 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://regshield.test")


async def test_cli_sets_up_an_installation_whose_users_and_tokens_work_in_the_api(
        fresh: Settings, services_of_cli: list[Services]) -> None:
    settings = fresh
    assert not settings.home.exists()

    first = await regshield(settings, "init")
    again = await regshield(settings, "init")

    assert first.code == 0, first.stderr
    assert again.code == 0, again.stderr
    assert "(created)" in first.lines[0] and "(created)" in first.lines[1]
    assert "(created)" not in again.stdout
    assert "schema up to date" in again.stdout
    assert mode(settings.home) == 0o700
    assert mode(settings.key_file) == 0o600
    if settings.is_sqlite:
        for database_file in settings.home.glob("regshield.db*"):
            assert mode(database_file) == 0o600, database_file
        assert (settings.home / "regshield.db").exists()
    else:  # --database-url chose PostgreSQL: no embedded database file appears
        assert not list(settings.home.glob("regshield.db*"))
        assert "postgresql+asyncpg://" in first.stdout

    account = await regshield(settings, "account", "create", "Acme Domains")
    assert account.code == 0, account.stderr
    account_id = re.fullmatch(r"account (acc_\S+) Acme Domains", account.lines[-1])
    assert account_id, account.stdout

    admin = await regshield(settings, "user", "create", "root@example.net", "--role", "admin",
                            "--password-stdin", stdin=PASSWORD + "\n")
    assert admin.code == 0, admin.stderr
    assert re.fullmatch(r"user usr_\S+ role admin", admin.lines[-1]), admin.stdout

    member = await regshield(settings, "user", "create", "Jane@Example.net", "--role", "member",
                             "--account", "Acme Domains", "--password-stdin",
                             stdin=PASSWORD + "\n")
    assert member.code == 0, member.stderr
    assert member.lines[-1].endswith(f"role member account {account_id.group(1)}")
    assert PASSWORD not in member.stdout + member.stderr

    token = await regshield(settings, "token", "create", "jane@example.net", "--name", "ci",
                            "--expires-days", "7")
    assert token.code == 0, token.stderr
    value = token.lines[-1]
    assert value.startswith("rs_") and value == value.strip() and " " not in value
    expires = re.search(r"expires (\d{4}-\d\d-\d\d \d\d:\d\d) UTC", token.stdout)
    assert expires, token.stdout
    expires_at = datetime.strptime(expires.group(1), "%Y-%m-%d %H:%M").replace(tzinfo=UTC)
    assert abs(expires_at - (datetime.now(UTC) + timedelta(days=7))) < timedelta(minutes=5)

    services = Services.open(settings)
    services_of_cli.append(services)
    async with api_client(services) as api:
        me = await api.get("/api/v1/me", headers={"Authorization": f"Bearer {value}"})
        assert me.status_code == 200, me.text
        assert me.json()["email"] == "Jane@example.net"  # domain normalized, local part kept
        assert me.json()["role"] == "member"
        assert me.json()["account"] == account_id.group(1)
        tokens = await api.get("/api/v1/tokens", headers={"Authorization": f"Bearer {value}"})
        assert [t["name"] for t in tokens.json()] == ["ci"]
        login = await api.post("/api/v1/auth/login",
                               json={"email": "root@example.net", "password": PASSWORD})
        assert login.status_code == 200, login.text

        old_ring = json.loads(settings.key_file.read_text())
        rotated = await regshield(settings, "keys", "rotate")
        assert rotated.code == 0, rotated.stderr
        new_ring = json.loads(settings.key_file.read_text())
        assert f"new master key {new_ring['primary']}" in rotated.stdout
        assert new_ring["primary"] != old_ring["primary"]
        assert f"retired {old_ring['primary']}" in rotated.stdout
        assert list(new_ring["keys"]) == [new_ring["primary"]]
        assert mode(settings.key_file) == 0o600
        # Sealed data written under the old key still opens: its data key was re-wrapped.
        await asyncio.sleep(1.1)  # the API process picks up the new ring within a second
        after = await api.get("/api/v1/me", headers={"Authorization": f"Bearer {value}"})
        assert after.status_code == 200, after.text
        assert after.json()["email"] == "Jane@example.net"

    async with services.store.read() as session:
        events = (await session.execute(select(Event).order_by(Event.seq))).scalars().all()
    by_tag = {e.tag: e for e in events}
    for tag in ("accounts:account:created", "users:user:created", "auth:token:created",
                "keys:master:rotated"):
        assert by_tag[tag].channel == "cli", tag
        assert by_tag[tag].actor == "system:cli", tag
    assert [e.tag for e in events].count("system:installation:initialized") == 1


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_user_create_refuses_a_password_that_is_not_on_stdin(
        services: Services, settings: Settings) -> None:
    result = await regshield(settings, "user", "create", "root@example.net", "--role", "admin",
                             stdin=PASSWORD + "\n")

    assert_refused(result)
    assert "--password-stdin" in result.stderr
    async with services.store.read() as session:
        tags = (await session.execute(select(Event.tag))).scalars().all()
    assert "users:user:created" not in tags


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_user_create_with_a_weak_password_lists_every_reason(
        services: Services, settings: Settings) -> None:
    result = await regshield(settings, "user", "create", "root@example.net", "--role", "admin",
                             "--password-stdin", stdin="password\n")

    assert result.code == 1
    assert_refused(result)
    reasons = [line.strip() for line in result.stderr.splitlines()[1:]]
    assert all(reason.startswith("password:") for reason in reasons), result.stderr
    assert any("too_short" in reason for reason in reasons)
    assert any("too_common" in reason for reason in reasons)
    async with services.store.read() as session:
        tags = (await session.execute(select(Event.tag))).scalars().all()
    assert "users:user:created" not in tags


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_token_for_an_unknown_user_is_refused_with_a_message(
        services: Services, settings: Settings) -> None:
    result = await regshield(settings, "token", "create", "nobody@example.net")

    assert_refused(result)
    assert "no user" in result.stderr
    assert "rs_" not in result.stdout


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_unsupported_database_url_is_refused_with_a_message(fresh: Settings) -> None:
    result = await regshield(fresh, "init", database_url="mysql://root@127.0.0.1/regshield")

    assert_refused(result)
    assert "database URL" in result.stderr
    assert not fresh.home.exists()


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_database_that_does_not_exist_is_refused_with_a_message(
        settings: Settings) -> None:
    missing = operator_url(settings).rsplit("/", 1)[0] + "/regshield_no_such_database"

    result = await regshield(settings, "init", database_url=missing)

    assert_refused(result)
    assert "regshield_no_such_database" in result.stderr
