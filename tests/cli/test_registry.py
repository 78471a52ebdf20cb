"""`regshield registry poll` and `regshield registry sync` from the shell, against a sandbox
registry on loopback configured as a `[registries.sandbox]` link."""

from __future__ import annotations

import httpx
import pytest
from domains import conftest as domain_fixtures
from domains.conftest import LINK_PASSWORD, Holder, Registry, as_other_registrar
from domains.test_lifecycle import DOMAINS, events, register

from cli.test_cli import Completed, assert_refused, regshield
from regshield.clock import FakeClock
from regshield.registry.codec import ResultCode, Secret
from regshield.registry.commands import DomainTransfer
from regshield.services import Services

registry = domain_fixtures.registry
holder = domain_fixtures.holder


@pytest.fixture
def linked(services: Services, registry: Registry) -> Services:
    """The installation's config names the test's sandbox as its registry link."""
    home = services.settings.home
    password_file = home / "sandbox-link.secret"
    password_file.write_text(LINK_PASSWORD + "\n")
    password_file.chmod(0o600)
    endpoint = registry.link.endpoint
    (home / "regshield.toml").write_text(
        "[registries.sandbox]\n"
        'tlds = ["test", "example"]\n'
        f'host = "{endpoint.host}"\n'
        f"port = {endpoint.port}\n"
        f'client_id = "{endpoint.client_id}"\n'
        f'password_file = "{password_file}"\n'
        f'ca_certificate = "{endpoint.ca_certificate}"\n'
        'server_hostname = "localhost"\n')
    return services


async def sync(services: Services, *args: str) -> Completed:
    return await regshield(services.settings, "registry", "sync", *args)


async def test_sync_exits_0_in_step_3_on_drift_then_0_once_adopted(
        api: httpx.AsyncClient, holder: Holder, registry: Registry, linked: Services) -> None:
    assert (await register(api, holder)).status_code == 201

    clean = await sync(linked)
    assert clean.code == 0, clean.stderr
    assert clean.lines == ["sandbox: 1 checked, 1 in step, 0 with drift, 0 skipped, 0 errors"]

    registry.sql("UPDATE domains SET nameservers = '[\"ns9.example.com\"]' "
                 "WHERE name = 'example.test'")
    drifted = await sync(linked, "--registry", "sandbox")
    assert drifted.code == 3, drifted.stderr
    assert drifted.lines == ["sandbox: 1 checked, 0 in step, 1 with drift, 0 skipped, 0 errors",
                             "  drift    example.test: nameservers"]
    [drift] = await events(linked, "domains:registry:drift")
    assert drift.summary["differences"] == ["nameservers"]
    fetched = await api.get(f"{DOMAINS}/example.test", headers=holder.headers)
    assert fetched.json()["nameservers"] == ["ns9.example.com"]

    again = await sync(linked)
    assert again.code == 0, again.stderr
    assert len(await events(linked, "domains:registry:drift")) == 1


async def test_sync_says_clearly_when_the_registry_cannot_be_reached(
        registry: Registry, linked: Services, clock: FakeClock) -> None:
    await registry.restart(clock, down=True)

    result = await sync(linked)

    assert result.code == 1
    assert_refused(result)
    assert "the registry sandbox cannot be reached" in result.stderr


async def test_sync_of_a_registry_that_is_not_configured_is_refused(linked: Services) -> None:
    result = await sync(linked, "--registry", "nowhere")
    assert result.code == 1
    assert_refused(result)
    assert "nowhere" in result.stderr


async def test_poll_records_each_message_and_prints_how_many(
        api: httpx.AsyncClient, holder: Holder, registry: Registry, linked: Services) -> None:
    assert (await register(api, holder)).status_code == 201
    unlocked = await api.delete(f"{DOMAINS}/example.test/registrar-lock", headers=holder.otp())
    assert unlocked.status_code == 200, unlocked.text
    issued = await api.post(f"{DOMAINS}/example.test/transfer-code", headers=holder.otp())
    assert issued.status_code == 201, issued.text
    asked = await as_other_registrar(registry, DomainTransfer(
        "example.test", op="request", auth_info=Secret(issued.json()["code"])))
    assert asked.code == ResultCode.COMPLETED_ACTION_PENDING

    first = await regshield(linked.settings, "registry", "poll")
    second = await regshield(linked.settings, "registry", "poll")

    assert (first.code, first.lines) == (0, ["sandbox: 1 message"]), first.stderr
    assert (second.code, second.lines) == (0, ["sandbox: 0 messages"]), second.stderr
    assert [e.tag for e in await events(linked, "registry:poll:")] == \
        ["registry:poll:transfer-requested"]
    assert len(await events(linked, "domains:transfer-out:requested")) == 1
