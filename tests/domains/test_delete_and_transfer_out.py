"""Deleting and restoring a domain; another registrar's transfer request approved or
rejected by us as the losing registrar."""

from __future__ import annotations

from datetime import timedelta

import httpx
import structlog.testing
from conftest import World

from domains.conftest import Holder, Registry, as_other_registrar
from domains.test_lifecycle import DOMAINS, register
from regshield.clock import FakeClock
from regshield.registry.codec import ResultCode, Secret
from regshield.registry.commands import DomainTransfer


async def unlocked_domain(api: httpx.AsyncClient, holder: Holder) -> None:
    assert (await register(api, holder)).status_code == 201
    unlocked = await api.delete(f"{DOMAINS}/example.test/registrar-lock", headers=holder.otp())
    assert unlocked.status_code == 200, unlocked.text


async def test_a_locked_domain_cannot_be_deleted_and_deleting_needs_a_step_up(
        api: httpx.AsyncClient, holder: Holder, registry: Registry, clock: FakeClock) -> None:
    assert (await register(api, holder)).status_code == 201
    locked = await api.delete(f"{DOMAINS}/example.test", headers=holder.otp())
    assert locked.status_code == 422
    assert locked.json()["errors"][0]["code"] == "status_prohibits"
    clock.advance(timedelta(minutes=6))
    plain = await api.delete(f"{DOMAINS}/example.test", headers=holder.headers)
    assert plain.status_code == 403
    assert registry.domain("example.test") is not None


async def test_a_deleted_domain_is_redeemable_and_restored(
        api: httpx.AsyncClient, holder: Holder, registry: Registry, clock: FakeClock) -> None:
    await unlocked_domain(api, holder)
    clock.advance(timedelta(days=6))  # past the add grace period: deletion is redeemable

    deleted = await api.delete(f"{DOMAINS}/example.test", headers=holder.otp())

    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["state"] == "pending_delete"
    assert "pendingDelete" in deleted.json()["statuses"]
    restored = await api.post(f"{DOMAINS}/example.test/restore", headers=holder.headers)
    assert restored.status_code == 200, restored.text
    assert restored.json()["state"] == "active"
    assert "pendingDelete" not in restored.json()["statuses"]
    at_registry = registry.domain("example.test")
    assert at_registry is not None and "pendingDelete" not in at_registry["statuses"]


async def test_a_domain_deleted_in_its_add_grace_period_is_gone(
        api: httpx.AsyncClient, holder: Holder, registry: Registry) -> None:
    await unlocked_domain(api, holder)
    deleted = await api.delete(f"{DOMAINS}/example.test", headers=holder.otp())
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["state"] == "ended"
    assert (await api.get(f"{DOMAINS}/example.test", headers=holder.headers)).status_code == 404
    assert registry.domain("example.test") is None


async def other_registrar_asks(api: httpx.AsyncClient, holder: Holder,
                               registry: Registry) -> None:
    await unlocked_domain(api, holder)
    code = await api.post(f"{DOMAINS}/example.test/transfer-code", headers=holder.otp())
    assert code.status_code == 201, code.text
    asked = await as_other_registrar(registry, DomainTransfer(
        "example.test", op="request", auth_info=Secret(code.json()["code"])))
    assert asked.code == ResultCode.COMPLETED_ACTION_PENDING


async def test_the_holder_approves_a_transfer_away_with_a_step_up(
        api: httpx.AsyncClient, holder: Holder, registry: Registry, clock: FakeClock) -> None:
    await other_registrar_asks(api, holder, registry)
    clock.advance(timedelta(minutes=6))
    url = f"{DOMAINS}/example.test/transfer/approve"
    assert (await api.post(url, headers=holder.headers)).status_code == 403

    approved = await api.post(url, headers=holder.otp())

    assert approved.status_code == 200, approved.text
    assert approved.json()["state"] == "ended"
    at_registry = registry.domain("example.test")
    assert at_registry is not None and at_registry["sponsor"] == "other-rar"
    assert (await api.get(f"{DOMAINS}/example.test", headers=holder.headers)).status_code == 404


async def test_a_transfer_away_is_rejected_only_for_a_policy_reason(
        api: httpx.AsyncClient, holder: Holder, registry: Registry) -> None:
    await other_registrar_asks(api, holder, registry)
    url = f"{DOMAINS}/example.test/transfer/reject"
    bad = await api.post(url, headers=holder.headers, json={"reason": "we like it"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "reason"

    rejected = await api.post(url, headers=holder.headers, json={"reason": "fraud"})

    assert rejected.status_code == 200, rejected.text
    assert rejected.json()["state"] == "active"
    assert "pendingTransfer" not in rejected.json()["statuses"]
    at_registry = registry.domain("example.test")
    assert at_registry is not None and at_registry["sponsor"] == "regshield"


async def test_no_decision_without_a_pending_transfer(
        api: httpx.AsyncClient, holder: Holder, registry: Registry) -> None:
    assert (await register(api, holder)).status_code == 201
    response = await api.post(f"{DOMAINS}/example.test/transfer/reject", headers=holder.headers,
                              json={"reason": "fraud"})
    assert response.status_code == 409


async def test_another_account_cannot_make_the_registrar_ask_the_registry_about_a_domain(
        api: httpx.AsyncClient, holder: Holder, registry: Registry, world: World) -> None:
    """A flow's `prepare` asks the registry before its transaction: it does so only for an
    actor who may act on the domain, so a stranger learns nothing and costs no command."""
    assert (await register(api, holder)).status_code == 201
    stranger = await world.user("owner", await world.account("Stranger"))

    with structlog.testing.capture_logs() as logs:
        response = await api.post(f"{DOMAINS}/example.test/transfer/reject",
                                  json={"reason": "fraud"}, headers=stranger.headers)

    assert response.status_code == 404, response.text
    assert [entry for entry in logs if entry["event"] == "registry:command:answered"] == []

    with structlog.testing.capture_logs() as logs:
        response = await api.post(f"{DOMAINS}/example.test/transfer/reject",
                                  json={"reason": "fraud"}, headers=holder.headers)

    # The holder's own request is checked with the registry (no transfer is pending there).
    assert response.status_code == 409, response.text
    assert [entry["command"] for entry in logs
            if entry["event"] == "registry:command:answered"] == ["domain:info"]
