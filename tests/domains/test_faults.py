"""Faults between regshield and the registry: the registry down, the connection dropped in
the middle of a command, the process killed between the registry's answer and the local
commit. Each ends with regshield's record equal to the registry's, or the difference recorded
as drift."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from domains.conftest import NS, Holder, Registry
from domains.test_lifecycle import DOMAINS, events, register
from regshield.clock import FakeClock
from regshield.flows import operations
from regshield.flows.operations import Conversation, run_queued
from regshield.outbox.worker import OutboxWorker
from regshield.registry.client import RegistryConnectionLost
from regshield.registry.commands import Command, DomainUpdate
from regshield.registry.responses import EppResponse
from regshield.services import Services
from regshield.store.models import Domain, DomainOperation

NEW_NS = ["ns1.example.org", "ns2.example.org"]


def worker(services: Services) -> OutboxWorker:
    return OutboxWorker(services, {"registry:operation": run_queued})


async def settle_queue(services: Services, clock: FakeClock) -> None:
    """Let the outbox run until nothing is due, as time passes."""
    for _ in range(5):
        clock.advance(timedelta(minutes=4))
        await worker(services).run_once()


async def local(services: Services, name: str = "example.test") -> Domain:
    async with services.store.read() as session:
        return (await session.scalars(select(Domain).where(Domain.name == name,
                                                           Domain.ended_at.is_(None)))).one()


async def test_a_registration_while_the_registry_is_down_is_accepted_then_completed(
        api: httpx.AsyncClient, holder: Holder, registry: Registry, services: Services,
        clock: FakeClock) -> None:
    await registry.restart(clock, down=True)

    response = await register(api, holder)

    assert response.status_code == 202, response.text
    assert response.json()["state"] == "pending_create"
    assert response.json()["operation"]["state"] == "pending"
    assert [p["kind"] for p in response.json()["pending"]] == ["create"]
    await registry.restart(clock)
    await settle_queue(services, clock)
    fetched = await api.get(f"{DOMAINS}/example.test", headers=holder.headers)
    assert fetched.json()["state"] == "active", fetched.text
    assert fetched.json()["registrar_lock"] is True
    assert {"clientTransferProhibited", "clientDeleteProhibited"} <= \
        set(fetched.json()["statuses"])
    assert fetched.json()["pending"] == []


def drop_after_sending(monkeypatch: pytest.MonkeyPatch, *, sent: bool) -> None:
    """The connection breaks on the next update: after the registry executed it (`sent`) or
    before it reached the registry."""
    original = Conversation.send

    async def send(self: Conversation, command: Command, extensions: Any = ()) -> EppResponse:
        if isinstance(command, DomainUpdate):
            monkeypatch.setattr(Conversation, "send", original)
            if sent:
                await original(self, command, extensions)
            await self.session.close()
            raise RegistryConnectionLost("dropped in the middle of the update")
        return await original(self, command, extensions)

    monkeypatch.setattr(Conversation, "send", send)


@pytest.mark.parametrize("sent", [True, False], ids=["executed", "never-arrived"])
async def test_a_connection_dropped_in_the_middle_of_an_update_is_reconciled(
        api: httpx.AsyncClient, holder: Holder, registry: Registry, services: Services,
        clock: FakeClock, monkeypatch: pytest.MonkeyPatch, sent: bool) -> None:
    assert (await register(api, holder)).status_code == 201
    drop_after_sending(monkeypatch, sent=sent)

    response = await api.put(f"{DOMAINS}/example.test/nameservers", headers=holder.otp(),
                             json={"nameservers": NEW_NS})

    assert response.status_code == 202, response.text
    assert response.json()["operation"]["state"] == "unknown"
    assert response.json()["nameservers"] == NS  # nothing is taken for granted
    await settle_queue(services, clock)
    at_registry = registry.domain("example.test")
    assert at_registry is not None and at_registry["nameservers"] == NEW_NS
    assert (await local(services)).nameservers == NEW_NS
    assert len(await events(services, "domains:nameservers:confirmed")) == 1


async def test_a_crash_between_the_registry_answer_and_the_local_commit_is_recovered(
        api: httpx.AsyncClient, holder: Holder, registry: Registry, services: Services,
        clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    assert (await register(api, holder)).status_code == 201

    async def crash(self: Any, tx: Any) -> None:
        raise RuntimeError("the process died here")

    monkeypatch.setattr(operations._Settle, "run", crash)
    with pytest.raises(RuntimeError, match="died"):
        await api.put(f"{DOMAINS}/example.test/nameservers", headers=holder.otp(),
                      json={"nameservers": NEW_NS})
    monkeypatch.undo()
    at_registry = registry.domain("example.test")
    assert at_registry is not None and at_registry["nameservers"] == NEW_NS
    assert (await local(services)).nameservers == NS
    async with services.store.read() as session:
        [running] = (await session.scalars(select(DomainOperation).where(
            DomainOperation.kind == "nameservers"))).all()
        assert running.state == "running"

    await settle_queue(services, clock)

    assert (await local(services)).nameservers == NEW_NS
    async with services.store.read() as session:
        settled = await session.get(DomainOperation, running.id)
        assert settled is not None and settled.state == "confirmed"
        assert settled.result is not None and settled.result.get("reconciled") is True


async def test_a_difference_nobody_asked_for_is_recorded_as_drift(
        api: httpx.AsyncClient, holder: Holder, registry: Registry, services: Services,
        clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    assert (await register(api, holder)).status_code == 201
    drop_after_sending(monkeypatch, sent=False)
    response = await api.put(f"{DOMAINS}/example.test/nameservers", headers=holder.otp(),
                             json={"nameservers": NEW_NS})
    assert response.json()["operation"]["state"] == "unknown"
    # Meanwhile the registry's copy changes some other way.
    registry.sql("UPDATE domains SET nameservers = '[\"ns9.example.com\"]' "
                 "WHERE name = 'example.test'")

    await settle_queue(services, clock)

    [drift] = await events(services, "domains:registry:drift")
    assert drift.summary["differences"] == ["nameservers"]
    assert (await local(services)).nameservers == ["ns9.example.com"]
