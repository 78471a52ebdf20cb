"""The registry's message queue: transfers of our domains asked for by other registrars,
approved by the registry when their time is up, transfers in approved or rejected by the
losing registrar; each message recorded once, applied, and acknowledged after the commit."""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import replace
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from domains.conftest import OTHER_PASSWORD, Holder, Registry, as_other_registrar, endpoint_of
from domains.test_lifecycle import DOMAINS, events, register
from regshield.clock import FakeClock
from regshield.flows.operations import run_queued
from regshield.flows.poll import poll_forever, poll_registry
from regshield.outbox.worker import OutboxWorker
from regshield.registry.client import EppSession
from regshield.registry.codec import DOMAIN_NS, HOST_NS, Period, ResultCode, Secret
from regshield.registry.commands import Command, DomainCreate, DomainTransfer, DomainUpdate, Poll
from regshield.registry.responses import EppResponse
from regshield.services import Services
from regshield.store.models import Domain, OutboxItem

AUTO_APPROVE = timedelta(days=5)  # the sandbox's Transfer Policy default
OTHER_NS = ("ns1.other-rar.net", "ns2.other-rar.net")  # outside the sandbox's TLDs


async def transfer_asked_by_other_registrar(api: httpx.AsyncClient, holder: Holder,
                                            registry: Registry) -> None:
    """example.test registered here, unlocked, a code issued to its holder, and other-rar
    asking for it with that code."""
    assert (await register(api, holder)).status_code == 201
    unlocked = await api.delete(f"{DOMAINS}/example.test/registrar-lock", headers=holder.otp())
    assert unlocked.status_code == 200, unlocked.text
    issued = await api.post(f"{DOMAINS}/example.test/transfer-code", headers=holder.otp())
    assert issued.status_code == 201, issued.text
    asked = await as_other_registrar(registry, DomainTransfer(
        "example.test", op="request", auth_info=Secret(issued.json()["code"])))
    assert asked.code == ResultCode.COMPLETED_ACTION_PENDING


async def notices(services: Services) -> list[OutboxItem]:
    async with services.store.read() as session:
        rows = await session.scalars(select(OutboxItem).where(OutboxItem.kind == "notify:email")
                                     .order_by(OutboxItem.id))
        return list(rows)


async def domain_rows(services: Services, name: str) -> list[Domain]:
    async with services.store.read() as session:
        return list(await session.scalars(select(Domain).where(Domain.name == name)
                                          .order_by(Domain.id)))


def unacknowledged(registry: Registry, registrar: str = "regshield") -> int:
    [(count,)] = registry.sql("SELECT count(*) FROM messages WHERE registrar_id = ? "
                              "AND acknowledged_at IS NULL", registrar)
    return int(count)


async def test_a_transfer_asked_for_by_another_registrar_is_recorded_and_told_to_the_holders(
        api: httpx.AsyncClient, holder: Holder, registry: Registry, services: Services,
        clock: FakeClock) -> None:
    await transfer_asked_by_other_registrar(api, holder, registry)
    asked_at = clock.now()
    before = len(await notices(services))

    handled = await poll_registry(services, "sandbox")

    assert handled == 1
    assert unacknowledged(registry) == 0
    [message] = await events(services, "registry:poll:")
    assert message.tag == "registry:poll:transfer-requested"
    assert message.actor == "system:registry"
    assert message.account == holder.identity.account
    summary = message.summary
    assert (summary["domain"], summary["tr_status"], summary["re_id"], summary["ac_id"]) == \
        ("example.test", "pending", "other-rar", "regshield")
    assert summary["text"] == "Transfer requested: example.test"
    assert summary["message_id"] and summary["sv_trid"] and summary["queued_at"]
    [requested] = await events(services, "domains:transfer-out:requested")
    assert requested.summary["gaining_registrar"] == "other-rar"
    assert requested.summary["completes_at"] == (asked_at + AUTO_APPROVE).isoformat()
    queued = (await notices(services))[before:]
    assert len(queued) == 1
    payload = queued[0].payload
    assert payload["change"] == "transfer_requested"
    assert payload["details"]["completes_at"] == (asked_at + AUTO_APPROVE).isoformat()
    assert {"contact": holder.contact} in payload["recipients"]
    assert {"account_owners": holder.identity.account} in payload["recipients"]
    assert "@" not in json.dumps(payload)  # recipients by reference, never by address
    fetched = await api.get(f"{DOMAINS}/example.test", headers=holder.headers)
    assert fetched.json()["state"] == "active"
    assert "pendingTransfer" in fetched.json()["statuses"]
    assert await poll_registry(services, "sandbox") == 0


async def test_a_transfer_the_registry_approves_after_its_period_ends_the_domain_here(
        api: httpx.AsyncClient, holder: Holder, registry: Registry, services: Services,
        clock: FakeClock) -> None:
    await transfer_asked_by_other_registrar(api, holder, registry)
    assert await poll_registry(services, "sandbox") == 1
    clock.advance(AUTO_APPROVE + timedelta(minutes=1))

    # The poll itself is the command on which the registry finds the transfer due.
    assert await poll_registry(services, "sandbox") == 1

    at_registry = registry.domain("example.test")
    assert at_registry is not None and at_registry["sponsor"] == "other-rar"
    [row] = await domain_rows(services, "example.test")
    assert row.state == "ended" and row.ended_at == clock.now()
    assert (await api.get(f"{DOMAINS}/example.test", headers=holder.headers)).status_code \
        == 404
    [approved] = await events(services, "registry:poll:transfer-approved")
    assert approved.summary["tr_status"] == "serverApproved"
    [completed] = await events(services, "domains:transfer-out:completed")
    assert completed.summary["gaining_registrar"] == "other-rar"
    assert (await notices(services))[-1].payload["change"] == "transfer_approved"


async def other_registrars_domain(registry: Registry, name: str, code: str) -> None:
    """A domain registered by other-rar, with a transfer code set by domain:update. Its
    session takes no contact objects (a minimum-data registration), so it needs none."""
    thin = replace(endpoint_of(registry.server, "other-rar", OTHER_PASSWORD),
                   object_uris=(DOMAIN_NS, HOST_NS))
    session = await EppSession.open(thin)
    try:
        created = await session.execute(DomainCreate(
            name, auth_info=Secret(""), period=Period(1), nameservers=OTHER_NS))
        assert created.code == ResultCode.COMPLETED, created.message
        coded = await session.execute(DomainUpdate(name, auth_info=Secret(code)))
        assert coded.code == ResultCode.COMPLETED, coded.message
    finally:
        await session.logout()


async def transfer_in(api: httpx.AsyncClient, holder: Holder, registry: Registry,
                      name: str = "other.test") -> None:
    code = "Moving-0ver-2026!"
    await other_registrars_domain(registry, name, code)
    asked = await api.post("/api/v1/transfers", headers=holder.headers,
                           json={"name": name, "auth_code": code})
    assert asked.status_code == 202, asked.text
    assert asked.json()["state"] == "pending_transfer_in"


async def test_a_transfer_in_approved_by_the_losing_registrar_makes_the_domain_active(
        api: httpx.AsyncClient, holder: Holder, registry: Registry, services: Services
        ) -> None:
    await transfer_in(api, holder, registry)
    assert await poll_registry(services, "sandbox") == 0  # the request went to other-rar

    approved = await as_other_registrar(registry, DomainTransfer("other.test", op="approve"))
    assert approved.code == ResultCode.COMPLETED
    assert await poll_registry(services, "sandbox") == 1

    fetched = await api.get(f"{DOMAINS}/other.test", headers=holder.headers)
    assert fetched.status_code == 200, fetched.text
    body = fetched.json()
    assert body["state"] == "active"
    assert body["nameservers"] == list(OTHER_NS)  # read back from the registry
    assert body["expires_at"] is not None
    [message] = await events(services, "registry:poll:transfer-approved")
    assert (message.summary["tr_status"], message.summary["re_id"]) == \
        ("clientApproved", "regshield")
    [completed] = await events(services, "domains:transfer-in:completed")
    assert completed.summary["losing_registrar"] == "other-rar"
    assert completed.summary["read_back"] is True
    # It arrives locked (SAC044): the lock goes to the registry from the outbox.
    assert body["registrar_lock"] is True
    assert [p["kind"] for p in body["pending"]] == ["statuses"]
    await OutboxWorker(services, {"registry:operation": run_queued}).run_once()
    locked = registry.domain("other.test")
    assert locked is not None
    assert {"clientTransferProhibited", "clientDeleteProhibited"} <= locked["statuses"]


async def test_a_transfer_in_rejected_by_the_losing_registrar_ends_the_request(
        api: httpx.AsyncClient, holder: Holder, registry: Registry, services: Services
        ) -> None:
    await transfer_in(api, holder, registry)

    rejected = await as_other_registrar(registry, DomainTransfer("other.test", op="reject"))
    assert rejected.code == ResultCode.COMPLETED
    assert await poll_registry(services, "sandbox") == 1

    [row] = await domain_rows(services, "other.test")
    assert row.state == "ended" and row.ended_at is not None
    assert (await api.get(f"{DOMAINS}/other.test", headers=holder.headers)).status_code == 404
    assert len(await events(services, "registry:poll:transfer-rejected")) == 1
    assert len(await events(services, "domains:transfer-in:rejected")) == 1


async def test_a_message_read_again_after_a_lost_acknowledgement_is_recorded_once(
        api: httpx.AsyncClient, holder: Holder, registry: Registry, services: Services,
        monkeypatch: pytest.MonkeyPatch) -> None:
    await transfer_asked_by_other_registrar(api, holder, registry)
    before = len(await notices(services))
    original = EppSession.execute

    async def die_before_acknowledging(self: EppSession, command: Command,
                                       **options: Any) -> EppResponse:
        if isinstance(command, Poll) and command.op == "ack":
            raise RuntimeError("the process died here")
        return await original(self, command, **options)

    monkeypatch.setattr(EppSession, "execute", die_before_acknowledging)
    with pytest.raises(RuntimeError, match="died"):
        await poll_registry(services, "sandbox")
    monkeypatch.undo()
    assert unacknowledged(registry) == 1
    assert len(await events(services, "registry:poll:transfer-requested")) == 1

    assert await poll_registry(services, "sandbox") == 1

    assert unacknowledged(registry) == 0
    assert len(await events(services, "registry:poll:transfer-requested")) == 1
    assert len(await events(services, "domains:transfer-out:requested")) == 1
    assert len(await notices(services)) == before + 1


async def test_a_dead_pooled_session_is_replaced_once(
        api: httpx.AsyncClient, holder: Holder, registry: Registry, services: Services,
        monkeypatch: pytest.MonkeyPatch) -> None:
    await transfer_asked_by_other_registrar(api, holder, registry)
    original = EppSession.execute
    polls: list[str] = []

    async def dead_at_first(self: EppSession, command: Command,
                            **options: Any) -> EppResponse:
        if isinstance(command, Poll):
            polls.append(command.op)
            if len(polls) == 1:
                await self.close()  # the registry went away while the session sat idle
        return await original(self, command, **options)

    monkeypatch.setattr(EppSession, "execute", dead_at_first)

    assert await poll_registry(services, "sandbox") == 1
    assert polls == ["req", "req", "ack", "req"]
    assert unacknowledged(registry) == 0


async def test_polling_goes_on_after_the_registry_restarts(
        api: httpx.AsyncClient, holder: Holder, registry: Registry, services: Services,
        clock: FakeClock) -> None:
    await transfer_asked_by_other_registrar(api, holder, registry)
    await registry.restart(clock)

    assert await poll_registry(services, "sandbox") == 1
    assert unacknowledged(registry) == 0


async def test_a_message_about_no_transfer_is_recorded_as_a_message(
        registry: Registry, services: Services, clock: FakeClock) -> None:
    # The registry's staff queue a notice of their own.
    registry.sql("INSERT INTO messages (registrar_id, queued_at, summary) VALUES (?, ?, ?)",
                 "regshield", clock.now().strftime("%Y-%m-%d %H:%M:%S.%f"),
                 "Maintenance on Sunday " + "x" * 300)

    assert await poll_registry(services, "sandbox") == 1

    [message] = await events(services, "registry:poll:")
    assert message.tag == "registry:poll:message"
    assert message.account is None
    assert message.summary["text"].startswith("Maintenance on Sunday")
    assert len(message.summary["text"]) == 200
    assert (message.summary["domain"], message.summary["meaning"]) == (None, None)
    assert unacknowledged(registry) == 0


async def test_the_periodic_poller_reads_the_queue_until_cancelled(
        api: httpx.AsyncClient, holder: Holder, registry: Registry, services: Services
        ) -> None:
    await transfer_asked_by_other_registrar(api, holder, registry)

    poller = asyncio.create_task(poll_forever(services, 0.05))
    try:
        for _ in range(200):
            if unacknowledged(registry) == 0:
                break
            await asyncio.sleep(0.05)
    finally:
        poller.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await poller

    assert unacknowledged(registry) == 0
    assert len(await events(services, "domains:transfer-out:requested")) == 1
