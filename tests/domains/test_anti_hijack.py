"""What a stolen password or token cannot do, transfer codes, and the registry's own locks."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
from api.test_auth import STEP
from conftest import PASSWORD
from sqlalchemy import select, text

from domains.conftest import Holder, Registry, as_other_registrar
from domains.test_lifecycle import DOMAINS, register
from regshield.clock import FakeClock
from regshield.flows.sweeps import sweep
from regshield.registry.codec import ResultCode, Secret
from regshield.registry.commands import DomainTransfer
from regshield.security.totp import code_at
from regshield.services import Services
from regshield.store.models import Base, Domain


async def test_a_stolen_token_without_a_step_up_cannot_move_reveal_or_unlock(
        api: httpx.AsyncClient, holder: Holder, registry: Registry) -> None:
    assert (await register(api, holder)).status_code == 201
    stolen = holder.headers  # valid, with the step-up scope, but no one-time code

    moved = await api.put(f"{DOMAINS}/example.test/nameservers", headers=stolen,
                          json={"nameservers": ["ns1.attacker.example"]})
    revealed = await api.post(f"{DOMAINS}/example.test/transfer-code", headers=stolen)
    unlocked = await api.delete(f"{DOMAINS}/example.test/registrar-lock", headers=stolen)
    ds = await api.put(f"{DOMAINS}/example.test/ds", headers=stolen, json={"ds": []})

    for response in (moved, revealed, unlocked, ds):
        assert response.status_code == 403, response.text
        assert response.json()["type"].endswith("step-up-required")
    at_registry = registry.domain("example.test")
    assert at_registry is not None
    assert at_registry["nameservers"] == ["ns1.example.net", "ns2.example.net"]
    assert {"clientTransferProhibited", "clientDeleteProhibited"} <= at_registry["statuses"]


async def test_a_token_without_the_step_up_scope_cannot_even_with_a_code(
        api: httpx.AsyncClient, holder: Holder, registry: Registry, clock: FakeClock) -> None:
    assert (await register(api, holder)).status_code == 201
    login = await api.post("/api/v1/auth/login", json={
        "email": holder.identity.email, "password": PASSWORD,
        "otp": code_at(holder.secret, clock.now())})
    clock.advance(STEP)
    automation = await api.post("/api/v1/tokens", json={"name": "ci", "scopes": ["*"]},
                                headers={"Authorization": f"Bearer {login.json()['token']}"})
    headers = {"Authorization": f"Bearer {automation.json()['token']}",
               "X-OTP": code_at(holder.secret, clock.now())}

    response = await api.put(f"{DOMAINS}/example.test/nameservers", headers=headers,
                             json={"nameservers": ["ns1.attacker.example"]})

    assert response.status_code == 403
    assert "self:step_up:use" in response.json()["detail"]


async def test_a_step_up_expires_after_the_window(
        api: httpx.AsyncClient, holder: Holder, registry: Registry, clock: FakeClock) -> None:
    assert (await register(api, holder)).status_code == 201
    stepped = await api.put(f"{DOMAINS}/example.test/nameservers", headers=holder.otp(),
                            json={"nameservers": ["ns3.example.net"]})
    assert stepped.status_code == 200
    clock.advance(STEP * 9)  # within 5 minutes: the token remembers the step-up
    again = await api.put(f"{DOMAINS}/example.test/nameservers", headers=holder.headers,
                          json={"nameservers": ["ns4.example.net"]})
    assert again.status_code == 200, again.text
    clock.advance(STEP * 11)
    late = await api.put(f"{DOMAINS}/example.test/nameservers", headers=holder.headers,
                         json={"nameservers": ["ns5.example.net"]})
    assert late.status_code == 403


async def test_a_wrong_one_time_code_is_refused_and_recorded(
        api: httpx.AsyncClient, holder: Holder, registry: Registry, services: Services) -> None:
    assert (await register(api, holder)).status_code == 201
    response = await api.put(f"{DOMAINS}/example.test/nameservers",
                             headers={**holder.headers, "X-OTP": "000000"},
                             json={"nameservers": ["ns1.attacker.example"]})
    assert response.status_code == 401
    async with services.store.read() as session:
        tags = list(await session.scalars(text(
            "SELECT tag FROM events WHERE tag LIKE 'auth:step-up:%'")))
    assert tags == ["auth:step-up:failed"]


async def test_a_transfer_code_is_shown_once_kept_only_as_a_hash_and_works_at_the_registry(
        api: httpx.AsyncClient, holder: Holder, registry: Registry,
        services: Services) -> None:
    assert (await register(api, holder)).status_code == 201
    unlocked = await api.delete(f"{DOMAINS}/example.test/registrar-lock", headers=holder.otp())
    assert unlocked.status_code == 200

    issued = await api.post(f"{DOMAINS}/example.test/transfer-code", headers=holder.otp())

    assert issued.status_code == 201, issued.text
    code = issued.json()["code"]
    assert len(code) == 24
    # No plaintext anywhere in regshield's database: every column of every table.
    async with services.store.read() as session:
        for table in Base.metadata.sorted_tables:
            for row in (await session.execute(select(table))).all():
                assert code not in repr(row), f"the code is stored in {table.name}"
        domain = (await session.scalars(select(Domain))).one()
        assert domain.transfer_code_hash and domain.transfer_code_hash.startswith("sha256$")
    # ... nor in the registry's.
    registry_bytes = await asyncio.to_thread(registry.config.database_file.read_bytes)
    assert code.encode() not in registry_bytes
    wrong = await as_other_registrar(registry, DomainTransfer(
        "example.test", op="request", auth_info=Secret("not-the-code-1!A")))
    assert wrong.code == ResultCode.INVALID_AUTHORIZATION_INFORMATION
    moved = await as_other_registrar(registry, DomainTransfer(
        "example.test", op="request", auth_info=Secret(code)))
    assert moved.code == ResultCode.COMPLETED_ACTION_PENDING


async def test_a_leaked_code_cannot_move_a_domain_under_registrar_lock(
        api: httpx.AsyncClient, holder: Holder, registry: Registry) -> None:
    assert (await register(api, holder)).status_code == 201
    issued = await api.post(f"{DOMAINS}/example.test/transfer-code", headers=holder.otp())
    assert issued.status_code == 201, issued.text
    refused = await as_other_registrar(registry, DomainTransfer(
        "example.test", op="request", auth_info=Secret(issued.json()["code"])))
    assert refused.code == ResultCode.OBJECT_STATUS_PROHIBITS_OPERATION


async def test_a_registry_locked_domain_refuses_updates_even_after_a_hand_edit(
        api: httpx.AsyncClient, holder: Holder, registry: Registry,
        services: Services) -> None:
    assert (await register(api, holder)).status_code == 201
    await registry.server.state.set_server_statuses(
        "example.test", add={"serverUpdateProhibited", "serverDeleteProhibited",
                             "serverTransferProhibited"})
    # Someone with database access clears what regshield knows of the registry's statuses.
    async with services.store.write() as session:
        domain = (await session.scalars(select(Domain))).one()
        domain.registry_statuses = ["clientDeleteProhibited", "clientTransferProhibited"]

    response = await api.put(f"{DOMAINS}/example.test/nameservers", headers=holder.otp(),
                             json={"nameservers": ["ns1.attacker.example"]})

    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == "nameservers"
    assert "2304" in response.json()["errors"][0]["message"]
    at_registry = registry.domain("example.test")
    assert at_registry is not None
    assert at_registry["nameservers"] == ["ns1.example.net", "ns2.example.net"]
    fetched = await api.get(f"{DOMAINS}/example.test", headers=holder.headers)
    assert fetched.json()["nameservers"] == ["ns1.example.net", "ns2.example.net"]


async def test_a_transfer_code_stops_working_at_the_registry_when_it_expires(
        api: httpx.AsyncClient, holder: Holder, registry: Registry, services: Services,
        clock: FakeClock) -> None:
    assert (await register(api, holder)).status_code == 201
    assert (await api.delete(f"{DOMAINS}/example.test/registrar-lock",
                             headers=holder.otp())).status_code == 200
    issued = await api.post(f"{DOMAINS}/example.test/transfer-code", headers=holder.otp())
    assert issued.status_code == 201, issued.text

    clock.advance(timedelta(days=13))
    assert await sweep(services) == []
    clock.advance(timedelta(days=1, seconds=1))  # 14 days: the Transfer Policy's lifetime
    assert len(await sweep(services)) == 1

    late = await as_other_registrar(registry, DomainTransfer(
        "example.test", op="request", auth_info=Secret(issued.json()["code"])))
    assert late.code == ResultCode.INVALID_AUTHORIZATION_INFORMATION
    fetched = await api.get(f"{DOMAINS}/example.test", headers=holder.headers)
    assert fetched.json()["transfer_code_expires_at"] is None
    async with services.store.read() as session:
        domain = (await session.scalars(select(Domain))).one()
        assert domain.transfer_code_hash is None
