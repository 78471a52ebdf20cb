"""The registry-lock workflow end to end: a separate lock credential, a code sent out of
band, the registry's server statuses set on its lock channel, and every refusal."""

from __future__ import annotations

import email
import email.policy
import json
import re
from dataclasses import replace
from datetime import timedelta

import httpx
import pytest
from conftest import World
from sqlalchemy import select

from domains.conftest import Holder, Registry
from domains.test_lifecycle import DOMAINS, events, register
from regshield.clock import FakeClock
from regshield.errors import PermissionDenied
from regshield.flows.context import RequestContext, system_actor
from regshield.flows.domains import DsSet
from regshield.flows.operations import execute_all
from regshield.flows.runner import run_flow
from regshield.flows.sweeps import sweep
from regshield.notify.delivery import MAIL_DIRECTORY
from regshield.security.authentication import actor_for_bearer
from regshield.services import Services
from regshield.store.models import Domain, OutboxItem, RegistryLockRequest

LOCK_PASSWORD = "another long lock passphrase 7"
LOCK_EMAIL = "lock-desk@example.org"
SERVER_LOCK = {"serverUpdateProhibited", "serverDeleteProhibited", "serverTransferProhibited"}
CODE = re.compile(r"^    ([0-9a-z]{4}(?:-[0-9a-z]{4}){6})$", re.MULTILINE)


async def with_credential(api: httpx.AsyncClient, holder: Holder) -> None:
    response = await api.put("/api/v1/me/registry-lock", headers=holder.otp(),
                             json={"lock_email": LOCK_EMAIL, "lock_password": LOCK_PASSWORD})
    assert response.status_code == 204, response.text


def last_code(services: Services) -> str:
    """The code from the newest message to the lock address (the .eml files of the embedded
    mail setting)."""
    directory = services.settings.home / MAIL_DIRECTORY
    messages = [email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
                for p in sorted(directory.glob("*.eml"), key=lambda p: p.stat().st_mtime_ns)]
    to_lock = [m for m in messages if str(m["To"]) == LOCK_EMAIL]
    assert to_lock, "no message reached the lock address"
    body = to_lock[-1].get_body(preferencelist=("plain",))
    assert body is not None
    found = CODE.search(body.get_content())
    assert found is not None
    return found.group(1)


async def ask(api: httpx.AsyncClient, holder: Holder, action: str = "lock",
              **extra: object) -> httpx.Response:
    return await api.post(f"{DOMAINS}/example.test/registry-lock", headers=holder.headers,
                          json={"action": action, "lock_password": LOCK_PASSWORD, **extra})


async def locked(api: httpx.AsyncClient, holder: Holder, services: Services) -> None:
    asked = await ask(api, holder)
    assert asked.status_code == 202, asked.text
    verified = await api.post("/api/v1/registry-lock/verify", headers=holder.headers,
                              json={"code": last_code(services)})
    assert verified.status_code == 200, verified.text


async def test_a_verified_lock_is_set_at_the_registry_and_holds_against_updates(
        api: httpx.AsyncClient, holder: Holder, registry: Registry,
        services: Services) -> None:
    assert (await register(api, holder)).status_code == 201
    await with_credential(api, holder)

    asked = await ask(api, holder)

    assert asked.status_code == 202, asked.text
    assert asked.json()["sent_to"] == "l***@example.org"
    assert asked.json()["action"] == "lock"
    code = last_code(services)
    async with services.store.read() as session:
        row = (await session.scalars(select(RegistryLockRequest))).one()
        assert row.code_digest is not None and code not in repr(row.__dict__)
    verified = await api.post("/api/v1/registry-lock/verify", headers=holder.headers,
                              json={"code": code})
    assert verified.status_code == 200, verified.text
    assert set(verified.json()["statuses"]) >= SERVER_LOCK
    at_registry = registry.domain("example.test")
    assert at_registry is not None and at_registry["statuses"] >= SERVER_LOCK

    refused = await api.put(f"{DOMAINS}/example.test/nameservers", headers=holder.otp(),
                            json={"nameservers": ["ns1.attacker.example"]})
    assert refused.status_code == 422
    assert "serverUpdateProhibited" in refused.json()["errors"][0]["message"]
    replayed = await api.post("/api/v1/registry-lock/verify", headers=holder.headers,
                              json={"code": code})
    assert replayed.status_code == 409
    async with services.store.read() as session:
        notices = [row.payload for row in await session.scalars(
            select(OutboxItem).where(OutboxItem.kind == "notify:email"))]
    assert [n["details"] for n in notices if n["change"] == "registry_lock"] == \
        [{"locked": True}]


async def test_a_lock_needs_the_credential_and_its_own_password(
        api: httpx.AsyncClient, holder: Holder, registry: Registry,
        services: Services) -> None:
    assert (await register(api, holder)).status_code == 201
    without = await ask(api, holder)
    assert without.status_code == 422
    assert without.json()["errors"][0]["code"] == "not_set"
    same = await api.put("/api/v1/me/registry-lock", headers=holder.otp(), json={
        "lock_email": LOCK_EMAIL, "lock_password": "a long unguessable passphrase 42"})
    assert same.status_code == 422 and same.json()["errors"][0]["code"] == "same_as_login"
    await with_credential(api, holder)

    wrong = await api.post(f"{DOMAINS}/example.test/registry-lock", headers=holder.headers,
                           json={"action": "lock", "lock_password": "not the lock password"})

    assert wrong.status_code == 401
    async with services.store.read() as session:
        assert (await session.scalars(select(RegistryLockRequest))).all() == []


async def test_a_member_without_the_lock_permission_cannot_ask(
        api: httpx.AsyncClient, holder: Holder, registry: Registry, world: World) -> None:
    assert (await register(api, holder)).status_code == 201
    member = await world.user("member", holder.identity.account)
    response = await api.post(f"{DOMAINS}/example.test/registry-lock", headers=member.headers,
                              json={"action": "lock", "lock_password": LOCK_PASSWORD})
    assert response.status_code == 403


async def test_one_pending_request_and_no_lock_of_a_locked_domain(
        api: httpx.AsyncClient, holder: Holder, registry: Registry,
        services: Services) -> None:
    assert (await register(api, holder)).status_code == 201
    await with_credential(api, holder)
    assert (await ask(api, holder)).status_code == 202
    second = await ask(api, holder)
    assert second.status_code == 409
    assert second.json()["type"].endswith("registry-lock-refused")
    verified = await api.post("/api/v1/registry-lock/verify", headers=holder.headers,
                              json={"code": last_code(services)})
    assert verified.status_code == 200
    again = await ask(api, holder)
    assert again.status_code == 409 and "already locked" in again.json()["detail"]


async def test_wrong_codes_count_and_the_fifth_cancels(
        api: httpx.AsyncClient, holder: Holder, registry: Registry,
        services: Services) -> None:
    assert (await register(api, holder)).status_code == 201
    await with_credential(api, holder)
    request = (await ask(api, holder)).json()["request"]
    code = last_code(services)
    for _ in range(5):
        wrong = await api.post("/api/v1/registry-lock/verify", headers=holder.headers,
                               json={"code": "aaaa-bbbb-cccc-dddd-eeee-ffff-gggg",
                                     "request": request})
        assert wrong.status_code in (409, 422), wrong.text
    late = await api.post("/api/v1/registry-lock/verify", headers=holder.headers,
                          json={"code": code})
    assert late.status_code == 409
    at_registry = registry.domain("example.test")
    assert at_registry is not None and not SERVER_LOCK & at_registry["statuses"]


async def test_a_code_expires_after_an_hour(
        api: httpx.AsyncClient, holder: Holder, registry: Registry, services: Services,
        clock: FakeClock) -> None:
    assert (await register(api, holder)).status_code == 201
    await with_credential(api, holder)
    assert (await ask(api, holder)).status_code == 202
    code = last_code(services)
    clock.advance(timedelta(hours=1))
    expired = await api.post("/api/v1/registry-lock/verify", headers=holder.headers,
                             json={"code": code})
    assert expired.status_code == 409
    assert (await ask(api, holder)).status_code == 202  # the expired one no longer blocks


async def test_an_unlock_relocks_after_its_time(
        api: httpx.AsyncClient, holder: Holder, registry: Registry, services: Services,
        clock: FakeClock) -> None:
    assert (await register(api, holder)).status_code == 201
    await with_credential(api, holder)
    await locked(api, holder, services)

    asked = await ask(api, holder, "unlock", relock_after_hours=2)
    assert asked.status_code == 202, asked.text
    unlocked = await api.post("/api/v1/registry-lock/verify", headers=holder.headers,
                              json={"code": last_code(services)})
    assert unlocked.status_code == 200, unlocked.text
    at_registry = registry.domain("example.test")
    assert at_registry is not None and not SERVER_LOCK & at_registry["statuses"]

    assert await sweep(services) == []  # not yet
    clock.advance(timedelta(hours=2))
    started = await sweep(services)

    assert len(started) == 1
    at_registry = registry.domain("example.test")
    assert at_registry is not None and at_registry["statuses"] >= SERVER_LOCK
    async with services.store.read() as session:
        domain = (await session.scalars(select(Domain))).one()
        assert (domain.registry_locked, domain.registry_lock_revision) == (True, 2)
    assert await sweep(services) == []


async def test_with_approval_a_second_staff_member_completes_it(
        api: httpx.AsyncClient, holder: Holder, registry: Registry, services: Services,
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(services, "settings",
                        replace(services.settings, registry_lock_approval=True))
    assert (await register(api, holder)).status_code == 201
    await with_credential(api, holder)
    request = (await ask(api, holder)).json()
    assert request["needs_approval"] is True
    verified = await api.post("/api/v1/registry-lock/verify", headers=holder.headers,
                              json={"code": last_code(services)})
    assert verified.status_code == 202
    at_registry = registry.domain("example.test")
    assert at_registry is not None and not SERVER_LOCK & at_registry["statuses"]
    support = await world.user("support")
    assert (await api.post(f"/api/v1/registry-lock/{request['request']}/approve",
                           headers=support.headers)).status_code == 403
    admin = await world.user("admin")

    approved = await api.post(f"/api/v1/registry-lock/{request['request']}/approve",
                              headers=admin.headers)

    assert approved.status_code == 200, approved.text
    at_registry = registry.domain("example.test")
    assert at_registry is not None and at_registry["statuses"] >= SERVER_LOCK


DS = {"key_tag": 12345, "algorithm": 13, "digest_type": 2, "digest": "ab" * 32}


async def test_only_a_hosted_zone_s_key_rollover_passes_a_registry_lock(
        api: httpx.AsyncClient, holder: Holder, registry: Registry,
        services: Services) -> None:
    assert (await register(api, holder)).status_code == 201
    await with_credential(api, holder)
    await locked(api, holder, services)

    by_holder = await api.put(f"{DOMAINS}/example.test/ds", headers=holder.otp(),
                              json={"ds": [DS]})
    assert by_holder.status_code == 409, by_holder.text
    # A customer's credential cannot claim to be the signer of a hosted zone.
    customer = await actor_for_bearer(services, holder.identity.token)
    with pytest.raises(PermissionDenied):
        await run_flow(services, customer, RequestContext("api"),
                       DsSet("example.test", [DS], hosted_zone=True))

    # The signer vouches only for a zone hosted here for the domain's account.
    hosted = await api.post("/api/v1/zones", json={"name": "example.test"}, headers=holder.otp())
    assert hosted.status_code == 201, hosted.text
    requested = await run_flow(services, system_actor("dnssec"), RequestContext("system"),
                               DsSet("example.test", [DS], hosted_zone=True))
    assert requested.operation is not None
    done = await execute_all(services, requested.operation)

    assert done.state == "confirmed", done.result
    [(ds_records, statuses)] = registry.sql(
        "SELECT ds_records, statuses FROM domains WHERE name = 'example.test'")
    assert DS["digest"] in ds_records
    assert set(json.loads(statuses)) >= SERVER_LOCK  # the lock is back
    tags = [e.tag for e in await events(services, "domains:registry-lock:")]
    assert "domains:registry-lock:lifted-for-ds" in tags
    assert "domains:registry-lock:restored-after-ds" in tags
