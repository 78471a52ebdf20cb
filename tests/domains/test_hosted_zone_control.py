"""Who controls a hosted zone, against the sandbox registry and through the real DNS listener:
zones of names another account registers here, and the DS of a registry-locked domain whose
zone moves here."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import dns.asyncquery
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import httpx
from conftest import World
from dns_provider import verify_through_dns
from sqlalchemy import select

from domains.conftest import NS, Holder, Registry, stepped_up_owner
from domains.test_ds_checks import customer_zone, ds_at_registry
from domains.test_registry_lock import locked, with_credential
from regshield.clock import FakeClock
from regshield.dns.publisher import Publisher
from regshield.dns.server import DnsServer
from regshield.flows.operations import execute_all
from regshield.flows.zone_keys import PUBLISH_KIND, keys_sweep
from regshield.outbox.worker import OutboxWorker
from regshield.rules.ds import parse_ds
from regshield.services import Services
from regshield.store.models import DomainOperation, Event, OutboxItem, Zone

ZONES = "/api/v1/zones"
DOMAIN = "example.test"


async def register(api: httpx.AsyncClient, holder: Holder, name: str = DOMAIN) -> None:
    response = await api.post("/api/v1/domains", headers=holder.headers, json={
        "name": name, "registrant": holder.contact, "years": 1, "nameservers": NS})
    assert response.status_code == 201, response.text


async def tags(services: Services, prefix: str) -> list[str]:
    async with services.store.read() as session:
        return list((await session.execute(select(Event.tag).where(
            Event.tag.startswith(prefix)).order_by(Event.seq))).scalars())


async def notices_of(services: Services, change: str) -> list[dict[str, Any]]:
    async with services.store.read() as session:
        items = (await session.execute(select(OutboxItem).where(
            OutboxItem.kind == "notify:email").order_by(OutboxItem.id))).scalars().all()
    return [item.payload for item in items if item.payload.get("change") == change]


async def publish_all(services: Services, publisher: Publisher) -> None:
    while await OutboxWorker(services, {PUBLISH_KIND: publisher.handle}).run_once():
        pass


async def ask(server: DnsServer, name: str) -> dns.message.Message:
    query = dns.message.make_query(dns.name.from_text(name), dns.rdatatype.A)
    return await dns.asyncquery.udp(query, "127.0.0.1", port=server.port, timeout=2)


# --- door 3: zone squatting ----------------------------------------------------------------


async def test_account_b_cannot_host_a_zone_below_a_domain_of_account_a(
        api: httpx.AsyncClient, holder: Holder, registry: Registry, world: World,
        clock: FakeClock) -> None:
    await register(api, holder)
    squatter = await stepped_up_owner(world, api, clock)
    for name in (DOMAIN, f"www.{DOMAIN}", f"deep.www.{DOMAIN}"):
        refused = await api.post(ZONES, json={"name": name}, headers=squatter.otp())
        assert refused.status_code == 409, (name, refused.text)
    # Nor can staff host it for that account.
    operator = await world.user("operator")
    by_staff = await api.post(ZONES, headers=operator.headers, json={
        "name": f"www.{DOMAIN}", "account": squatter.identity.account})
    assert by_staff.status_code == 409
    # The domain's own account hosts it, served at once: no challenge for its own name.
    mine = await api.post(ZONES, json={"name": f"www.{DOMAIN}"}, headers=holder.headers)
    assert mine.status_code == 201, mine.text
    assert mine.json()["state"] == "active" and mine.json()["challenge"] is None


async def test_squatted_zone_stops_answering_when_the_name_is_registered(
        api: httpx.AsyncClient, holder: Holder, registry: Registry, world: World,
        clock: FakeClock, services: Services, served: tuple[Publisher, DnsServer]) -> None:
    publisher, server = served
    squatter = await stepped_up_owner(world, api, clock)
    name = "squat.test"
    created = await api.post(ZONES, json={"name": name}, headers=squatter.headers)
    assert created.status_code == 201 and created.json()["state"] == "unverified"
    put = await api.put(f"{ZONES}/{name}/rrsets/www/A", headers=squatter.headers,
                        json={"ttl": 300, "records": ["203.0.113.66"]})
    assert put.status_code == 200
    # The squatter controls the name's DNS elsewhere for now, so the challenge passes.
    verified = await verify_through_dns(api, services, squatter.headers, name)
    assert verified.status_code == 200, verified.text
    await publish_all(services, publisher)
    answer = await ask(server, f"www.{name}.")
    assert answer.rcode() == dns.rcode.NOERROR and answer.flags & dns.flags.AA

    await register(api, holder, name)  # another account registers the name here

    await publish_all(services, publisher)
    answer = await ask(server, f"www.{name}.")
    assert answer.rcode() == dns.rcode.REFUSED and not answer.answer
    kept = (await api.get(f"{ZONES}/{name}", headers=squatter.headers)).json()
    assert kept["state"] == "suspended"
    edit = await api.put(f"{ZONES}/{name}/rrsets/www/A", headers=squatter.headers,
                         json={"ttl": 300, "records": ["203.0.113.67"]})
    assert edit.status_code == 409
    assert "dns:zone:suspended" in await tags(services, "dns:zone:")
    [told] = await notices_of(services, "zone_suspended")
    assert told["recipients"] == [{"account_owners": squatter.identity.account}]
    # The registrant hosts the name's zone here; the squatter's stays out of the answers.
    hosted = await api.post(ZONES, json={"name": name}, headers=holder.otp())
    assert hosted.status_code == 201 and hosted.json()["state"] == "active"
    await publish_all(services, publisher)
    assert (await ask(server, f"www.{name}.")).rcode() == dns.rcode.NXDOMAIN


# --- door 4: DS replaced on a registry-locked domain ----------------------------------------


async def locked_with_the_customers_ds(api: httpx.AsyncClient, holder: Holder,
                                       services: Services) -> str:
    """example.test registered, its DS naming another DNS provider's key, registry-locked."""
    await register(api, holder)
    theirs = customer_zone().ksk_ds
    response = await api.put(f"/api/v1/domains/{DOMAIN}/ds", headers=holder.otp(),
                             json={"ds": [theirs], "force": True})
    assert response.status_code == 200, response.text
    await with_credential(api, holder)
    await locked(api, holder, services)
    return parse_ds(theirs).to_text()


async def test_member_token_cannot_create_a_zone_for_a_registry_locked_domain_without_step_up(
        api: httpx.AsyncClient, holder: Holder, registry: Registry, world: World,
        services: Services) -> None:
    await locked_with_the_customers_ds(api, holder, services)
    member = await world.user("member", holder.identity.account)
    holder.clock.advance(timedelta(minutes=10))  # the owner's last one-time code is stale
    for headers in (member.headers, holder.headers):
        refused = await api.post(ZONES, json={"name": DOMAIN}, headers=headers)
        assert refused.status_code == 403, refused.text
        assert refused.json()["type"].endswith("step-up-required")
    async with services.store.read() as session:
        assert (await session.execute(select(Zone))).scalars().all() == []
    created = await api.post(ZONES, json={"name": DOMAIN}, headers=holder.otp())
    assert created.status_code == 201, created.text
    deleted = await api.delete(f"{ZONES}/{DOMAIN}", headers=member.headers)
    assert deleted.status_code == 403


async def test_key_sweep_never_removes_a_ds_regshield_did_not_put_there(
        api: httpx.AsyncClient, holder: Holder, registry: Registry,
        services: Services) -> None:
    theirs = await locked_with_the_customers_ds(api, holder, services)
    zone = (await api.post(ZONES, json={"name": DOMAIN}, headers=holder.otp())).json()
    ours = next(key for key in zone["keys"] if key["role"] == "ksk")["ds"][0]
    for _ in range(2):
        holder.clock.advance(timedelta(days=1, hours=1, minutes=1))
        # The key plan waits for a DS the parent does not get (no parent server is known
        # here, so a later sweep's check fails): either way nothing goes to the registry.
        [swept] = await keys_sweep(services, zones=[f"{DOMAIN}."])
        assert swept.advanced is None or swept.advanced.ds_operation is None
    async with services.store.read() as session:
        sent = (await session.execute(select(DomainOperation.request).where(
            DomainOperation.kind == "ds"))).scalars().all()
    assert len(sent) == 1  # the customer's own DS, set before the zone came here
    assert [parse_ds(ds).to_text() for ds in ds_at_registry(registry)] == [theirs]
    held = (await api.get(f"{ZONES}/{DOMAIN}", headers=holder.headers)).json()
    assert held["ds_held"] == [theirs]
    assert (await tags(services, "dnssec:ds:")).count("dnssec:ds:held") == 1
    assert [n["details"]["ds"] for n in await notices_of(services, "zone_ds_held")] == [[theirs]]

    # Only the owner's stepped-up confirmation lets regshield's DS replace theirs.
    url = f"{ZONES}/{DOMAIN}/ds/takeover"
    assert (await api.post(url, headers=holder.headers)).status_code == 403
    confirmed = await api.post(url, headers=holder.otp())
    assert confirmed.status_code == 200, confirmed.text
    operation = confirmed.json()["ds_operation"]
    assert operation is not None
    done = await execute_all(services, operation)
    assert done.state == "confirmed", done.result
    assert [parse_ds(ds).to_text() for ds in ds_at_registry(registry)] == \
        [parse_ds(ours).to_text()]
    assert "dnssec:ds:takeover_confirmed" in await tags(services, "dnssec:ds:")
