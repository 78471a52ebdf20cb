"""A hosted zone's whole key life against the sandbox registry and a validating resolver: the
first DS reaches the registry, a ZSK rollover and a KSK double-DS rollover run on a fake clock,
and at every step unbound, trusting only the sandbox TLD's key, validates the zone's answers.

The resolver is started afresh at each step with the step's time (`val-override-date`), so
each step proves that what the parent and the zone serve at that moment validates; the
planner's own tests (tests/rules/test_kasp.py) cover what caches may still hold from before.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import dns.asyncquery
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import httpx
import pytest
from dns_peers import LOOPBACK, start_validating_resolver
from sqlalchemy import select

from domains.conftest import (
    LINK_LOCK_PASSWORD,
    LINK_PASSWORD,
    NS,
    Holder,
    Registry,
    link_to,
)
from regshield.clock import FakeClock
from regshield.config import Listen
from regshield.dns.publisher import Publisher
from regshield.dns.server import DnsServer
from regshield.flows.operations import OUTBOX_KIND as OPERATION_KIND
from regshield.flows.operations import run_queued
from regshield.flows.zone_keys import PUBLISH_KIND, keys_sweep
from regshield.notify.handler import handlers as notify_handlers
from regshield.outbox.worker import OutboxWorker
from regshield.registry.links import Registries
from regshield.registry.sandbox.server import SandboxServer
from regshield.registry.sandbox.state import SandboxConfig
from regshield.services import Services
from regshield.store.models import Event, Zone

ZONE = "rolled.test"
WWW = dns.name.from_text(f"www.{ZONE}.")
MAX_STEPS = 80


@pytest.fixture
async def registry(services: Services, tmp_path: Path, clock: FakeClock
                   ) -> AsyncIterator[Registry]:
    """The sandbox registry with its TLD zones served over DNS, the link checking it."""
    config = SandboxConfig(directory=tmp_path / "sandbox", listen=Listen("127.0.0.1", 0),
                           dns_listen=Listen("127.0.0.1", 0), dns_ttl=60)
    server = await SandboxServer.start(config, clock)
    await server.state.add_registrar("regshield", LINK_PASSWORD, lock_password=LINK_LOCK_PASSWORD)
    assert server.dns is not None
    link = replace(link_to(server), parent_servers=server.dns.servers)
    await services.registries.close()
    services.registries = Registries([link])
    box = Registry(server, config, link)
    yield box
    await services.registries.close()
    await server.close()


class Hosting:
    """regshield serving the zone, and the steps that move everything along."""

    def __init__(self, services: Services, registry: Registry, tmp_path: Path,
                 clock: FakeClock) -> None:
        self.services = services
        self.registry = registry
        self.tmp_path = tmp_path
        self.clock = clock
        self.publisher = Publisher(services, notify_timeout=0.2, notify_retries=0)
        self.server = DnsServer(self.publisher.table, keyring=self.publisher.keyring,
                                transfers=self.publisher.transfers)
        self.worker = OutboxWorker(services, {**notify_handlers(),
                                              PUBLISH_KIND: self.publisher.handle,
                                              OPERATION_KIND: run_queued})
        self.checks = 0

    async def settle(self) -> None:
        """Run the key plan, the outbox (publications, registry commands), the refreshes."""
        for _ in range(5):
            await keys_sweep(self.services, zones=[f"{ZONE}."])
            while await self.worker.run_once():
                pass
        await self.publisher.refresh_all()
        assert self.registry.server.dns is not None
        await self.registry.server.dns.update(force=True)

    async def resolves(self) -> None:
        """unbound, from the TLD's trust anchor, validates the zone's data and keys now."""
        sandbox_dns = self.registry.server.dns
        assert sandbox_dns is not None
        anchor = next(line for line in sandbox_dns.trust_anchors() if line.startswith("test. "))
        workdir = self.tmp_path / f"unbound-{self.checks}"
        workdir.mkdir()
        self.checks += 1
        unbound = await asyncio.to_thread(
            start_validating_resolver, workdir, anchor,
            {"test.": sandbox_dns.servers, f"{ZONE}.": [(LOOPBACK, self.server.port)]},
            at=self.clock.now())
        try:
            for name, rdtype in ((WWW, dns.rdatatype.A),
                                 (dns.name.from_text(f"{ZONE}."), dns.rdatatype.DNSKEY)):
                query = dns.message.make_query(name, rdtype, want_dnssec=True)
                answer = await dns.asyncquery.udp(query, LOOPBACK, port=unbound.port, timeout=5)
                assert answer.rcode() == dns.rcode.NOERROR, (
                    f"{name} {dns.rdatatype.to_text(rdtype)} failed at {self.clock.now()}:\n"
                    f"{unbound.output()[-3000:]}")
                assert answer.flags & dns.flags.AD, f"{name} not validated at {self.clock.now()}"
        finally:
            await asyncio.to_thread(unbound.stop)

    async def zone(self) -> Zone:
        async with self.services.store.read() as session:
            zone = (await session.execute(select(Zone).where(
                Zone.name == f"{ZONE}."))).scalar_one()
            return zone

    async def next_step(self) -> None:
        """Move the clock to the plan's next event (or an hour, while waiting for the parent)."""
        zone = await self.zone()
        due = zone.keys_due_at
        now = self.clock.now()
        step = timedelta(hours=1) if due is None or due <= now else due - now
        self.clock.advance(step + timedelta(seconds=1))


@pytest.fixture
async def hosting(services: Services, registry: Registry, tmp_path: Path,
                clock: FakeClock) -> AsyncIterator[Hosting]:
    state = Hosting(services, registry, tmp_path, clock)
    await state.server.start(LOOPBACK, 0)
    yield state
    await state.server.close()
    await state.publisher.close()


async def key_events(services: Services) -> list[tuple[str, dict[str, Any]]]:
    async with services.store.read() as session:
        rows = (await session.execute(select(Event.tag, Event.summary).where(
            Event.tag.startswith("dnssec:key:")).order_by(Event.seq))).all()
    return [(tag, summary) for tag, summary in rows]


async def test_a_zsk_and_a_ksk_rollover_never_break_resolution(
        api: httpx.AsyncClient, holder: Holder, hosting: Hosting, services: Services) -> None:
    registered = await api.post("/api/v1/domains", headers=holder.headers, json={
        "name": ZONE, "registrant": holder.contact, "years": 2, "nameservers": NS})
    assert registered.status_code == 201, registered.text
    zone = (await api.post("/api/v1/zones", json={"name": ZONE}, headers=holder.otp())).json()
    put = await api.put(f"/api/v1/zones/{ZONE}/rrsets/www/A", headers=holder.headers,
                        json={"ttl": 300, "records": ["192.0.2.80"]})
    assert put.status_code == 200, put.text
    first_ksk = next(key["id"] for key in zone["keys"] if key["role"] == "ksk")
    first_zsk = next(key["id"] for key in zone["keys"] if key["role"] == "zsk")

    # The first DS: submitted once the keys have propagated, then seen at the TLD server.
    steps = 0
    while not any(tag == "dnssec:key:ds_seen" for tag, _ in await key_events(services)):
        await hosting.settle()
        await hosting.next_step()
        steps += 1
        assert steps < MAX_STEPS, "the first DS was never seen at the parent"
    await hosting.settle()
    await hosting.resolves()

    # The ZSK rolls when its lifetime ends; the new one is published before it signs.
    while not any(tag == "dnssec:key:removed" and summary["key"] == first_zsk
                  for tag, summary in await key_events(services)):
        await hosting.next_step()
        await hosting.settle()
        await hosting.resolves()
        steps += 1
        assert steps < MAX_STEPS, "the ZSK rollover did not finish"

    # A KSK rollover, asked for: double-DS at the registry, checked at the parent.
    rolled = await api.post(f"/api/v1/zones/{ZONE}/rollover", json={"role": "ksk"},
                            headers=holder.otp())
    assert rolled.status_code == 200, rolled.text
    new_ksk = rolled.json()["generated"][0]
    while not any(tag == "dnssec:key:removed" and summary["key"] == first_ksk
                  for tag, summary in await key_events(services)):
        await hosting.settle()
        await hosting.resolves()
        await hosting.next_step()
        steps += 1
        assert steps < MAX_STEPS, "the KSK rollover did not finish"
    await hosting.settle()
    await hosting.resolves()

    final = (await api.get(f"/api/v1/zones/{ZONE}", headers=holder.headers)).json()
    assert {key["id"] for key in final["keys"] if key["role"] == "ksk"} == {new_ksk}
    domain = (await api.get(f"/api/v1/domains/{ZONE}", headers=holder.headers)).json()
    assert [d["key_tag"] for d in domain["ds"]] == [
        next(key["key_tag"] for key in final["keys"] if key["id"] == new_ksk)]
    assert hosting.checks >= 6  # the resolver was asked at every step of both rollovers
    # Every step of every key was recorded.
    steps_of_old_ksk = [summary for tag, summary in await key_events(services)
                        if summary["key"] == first_ksk]
    assert len(steps_of_old_ksk) >= 5

