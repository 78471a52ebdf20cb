"""Faults between regshield and the registry: the registry down, the connection dropped in
the middle of a command, the process killed between the registry's answer and the local
commit. Each ends with regshield's record equal to the registry's, or the difference recorded
as drift."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from domains.conftest import NS, Holder, Registry
from domains.test_lifecycle import DOMAINS, events, register
from domains.test_poll import other_registrars_domain
from regshield.api.routers import domains as domain_routes
from regshield.clock import FakeClock
from regshield.flows import operations, runner
from regshield.flows.operations import Conversation, run_queued
from regshield.outbox.worker import OutboxWorker
from regshield.registry.client import EppSession, RegistryConnectionLost
from regshield.registry.commands import (
    Command,
    DomainCreate,
    DomainTransfer,
    DomainUpdate,
    build_command,
)
from regshield.registry.responses import EppResponse
from regshield.services import Services
from regshield.store.models import Domain, DomainOperation
from regshield.store.queries.domains import OPEN_STATES

NEW_NS = ["ns1.example.org", "ns2.example.org"]
TRANSFER_CODE = "Moving-0ver-2026!"


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


# --- an unexpected exception at every step of a registry operation -------------------------
# Each step of interest is wrapped, for one call, with a function that raises an error of our
# own (a bug, not a registry answer). Whatever the request answers, once the outbox has run its
# lease and reconcile pass the domain is either as it was or settled, no operation is left open,
# and a retry succeeds.


class Injected(RuntimeError):
    """The fault the test injects."""


def inject(monkeypatch: pytest.MonkeyPatch, step: str, target: type[Command]) -> list[str]:
    """Make `step` fail once; `target` is the operation's own command. Returns the steps that
    failed, once it happened (a test checks that the fault did happen)."""
    restore: list[Callable[[], None]] = []  # puts the original back: the fault happens once
    fired: list[str] = []

    def fire() -> None:
        restore[0]()
        fired.append(step)

    def once(owner: Any, name: str, failing: Callable[..., Awaitable[Any]]) -> None:
        """Replace `owner.name` by `failing` for one call; `failing` gets the original and
        decides whether this call is the one (it returns the original's answer otherwise)."""
        original = getattr(owner, name)

        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            return await failing(original, *args, **kwargs)

        restore.append(lambda: monkeypatch.setattr(owner, name, original))
        monkeypatch.setattr(owner, name, wrapper)

    def fail(message: str) -> Callable[..., Awaitable[Any]]:
        async def failing(original: Any, *args: Any, **kwargs: Any) -> Any:
            fire()
            raise Injected(message)
        return failing

    if step == "before the flow commit":  # inside the flow's transaction: all of it undone
        async def committing(original: Any, session: Any, effects: Any, now: Any) -> Any:
            if not any(e.kind == operations.OUTBOX_KIND for e in effects):
                return await original(session, effects, now)  # another flow (a step-up)
            fire()
            raise Injected("before the commit")
        once(runner, "write_effects", committing)
    elif step == "after the flow commit":  # the operation is recorded, nothing was sent
        once(domain_routes, "execute_all", fail("after the commit"))
    elif step == "after the registry answered, before settling":
        once(Conversation, "info", fail("reading the domain back"))
    elif step == "while settling":
        once(operations._Settle, "run", fail("while settling"))
    else:
        async def sending(original: Any, session: EppSession, command: Command,
                          **kwargs: Any) -> Any:
            if not isinstance(command, target):
                return await original(session, command, **kwargs)
            fire()
            if step == "while building the command":
                build_command(command, cl_trid="probe")  # what the session does first
            elif step == "while sending, after the registry executed it":
                await original(session, command, **kwargs)
            else:
                assert step == "while sending, before it left", step
            raise Injected(step)
        once(EppSession, "execute", sending)
    return fired


STEPS = ["before the flow commit", "after the flow commit", "while building the command",
         "while sending, before it left", "while sending, after the registry executed it",
         "after the registry answered, before settling", "while settling"]


async def faulty(request: Awaitable[httpx.Response]) -> int | None:
    """The request's status, or None when the fault escaped as an exception (a 500)."""
    try:
        return (await request).status_code
    except Injected:
        return None


async def open_operations_left(services: Services) -> list[tuple[str, str]]:
    async with services.store.read() as session:
        return [(o.kind, o.state) for o in await session.scalars(
            select(DomainOperation).where(DomainOperation.state.in_(OPEN_STATES)))]


async def live(services: Services, name: str) -> Domain | None:
    async with services.store.read() as session:
        return (await session.scalars(select(Domain).where(
            Domain.name == name, Domain.ended_at.is_(None)))).one_or_none()


@pytest.mark.parametrize("step", STEPS)
async def test_a_fault_at_any_step_of_a_registration_leaves_it_undone_or_settled(
        api: httpx.AsyncClient, holder: Holder, registry: Registry, services: Services,
        clock: FakeClock, monkeypatch: pytest.MonkeyPatch, step: str) -> None:
    fired = inject(monkeypatch, step, DomainCreate)

    await faulty(register(api, holder))

    monkeypatch.undo()
    assert fired == [step]
    await settle_queue(services, clock)
    assert await open_operations_left(services) == []
    domain = await live(services, "example.test")
    at_registry = registry.domain("example.test")
    if domain is None:  # undone: the registry has no such domain, and a retry registers it
        assert at_registry is None
        assert (await register(api, holder)).status_code == 201
    else:  # settled: active here and there
        assert domain.state == "active", domain.state
        assert at_registry is not None and at_registry["sponsor"] == "regshield"
        assert domain.nameservers == at_registry["nameservers"] == NS
    fetched = await api.get(f"{DOMAINS}/example.test", headers=holder.headers)
    assert fetched.json()["state"] == "active" and fetched.json()["pending"] == []


@pytest.mark.parametrize("step", STEPS)
async def test_a_fault_at_any_step_of_a_nameserver_change_leaves_it_undone_or_settled(
        api: httpx.AsyncClient, holder: Holder, registry: Registry, services: Services,
        clock: FakeClock, monkeypatch: pytest.MonkeyPatch, step: str) -> None:
    assert (await register(api, holder)).status_code == 201
    await settle_queue(services, clock)
    fired = inject(monkeypatch, step, DomainUpdate)

    await faulty(api.put(f"{DOMAINS}/example.test/nameservers", headers=holder.otp(),
                         json={"nameservers": NEW_NS}))

    monkeypatch.undo()
    assert fired == [step]
    await settle_queue(services, clock)
    assert await open_operations_left(services) == []
    domain = await live(services, "example.test")
    at_registry = registry.domain("example.test")
    assert domain is not None and at_registry is not None
    assert domain.state == "active"
    assert domain.nameservers == at_registry["nameservers"]
    assert domain.nameservers in (NS, NEW_NS)
    retried = await api.put(f"{DOMAINS}/example.test/nameservers", headers=holder.otp(),
                            json={"nameservers": NEW_NS})
    assert retried.status_code == 200, retried.text
    assert (await local(services)).nameservers == NEW_NS
    assert registry.domain("example.test") == {**at_registry, "nameservers": NEW_NS}


@pytest.mark.parametrize("step", STEPS)
async def test_a_fault_at_any_step_of_a_transfer_request_leaves_it_undone_or_settled(
        api: httpx.AsyncClient, holder: Holder, registry: Registry, services: Services,
        clock: FakeClock, monkeypatch: pytest.MonkeyPatch, step: str) -> None:
    await other_registrars_domain(registry, "other.test", TRANSFER_CODE)
    fired = inject(monkeypatch, step, DomainTransfer)

    await faulty(api.post("/api/v1/transfers", headers=holder.headers,
                          json={"name": "other.test", "auth_code": TRANSFER_CODE}))

    monkeypatch.undo()
    assert fired == [step]
    await settle_queue(services, clock)
    assert await open_operations_left(services) == []
    domain = await live(services, "other.test")
    at_registry = registry.domain("other.test")
    assert at_registry is not None and at_registry["sponsor"] == "other-rar"
    if domain is not None:  # settled: requested, and the registry shows it pending
        assert domain.state == "pending_transfer_in"
        assert "pendingTransfer" in at_registry["statuses"]
    # A retry is taken (a transfer of ours pending already is taken over), never stuck.
    retried = await api.post("/api/v1/transfers", headers=holder.headers,
                             json={"name": "other.test", "auth_code": TRANSFER_CODE})
    if domain is None:
        assert retried.status_code == 202, retried.text
        assert retried.json()["state"] == "pending_transfer_in"
    else:
        assert retried.status_code == 409, retried.text
    assert "pendingTransfer" in (registry.domain("other.test") or {})["statuses"]
    assert (await live(services, "other.test")) is not None
