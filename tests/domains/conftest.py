"""Domains end to end: regshield's API and flows, its EPP pool over TLS, and a sandbox
registry on loopback holding the other side, on both store backends."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from api.test_auth import STEP, enable_totp
from conftest import PASSWORD, Identity, World
from contact_samples import contact_body

from regshield.clock import FakeClock
from regshield.config import Listen
from regshield.registry.client import EppSession, RegistryEndpoint
from regshield.registry.codec import DOMAIN_NS, HOST_NS, Secret
from regshield.registry.commands import Command
from regshield.registry.links import Registries, RegistryLink
from regshield.registry.responses import EppResponse
from regshield.registry.sandbox.server import SandboxServer
from regshield.registry.sandbox.state import SandboxConfig
from regshield.security.totp import code_at
from regshield.services import Services

LINK_PASSWORD = "link-pass-0001"
LINK_LOCK_PASSWORD = "link-lock-0003"
OTHER_PASSWORD = "other-pass-0002"
NS = ["ns1.example.net", "ns2.example.net"]


@dataclass
class Registry:
    """The sandbox registry as the test sees it: its server, and its database to read."""

    server: SandboxServer
    config: SandboxConfig
    link: RegistryLink
    running: bool = True

    async def restart(self, clock: FakeClock, *, down: bool = False) -> None:
        """Stop the registry (and with `down`, leave it stopped); start it again on the same
        port and state."""
        port = self.link.endpoint.port
        if self.running:
            await self.server.close()
        self.running = not down
        if not down:
            self.config = replace(self.config, listen=Listen("127.0.0.1", port))
            self.server = await SandboxServer.start(self.config, clock)

    def sql(self, statement: str, *parameters: object) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.config.database_file) as connection:
            return connection.execute(statement, parameters).fetchall()

    def domain(self, name: str) -> dict[str, Any] | None:
        rows = self.sql("SELECT sponsor_id, statuses, nameservers, expires_at FROM domains "
                        "WHERE name = ? AND deleted_at IS NULL", name)
        if not rows:
            return None
        sponsor, statuses, nameservers, expires = rows[0]
        return {"sponsor": sponsor, "statuses": set(json.loads(statuses)),
                "nameservers": json.loads(nameservers), "expires_at": expires}


def endpoint_of(server: SandboxServer, client_id: str = "regshield",
                password: str = LINK_PASSWORD) -> RegistryEndpoint:
    return RegistryEndpoint(
        host="127.0.0.1", port=server.port, client_id=client_id, password=Secret(password),
        ca_certificate=server.certificate, server_hostname="localhost",
        command_timeout=10.0, connect_timeout=5.0)


def link_to(server: SandboxServer, name: str = "sandbox") -> RegistryLink:
    return RegistryLink(name, frozenset({"test", "example"}), endpoint_of(server),
                        lock_endpoint=endpoint_of(server, password=LINK_LOCK_PASSWORD))


async def as_other_registrar(registry: Registry, command: Command) -> EppResponse:
    """One command from another registrar, over its own EPP session (without contacts: a
    minimum-data session, so a domain needs no registrant)."""
    endpoint = replace(endpoint_of(registry.server, "other-rar", OTHER_PASSWORD),
                       object_uris=(DOMAIN_NS, HOST_NS))
    session = await EppSession.open(endpoint)
    try:
        return await session.execute(command)
    finally:
        await session.logout()


@pytest.fixture
async def registry(services: Services, tmp_path: Path, clock: FakeClock
                   ) -> AsyncIterator[Registry]:
    config = SandboxConfig(directory=tmp_path / "sandbox", listen=Listen("127.0.0.1", 0))
    server = await SandboxServer.start(config, clock)
    await server.state.add_registrar("regshield", LINK_PASSWORD,
                                     lock_password=LINK_LOCK_PASSWORD)
    await server.state.add_registrar("other-rar", OTHER_PASSWORD)
    link = link_to(server)
    await services.registries.close()
    services.registries = Registries([link])
    box = Registry(server, config, link)
    yield box
    await services.registries.close()
    if box.running:
        await box.server.close()


@dataclass
class Holder:
    """A customer who owns an account, with TOTP enrolled and a contact to register with."""

    identity: Identity
    secret: str
    contact: str
    clock: FakeClock

    @property
    def headers(self) -> dict[str, str]:
        return self.identity.headers

    def otp(self) -> dict[str, str]:
        """Headers with a step-up: a token that may step up and a current one-time code."""
        code = code_at(self.secret, self.clock.now())
        self.clock.advance(STEP)  # the next code is a new one: a code is accepted once
        return {**self.headers, "X-OTP": code}


@pytest.fixture
async def holder(world: World, api: httpx.AsyncClient, clock: FakeClock) -> Holder:
    return await stepped_up_owner(world, api, clock)


async def stepped_up_owner(world: World, api: httpx.AsyncClient, clock: FakeClock,
                           account: str | None = None) -> Holder:
    """The owner of `account` (a new one by default), with TOTP, a contact, and a token that
    may step up."""
    account = account or await world.account()
    owner = await world.user("owner", account)
    secret, _ = await enable_totp(api, owner, clock)
    created = await api.post("/api/v1/contacts", headers=owner.headers, json=contact_body())
    assert created.status_code == 201, created.text
    # A token for sensitive changes: the explicit step-up scope beside everything else,
    # granted only from a login with a one-time code.
    login = await api.post("/api/v1/auth/login", json={
        "email": owner.email, "password": PASSWORD, "otp": code_at(secret, clock.now())})
    assert login.status_code == 200, login.text
    clock.advance(STEP)
    token = await api.post("/api/v1/tokens",
                           headers={"Authorization": f"Bearer {login.json()['token']}"},
                           json={"name": "ops", "scopes": ["*", "self:step_up:use"]})
    assert token.status_code == 201, token.text
    stepper = Identity(owner.user_id, owner.email, "owner", account, token.json()["token"])
    return Holder(stepper, secret, created.json()["handle"], clock)
