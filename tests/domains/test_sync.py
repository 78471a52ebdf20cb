"""Registry sync: changes made at the registry behind regshield's back are found, recorded as
drift with both values, and adopted; a second run finds nothing."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from domains.conftest import NS, Holder, Registry
from domains.test_lifecycle import DOMAINS, events, register
from regshield.clock import FakeClock
from regshield.flows.registry_sync import sync_registry
from regshield.services import Services
from regshield.store.models import Domain, DomainOperation, Event


async def row(services: Services, name: str = "example.test") -> Domain:
    async with services.store.read() as session:
        return (await session.scalars(select(Domain).where(Domain.name == name)
                                      .order_by(Domain.id.desc()).limit(1))).one()


async def test_a_domain_equal_to_the_registry_reports_nothing(
        api: httpx.AsyncClient, holder: Holder, registry: Registry, services: Services,
        clock: FakeClock) -> None:
    assert (await register(api, holder)).status_code == 201

    report = await sync_registry(services, "sandbox")

    assert (report.checked, report.in_step, report.drift, report.skipped, report.errors) == \
        (1, 1, [], [], [])
    assert await events(services, "domains:registry:drift") == []
    assert (await row(services)).synced_at == clock.now()
    [completed] = await events(services, "registry:sync:completed")
    assert completed.summary["checked"] == 1 and completed.summary["drift"] == []


async def test_nameservers_changed_at_the_registry_are_recorded_and_adopted(
        api: httpx.AsyncClient, holder: Holder, registry: Registry, services: Services
        ) -> None:
    assert (await register(api, holder)).status_code == 201
    registry.sql("UPDATE domains SET nameservers = '[\"ns9.example.com\"]' "
                 "WHERE name = 'example.test'")

    report = await sync_registry(services, "sandbox")

    assert [(d.domain, d.differences) for d in report.drift] == \
        [("example.test", ("nameservers",))]
    [drift] = await events(services, "domains:registry:drift")
    assert drift.account == holder.identity.account
    assert drift.summary["differences"] == ["nameservers"]
    assert drift.summary["values"] == {
        "nameservers": {"registry": ["ns9.example.com"], "ours": NS}}
    fetched = await api.get(f"{DOMAINS}/example.test", headers=holder.headers)
    assert fetched.json()["nameservers"] == ["ns9.example.com"]

    again = await sync_registry(services, "sandbox")

    assert (again.drift, again.in_step) == ([], 1)
    assert len(await events(services, "domains:registry:drift")) == 1


async def test_server_statuses_and_a_new_expiry_set_by_the_registry_are_adopted(
        api: httpx.AsyncClient, holder: Holder, registry: Registry, services: Services
        ) -> None:
    assert (await register(api, holder)).status_code == 201
    await registry.server.state.set_server_statuses(
        "example.test", add={"serverTransferProhibited", "serverDeleteProhibited"})
    registry.sql("UPDATE domains SET expires_at = '2031-01-01 00:00:00.000000' "
                 "WHERE name = 'example.test'")
    before = await row(services)

    report = await sync_registry(services, "sandbox")

    [found] = report.drift
    assert set(found.differences) == {"statuses", "expires_at"}
    [drift] = await events(services, "domains:registry:drift")
    values = drift.summary["values"]
    assert {"serverTransferProhibited", "serverDeleteProhibited"} <= \
        set(values["statuses"]["registry"])
    assert values["statuses"]["ours"] == sorted(before.registry_statuses)
    assert values["expires_at"]["registry"].startswith("2031-01-01")
    assert before.expires_at is not None
    assert values["expires_at"]["ours"] == before.expires_at.isoformat()
    fetched = (await api.get(f"{DOMAINS}/example.test", headers=holder.headers)).json()
    assert "serverTransferProhibited" in fetched["statuses"]
    assert fetched["expires_at"].startswith("2031-01-01")
    assert (await sync_registry(services, "sandbox")).drift == []


async def test_a_domain_the_registry_gave_to_another_registrar_is_gone(
        api: httpx.AsyncClient, holder: Holder, registry: Registry, services: Services
        ) -> None:
    assert (await register(api, holder)).status_code == 201
    registry.sql("UPDATE domains SET sponsor_id = 'other-rar' WHERE name = 'example.test'")

    report = await sync_registry(services, "sandbox")

    assert [(d.domain, d.differences) for d in report.drift] == [("example.test", ("gone",))]
    ended = await row(services)
    assert ended.state == "ended" and ended.ended_at is not None
    [drift] = await events(services, "domains:registry:drift")
    assert drift.summary["differences"] == ["gone"]
    assert (await api.get(f"{DOMAINS}/example.test", headers=holder.headers)).status_code \
        == 404
    assert (await sync_registry(services, "sandbox")).checked == 0


async def test_domains_with_an_open_operation_or_a_transfer_in_waiting_are_skipped(
        api: httpx.AsyncClient, holder: Holder, registry: Registry, services: Services,
        clock: FakeClock) -> None:
    assert (await register(api, holder)).status_code == 201
    registry.sql("UPDATE domains SET nameservers = '[\"ns9.example.com\"]' "
                 "WHERE name = 'example.test'")
    async with services.store.write() as session:
        domain = (await session.scalars(select(Domain))).one()
        session.add(DomainOperation(
            public_id="op_waiting", domain_id=domain.id, kind="nameservers", state="pending",
            request={"nameservers": NS}, attempts=0, actor="system:test",
            created_at=clock.now()))
        session.add(Domain(
            name="incoming.test", unicode_name="incoming.test", account_id=domain.account_id,
            registry_link="sandbox", state="pending_transfer_in", nameservers=[], ds=[],
            holds=[], registry_statuses=[], created_at=clock.now(), updated_at=clock.now()))

    report = await sync_registry(services, "sandbox")

    assert report.checked == 0 and report.drift == []
    assert dict(report.skipped) == {
        "example.test": "operation op_waiting (nameservers) is pending",
        "incoming.test": "the domain is pending transfer in"}
    assert (await row(services)).nameservers == NS
    async with services.store.read() as session:
        tags = list(await session.scalars(select(Event.tag).where(
            Event.tag == "domains:registry:drift")))
    assert tags == []
