"""Publishing hosted zones: what the API stores becomes a signed zone that the server answers
and transfers, each edit re-signs only what it touches, and the journal serves IXFR."""

from __future__ import annotations

import asyncio
import socket
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import dns.asyncquery
import dns.dnssec
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.tsig
import dns.xfr
import dns.zone
import httpx
import pytest
from conftest import World
from dns_peers import free_port, start_unbound
from dns_provider import verify_through_dns
from dns_secondaries import knot_secondary, wait_for_serial
from domains.conftest import Holder, stepped_up_owner
from sqlalchemy import select, update

from regshield.clock import FakeClock
from regshield.config import Settings
from regshield.dns import publisher as publisher_module
from regshield.dns.answers import ZoneIndex
from regshield.dns.publisher import Publisher
from regshield.dns.server import DnsServer, prepare_index
from regshield.dns.tsig import make_key
from regshield.dns.workers import DnsWorkers, WatchedTable
from regshield.dns.zonedata import ServedZone
from regshield.dnssec import apart
from regshield.dnssec.incremental import SignedZone
from regshield.flows.zone_keys import PUBLISH_KIND, keys_sweep
from regshield.outbox.worker import OutboxWorker
from regshield.services import Services
from regshield.store.models import Event, OutboxItem, Secondary

ZONES = "/api/v1/zones"
ORIGIN = dns.name.from_text("published.example.")
WWW = dns.name.from_text("www.published.example.")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The secondaries here (Knot, a silent socket) run on loopback: the installation allows
    that network, as an administrator would in `[dns] allowed_secondary_networks`."""
    return allowing(settings, "127.0.0.0/8")


def allowing(settings: Settings, networks: str) -> Settings:
    """`settings` with `networks` (comma-separated; "" for none) allowed as secondaries."""
    return Settings.load(home=settings.home, database_url=settings.database_url,
                         environ={"REGSHIELD_DNS_ALLOWED_SECONDARY_NETWORKS": networks})


@pytest.fixture
async def owner(world: World, api: httpx.AsyncClient, clock: FakeClock) -> Holder:
    return await stepped_up_owner(world, api, clock, await world.account("Publisher Customer"))


async def host(api: httpx.AsyncClient, services: Services, owner: Holder,
               body: dict[str, Any]) -> httpx.Response:
    """Host a zone and prove control of its name, as a customer does, so that it is served."""
    created = await api.post(ZONES, json=body, headers=owner.headers)
    assert created.status_code == 201, created.text
    verified = await verify_through_dns(api, services, owner.headers, body["name"])
    assert verified.status_code == 200, verified.text
    return created


@pytest.fixture
async def publisher(services: Services) -> Any:
    # NOTIFY to a secondary that never answers gives up quickly here.
    publisher = Publisher(services, notify_timeout=0.2, notify_retries=1)
    yield publisher
    await publisher.close()


@pytest.fixture
async def server(publisher: Publisher) -> Any:
    server = DnsServer(publisher.table, keyring=publisher.keyring,
                       transfers=publisher.transfers)
    await server.start("127.0.0.1", 0)
    yield server
    await server.close()


async def publish_queued(services: Services, publisher: Publisher) -> int:
    """Run what the outbox holds; returns how many zone publications were among it (notices
    of the same changes are queued beside them)."""
    async with services.store.read() as session:
        due = len((await session.execute(select(OutboxItem.id).where(
            OutboxItem.kind == PUBLISH_KIND, OutboxItem.completed_at.is_(None),
            OutboxItem.failed.is_(False)))).all())
    await OutboxWorker(services, {PUBLISH_KIND: publisher.handle}).run_once()
    return due


async def put(api: httpx.AsyncClient, who: Holder, owner: str, rtype: str, ttl: int,
              records: list[str]) -> dict[str, Any]:
    response = await api.put(f"{ZONES}/published.example/rrsets/{owner}/{rtype}",
                             json={"ttl": ttl, "records": records}, headers=who.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def query(server: DnsServer, name: dns.name.Name, rdtype: int) -> dns.message.Message:
    request = dns.message.make_query(name, rdtype, want_dnssec=True)
    return await dns.asyncquery.udp(request, "127.0.0.1", port=server.port, timeout=2)


def validated(response: dns.message.Message, dnskeys: dns.rrset.RRset, rdtype: int) -> None:
    rrset = response.find_rrset(response.answer, WWW, dns.rdataclass.IN, rdtype)
    rrsigs = response.find_rrset(response.answer, WWW, dns.rdataclass.IN,
                                 dns.rdatatype.RRSIG, rdtype)
    dns.dnssec.validate(rrset, rrsigs, {ORIGIN: dnskeys})


async def dnskeys_of(server: DnsServer) -> dns.rrset.RRset:
    response = await query(server, ORIGIN, dns.rdatatype.DNSKEY)
    return response.find_rrset(response.answer, ORIGIN, dns.rdataclass.IN,
                               dns.rdatatype.DNSKEY)


async def test_a_created_zone_is_served_signed_with_the_keys_the_api_shows(
        api: httpx.AsyncClient, owner: Holder, services: Services, publisher: Publisher,
        server: DnsServer) -> None:
    created = (await host(api, services, owner, {"name": "published.example"})).json()
    await put(api, owner, "www", "A", 300, ["192.0.2.10"])
    assert await publish_queued(services, publisher) == 3  # create, verify, put
    served = publisher.table.get(ORIGIN)
    zone = (await api.get(f"{ZONES}/published.example", headers=owner.headers)).json()
    assert served is not None and served.serial == zone["serial"]

    dnskeys = await dnskeys_of(server)
    assert {dns.dnssec.key_id(key) for key in dnskeys} == {k["key_tag"] for k in created["keys"]}
    response = await query(server, WWW, dns.rdatatype.A)
    assert response.flags & dns.flags.AA
    validated(response, dnskeys, dns.rdatatype.A)
    # The DS the API shows is the one that matches the served KSK.
    ksk = next(key for key in dnskeys if key.flags == 257)
    assert dns.dnssec.make_ds(ORIGIN, ksk, "SHA256").to_text().lower() == zone["ds"][0]


async def hosted_with_a_secondary(
        api: httpx.AsyncClient, owner: Holder, world: World, services: Services,
        publisher: Publisher, server: DnsServer, body: dict[str, Any]
) -> tuple[dns.tsig.Key, dns.zone.Zone]:
    """A zone of 20 hosts, published, with a secondary's TSIG key; the key and the zone as
    the secondary holds it after an AXFR."""
    await host(api, services, owner, body)
    for index in range(20):
        await put(api, owner, f"host{index}", "A", 300, [f"192.0.2.{index + 1}"])
    operator = await world.user("operator")
    added = (await api.post(f"{ZONES}/published.example/secondaries",
                            json={"address": "127.0.0.1", "port": 9, "tsig_key": "xfr"},
                            headers=operator.headers)).json()
    key = make_key(added["tsig_key"], added["tsig_secret"])
    await publish_queued(services, publisher)
    held = dns.zone.Zone(ORIGIN, relativize=False)
    axfr, _ = dns.xfr.make_query(held, keyring=key)
    await dns.asyncquery.inbound_xfr("127.0.0.1", held, axfr, port=server.port, timeout=5)
    return key, held


async def test_an_edit_re_signs_only_what_it_touches_and_serves_ixfr_from_the_journal(
        api: httpx.AsyncClient, owner: Holder, world: World, services: Services,
        publisher: Publisher, server: DnsServer, clock: FakeClock) -> None:
    key, held = await hosted_with_a_secondary(
        api, owner, world, services, publisher, server,
        {"name": "published.example", "serial_scheme": "increment"})
    before = publisher.table.get(ORIGIN)
    assert before is not None and held.get_soa().serial == before.serial

    change = await put(api, owner, "www", "A", 300, ["192.0.2.99"])
    await publish_queued(services, publisher)
    after = publisher.table.get(ORIGIN)
    assert after is not None and after.serial == change["serial"]
    diff = after.journal[-1]
    assert (diff.from_serial, diff.to_serial) == (before.serial, after.serial)
    added_names = {(r.name.to_text(), dns.rdatatype.to_text(r.rdtype)) for r in diff.added}
    # The new RRset, its signature, the SOA and its signature, and the chain links around it.
    assert ("www.published.example.", "A") in added_names
    assert ("www.published.example.", "RRSIG") in added_names
    assert not any(name.startswith("host1") and kind == "A" for name, kind in added_names)
    assert len(diff.added) < 12

    ixfr, _ = dns.xfr.make_query(held, keyring=key)
    await dns.asyncquery.inbound_xfr("127.0.0.1", held, ixfr, port=server.port, timeout=5)
    assert held.get_soa().serial == after.serial
    assert held.get_rdataset(WWW, dns.rdatatype.A)[0].to_text() == "192.0.2.99"
    dnskeys = held.get_rrset(ORIGIN, dns.rdatatype.DNSKEY)
    dns.dnssec.validate(held.get_rrset(WWW, dns.rdatatype.A),
                        held.get_rrset(WWW, dns.rdatatype.RRSIG, dns.rdatatype.A),
                        {ORIGIN: dnskeys})
    await publisher.settle()  # transfers are recorded in the background
    async with services.store.read() as session:
        tags = (await session.execute(select(Event.summary).where(
            Event.tag == "dns:transfer:served"))).scalars().all()
    assert [(t["kind"], t["serial"]) for t in tags] == [
        ("AXFR", before.serial), ("IXFR", after.serial)]


async def test_an_edits_snapshot_is_indexed_from_the_one_it_replaces(
        api: httpx.AsyncClient, owner: Holder, services: Services, publisher: Publisher,
        server: DnsServer) -> None:
    """As `serve` sets it up: the publisher hands `prepare_index` the snapshot being
    replaced, so an edit's index is made from that one's instead of a pass over the zone."""
    publisher.prepare = prepare_index
    await host(api, services, owner, {"name": "published.example"})
    await put(api, owner, "www", "A", 300, ["192.0.2.10"])
    await publish_queued(services, publisher)
    first = publisher.table.get(ORIGIN)
    assert first is not None and first.prepared["index"].denial.renew is None  # built whole

    await put(api, owner, "new.below.www", "A", 300, ["192.0.2.11"])
    await publish_queued(services, publisher)
    edited = publisher.table.get(ORIGIN)
    assert edited is not None and edited.serial != first.serial
    index = edited.prepared["index"]
    assert index.denial.renew is not None  # made from the last snapshot's index
    whole = ZoneIndex(ServedZone(edited.origin, edited.serial, edited.rrsets))
    assert (index._existing, index._types, index._nsec_owners) == (
        whole._existing, whole._types, whole._nsec_owners)
    below = dns.name.from_text("below.www.published.example.")
    assert (await query(server, below, dns.rdatatype.A)).rcode() == dns.rcode.NOERROR  # ENT
    answer = await query(server, dns.name.from_text("new.below.www.published.example."),
                         dns.rdatatype.A)
    assert [rrset.rdtype for rrset in answer.answer] == [dns.rdatatype.A, dns.rdatatype.RRSIG]


async def test_an_edit_the_signer_failed_on_is_served_by_the_retry(
        api: httpx.AsyncClient, owner: Holder, services: Services, publisher: Publisher,
        server: DnsServer, clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    """The signer fails halfway through an edit (an HSM gone away): the old serial stays
    served, and the outbox's retry serves the edit, with nothing edited again."""
    await host(api, services, owner, {"name": "published.example"})
    await put(api, owner, "www", "A", 300, ["192.0.2.10"])
    await publish_queued(services, publisher)
    before = publisher.table.get(ORIGIN)
    assert before is not None

    failures: list[str] = []

    def signer_fails(zone: SignedZone, *args: Any, **kwargs: Any) -> Any:
        failures.append("apply")
        raise RuntimeError("the signer failed")

    change = await put(api, owner, "www", "A", 300, ["192.0.2.99"])
    with monkeypatch.context() as patched:
        patched.setattr(SignedZone, "apply", signer_fails)
        await publish_queued(services, publisher)
    assert failures == ["apply"]
    still = publisher.table.get(ORIGIN)
    assert still is not None and still.serial == before.serial

    clock.advance(timedelta(seconds=5))  # the outbox's backoff
    assert await publish_queued(services, publisher) == 1
    after = publisher.table.get(ORIGIN)
    assert after is not None and after.serial == change["serial"]
    response = await query(server, WWW, dns.rdatatype.A)
    assert [rr.to_text() for rr in response.find_rrset(
        response.answer, WWW, dns.rdataclass.IN, dns.rdatatype.A)] == ["192.0.2.99"]
    validated(response, await dnskeys_of(server), dns.rdatatype.A)


@pytest.mark.parametrize("large", [False, True], ids=["in-place", "large"])
async def test_each_step_of_a_zsk_rollover_is_an_ixfr_that_signs_only_what_the_step_changes(
        api: httpx.AsyncClient, owner: Holder, world: World, services: Services,
        publisher: Publisher, server: DnsServer, clock: FakeClock,
        monkeypatch: pytest.MonkeyPatch, large: bool) -> None:
    """Publishing or withdrawing a key re-signs the DNSKEY RRset alone; the step where the new
    ZSK takes over re-signs the data and nothing else (in place; a large zone, whose every
    signature is made again, in the signing process). Each step is a journal entry, so a
    secondary follows the rollover by IXFR, and the zone it holds validates at every step."""
    if large:
        monkeypatch.setattr(apart, "SIGN_APART_AT", 10)  # "large" here: ten RRsets
    key, held = await hosted_with_a_secondary(api, owner, world, services, publisher, server,
                                              {"name": "published.example"})
    old_zsk = signer_of(held, dns.name.from_text("host3", ORIGIN), dns.rdatatype.A)

    async def step() -> set[tuple[str, str]]:
        """Publish the step, follow it by IXFR; what the step added, as (owner, type)."""
        before = held.get_soa().serial
        await publish_queued(services, publisher)
        served = publisher.table.get(ORIGIN)
        assert served is not None and served.journal[-1].from_serial == before
        ixfr, _ = dns.xfr.make_query(held, keyring=key)
        await dns.asyncquery.inbound_xfr("127.0.0.1", held, ixfr, port=server.port, timeout=5)
        assert held.get_soa().serial == served.serial
        validate_zone(held, clock)
        return {(r.name.to_text(), dns.rdatatype.to_text(r.covers if r.rdtype ==
                 dns.rdatatype.RRSIG else r.rdtype)) for r in served.journal[-1].added}

    apex = ORIGIN.to_text()
    rolled = await api.post(f"{ZONES}/published.example/rollover", json={"role": "zsk"},
                            headers=owner.otp())
    assert rolled.status_code == 200, rolled.text
    # Pre-published: the apex alone changes (the DNSKEY RRset; the CDS and CDNSKEY the key
    # plan asks for while the zone waits for its DS, and the NSEC whose types name them).
    assert {owner for owner, _ in await step()} == {apex}
    assert len(held.get_rdataset(ORIGIN, dns.rdatatype.DNSKEY)) == 3

    clock.advance(timedelta(hours=2, minutes=1))  # Ipub: in every cache
    await keys_sweep(services, zones=[apex])
    changed = await step()
    assert {(f"host{index}.{apex}", "A") for index in range(20)} <= changed
    assert {kind for _, kind in changed} >= {"SOA", "DNSKEY", "A", "NS", "NSEC"}, changed
    new_zsk = signer_of(held, dns.name.from_text("host3", ORIGIN), dns.rdatatype.A)
    assert new_zsk != old_zsk

    clock.advance(timedelta(days=1, hours=1, minutes=1))  # Iret: old signatures forgotten
    await keys_sweep(services, zones=[apex])
    assert {owner for owner, _ in await step()} == {apex}  # the old key withdrawn
    assert old_zsk not in {dns.dnssec.key_id(k) for k in held.get_rdataset(
        ORIGIN, dns.rdatatype.DNSKEY)}


def signer_of(zone: dns.zone.Zone, name: dns.name.Name, rdtype: int) -> int:
    (rrsig,) = zone.get_rdataset(name, dns.rdatatype.RRSIG, rdtype)
    return int(rrsig.key_tag)


def validate_zone(zone: dns.zone.Zone, clock: FakeClock) -> None:
    """Every RRset of `zone` that carries a signature validates with its DNSKEY RRset."""
    dnskeys = zone.get_rrset(ORIGIN, dns.rdatatype.DNSKEY)
    checked = 0
    for name, node in zone.nodes.items():
        for rdataset in node.rdatasets:
            if rdataset.rdtype == dns.rdatatype.RRSIG:
                continue
            rrsigs = node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.RRSIG, rdataset.rdtype)
            if rrsigs is None:
                continue  # a delegation's NS
            dns.dnssec.validate((name, rdataset), (name, rrsigs), {ORIGIN: dnskeys},
                                now=clock.now().timestamp())
            checked += 1
    assert checked > 20


async def test_a_transfer_without_the_secondary_key_is_refused(
        api: httpx.AsyncClient, owner: Holder, services: Services, publisher: Publisher,
        server: DnsServer) -> None:
    await host(api, services, owner, {"name": "published.example"})
    await publish_queued(services, publisher)
    held = dns.zone.Zone(ORIGIN, relativize=False)
    axfr, _ = dns.xfr.make_query(held)
    with pytest.raises(dns.xfr.TransferError):
        await dns.asyncquery.inbound_xfr("127.0.0.1", held, axfr, port=server.port, timeout=5)


async def test_a_deleted_zone_is_no_longer_served(
        api: httpx.AsyncClient, owner: Holder, services: Services, publisher: Publisher,
        server: DnsServer) -> None:
    await host(api, services, owner, {"name": "published.example"})
    await publish_queued(services, publisher)
    assert (await query(server, ORIGIN, dns.rdatatype.SOA)).rcode() == dns.rcode.NOERROR
    await api.delete(f"{ZONES}/published.example", headers=owner.otp())
    await publish_queued(services, publisher)
    assert (await query(server, ORIGIN, dns.rdatatype.SOA)).rcode() == dns.rcode.REFUSED


async def test_an_unsigned_zone_is_served_without_signatures(
        api: httpx.AsyncClient, owner: Holder, services: Services, publisher: Publisher,
        server: DnsServer) -> None:
    await host(api, services, owner, {"name": "published.example", "dnssec": False})
    await put(api, owner, "www", "A", 300, ["192.0.2.10"])
    await publish_queued(services, publisher)
    response = await query(server, WWW, dns.rdatatype.A)
    assert [r.rdtype for r in response.answer] == [dns.rdatatype.A]


async def test_refresh_re_signs_before_signatures_expire(
        api: httpx.AsyncClient, owner: Holder, services: Services, publisher: Publisher,
        clock: FakeClock) -> None:
    await host(api, services, owner, {"name": "published.example"})
    await publish_queued(services, publisher)
    first = publisher.table.get(ORIGIN)
    assert first is not None
    assert await publisher.refresh_all() == 0
    clock.advance(timedelta(days=12))
    assert await publisher.refresh_all() == 1
    refreshed = publisher.table.get(ORIGIN)
    assert refreshed is not None and refreshed.serial != first.serial
    zone = (await api.get(f"{ZONES}/published.example", headers=owner.headers)).json()
    assert zone["serial"] == refreshed.serial  # the stored serial follows the served one


async def test_knot_follows_each_published_serial_and_the_api_shows_its_status(
        api: httpx.AsyncClient, owner: Holder, world: World, services: Services,
        publisher: Publisher, server: DnsServer, tmp_path: Path) -> None:
    await host(api, services, owner, {"name": "published.example"})
    await put(api, owner, "www", "A", 300, ["192.0.2.10"])
    knot_port = free_port()
    operator = await world.user("operator")
    added = (await api.post(f"{ZONES}/published.example/secondaries",
                            json={"address": "127.0.0.1", "port": knot_port,
                                  "tsig_key": "knot-xfr"}, headers=operator.headers)).json()
    key = make_key(added["tsig_key"], added["tsig_secret"])
    with knot_secondary(tmp_path, ORIGIN, server.port, key, port=knot_port) as knot:
        await publish_queued(services, publisher)
        first = publisher.table.get(ORIGIN)
        assert first is not None
        await wait_for_serial(ORIGIN, knot, key, first.serial)

        change = await put(api, owner, "www", "A", 300, ["192.0.2.99"])
        await publish_queued(services, publisher)
        await wait_for_serial(ORIGIN, knot, key, change["serial"])
        request = dns.message.make_query(WWW, dns.rdatatype.A, want_dnssec=True)
        answer = await dns.asyncquery.udp(request, "127.0.0.1", port=knot.port, timeout=2)
        validated(answer, await dnskeys_of(server), dns.rdatatype.A)
        assert answer.answer[0][0].to_text() == "192.0.2.99"
        # A validating resolver that knows only the zone's DS and reaches only Knot.
        zone = (await api.get(f"{ZONES}/published.example", headers=owner.headers)).json()
        workdir = tmp_path / "unbound"
        workdir.mkdir()
        unbound = await asyncio.to_thread(
            start_unbound, workdir, ORIGIN, f"published.example. DS {zone['ds'][0]}",
            [("127.0.0.1", knot.port)])
        try:
            resolved = await dns.asyncquery.udp(request, "127.0.0.1", port=unbound.port,
                                                timeout=5)
        finally:
            await asyncio.to_thread(unbound.stop)
        assert resolved.flags & dns.flags.AD, unbound.output()
        assert resolved.answer[0][0].to_text() == "192.0.2.99"

        await publisher.settle()
        await publisher.check_secondaries()
    zone = (await api.get(f"{ZONES}/published.example", headers=owner.headers)).json()
    [status] = zone["secondaries"]
    assert (status["served_serial"], status["lag"]) == (change["serial"], 0)
    assert (status["last_transfer_kind"], status["last_transfer_serial"]) == (
        "IXFR", change["serial"])
    assert status["last_notify_result"] == "answered"


async def test_a_deleted_rrset_leaves_the_served_zone_and_can_come_back(
        api: httpx.AsyncClient, owner: Holder, services: Services, publisher: Publisher,
        server: DnsServer) -> None:
    await host(api, services, owner, {"name": "published.example"})
    await put(api, owner, "www", "A", 300, ["192.0.2.10"])
    await publish_queued(services, publisher)
    deleted = await api.delete(f"{ZONES}/published.example/rrsets/www/A",
                               headers=owner.headers)
    assert deleted.status_code == 200
    await publish_queued(services, publisher)
    gone = await query(server, WWW, dns.rdatatype.A)
    assert gone.rcode() == dns.rcode.NXDOMAIN
    # The denial is signed: an NSEC record with its signature proves the name is gone.
    assert {r.rdtype for r in gone.authority} >= {dns.rdatatype.NSEC, dns.rdatatype.RRSIG}
    await put(api, owner, "www", "A", 300, ["192.0.2.11"])
    await publish_queued(services, publisher)
    back = await query(server, WWW, dns.rdatatype.A)
    validated(back, await dnskeys_of(server), dns.rdatatype.A)
    assert back.answer[0][0].to_text() == "192.0.2.11"
    listed = (await api.get(f"{ZONES}/published.example/rrsets", headers=owner.headers)).json()
    assert [r["records"] for r in listed if r["owner"] == "www.published.example."] == [
        ["192.0.2.11"]]


async def test_the_nameservers_zone_carries_the_bootstrap_signals_of_zones_that_use_them(
        api: httpx.AsyncClient, owner: Holder, services: Services, publisher: Publisher,
        server: DnsServer, clock: FakeClock, world: World) -> None:
    # The registrar's nameservers (ns1 and ns2.regshield.test.) live in a zone hosted here.
    # Hosted by the registrar (staff), for the account: never by a customer.
    operator = await world.user("operator")
    assert (await api.post(ZONES, headers=operator.headers, json={
        "name": "regshield.test", "account": owner.identity.account})).status_code == 201
    child = (await host(api, services, owner, {"name": "published.example"})).json()
    ksk = next(key for key in child["keys"] if key["role"] == "ksk")
    await publish_queued(services, publisher)
    signal = dns.name.from_text("_dsboot.published.example._signal.ns1.regshield.test.")
    assert (await query(server, signal, dns.rdatatype.CDS)).rcode() == dns.rcode.NXDOMAIN

    # Once the keys have propagated, the zone asks for its DS: CDS at its apex, and the
    # RFC 9615 signal beside each of its nameservers.
    clock.advance(timedelta(days=1, hours=1, minutes=1))
    await keys_sweep(services, zones=["published.example."])
    await publish_queued(services, publisher)
    answer = await query(server, signal, dns.rdatatype.CDS)
    cds = answer.find_rrset(answer.answer, signal, dns.rdataclass.IN, dns.rdatatype.CDS)
    assert [r.to_text().lower() for r in cds] == [ksk["ds"][0]]
    ns_zone = dns.name.from_text("regshield.test.")
    keyset = await query(server, ns_zone, dns.rdatatype.DNSKEY)
    dnskeys = keyset.find_rrset(keyset.answer, ns_zone, dns.rdataclass.IN, dns.rdatatype.DNSKEY)
    rrsigs = answer.find_rrset(answer.answer, signal, dns.rdataclass.IN, dns.rdatatype.RRSIG,
                               dns.rdatatype.CDS)
    # Signed on the test's clock, a day ahead of the machine's.
    dns.dnssec.validate(cds, rrsigs, {ns_zone: dnskeys}, now=clock.now().timestamp())
    apex = await query(server, ORIGIN, dns.rdatatype.CDS)
    assert [r.to_text().lower() for r in apex.answer[0]] == [ksk["ds"][0]]


async def test_notify_goes_to_a_secondary_only_while_the_configuration_allows_its_network(
        api: httpx.AsyncClient, owner: Holder, world: World, settings: Settings,
        clock: FakeClock, publisher: Publisher, services: Services) -> None:
    await host(api, services, owner, {"name": "published.example"})
    operator = await world.user("operator")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.setblocking(False)
        added = await api.post(f"{ZONES}/published.example/secondaries", json={
            "address": "127.0.0.1", "port": listener.getsockname()[1], "tsig_key": "xfr"},
            headers=operator.headers)
        assert added.status_code == 201, added.text
        # The same installation after an administrator took loopback out of the setting.
        withdrawn = Services.open(allowing(settings, ""), clock)
        stale = Publisher(withdrawn, notify_timeout=0.2, notify_retries=0)
        try:
            publication = await stale.publish("published.example.")
            await stale.settle()  # the serial check after the NOTIFY: not sent either
        finally:
            await stale.close()
            await withdrawn.close()
        [result] = publication.notified.values()
        assert (result.outcome, result.attempts) == ("refused", 0)
        assert "loopback" in result.detail
        with pytest.raises(BlockingIOError):
            listener.recv(512)  # nothing was sent
        zone = (await api.get(f"{ZONES}/published.example", headers=owner.headers)).json()
        [status] = zone["secondaries"]
        assert status["last_notify_result"] == "refused"
        assert status["served_checked_at"] is not None and status["served_serial"] is None

        # With loopback allowed, the same publication reaches the socket.
        publication = await publisher.publish("published.example.")
        [result] = publication.notified.values()
        assert result.outcome == "timeout" and result.attempts == 2
        notify = dns.message.from_wire(listener.recv(512), ignore_trailing=True,
                                       keyring=False)
        assert notify.opcode() == dns.opcode.NOTIFY
        await publisher.settle()


async def test_knot_follows_each_serial_from_whichever_dns_worker_it_reaches(
        api: httpx.AsyncClient, owner: Holder, world: World, services: Services,
        tmp_path: Path) -> None:
    """Three processes answer on the port; Knot's SOA queries and transfers reach any of them,
    and NOTIFY goes out only once all of them serve the new serial."""
    publisher = Publisher(services, WatchedTable(), notify_timeout=0.5, notify_retries=1)
    server = DnsServer(publisher.table, keyring=publisher.keyring,
                       transfers=publisher.transfers, rrl=publisher.rate_limiter)
    await server.start("127.0.0.1", 0, reuse_port=True)
    assert isinstance(publisher.table, WatchedTable)
    workers = DnsWorkers(3, publisher.table, keyring=publisher.keyring,
                         allowed_keys=publisher.allowed_keys,
                         rate_limiter=publisher.rate_limiter,
                         on_transfer=publisher.transfer_served)
    await workers.start("127.0.0.1", server.port)
    caught_up: list[bool] = []

    async def before_notify(origin: dns.name.Name) -> None:
        caught_up.append(await workers.caught_up(origin))
    publisher.before_notify = before_notify
    try:
        await host(api, services, owner, {"name": "published.example"})
        await put(api, owner, "www", "A", 300, ["192.0.2.10"])
        knot_port = free_port()
        operator = await world.user("operator")
        added = (await api.post(f"{ZONES}/published.example/secondaries",
                                json={"address": "127.0.0.1", "port": knot_port,
                                      "tsig_key": "knot-xfr"}, headers=operator.headers)).json()
        key = make_key(added["tsig_key"], added["tsig_secret"])
        with knot_secondary(tmp_path, ORIGIN, server.port, key, port=knot_port) as knot:
            await publish_queued(services, publisher)
            first = publisher.table.get(ORIGIN)
            assert first is not None
            await wait_for_serial(ORIGIN, knot, key, first.serial)
            for address in ("192.0.2.98", "192.0.2.99"):
                change = await put(api, owner, "www", "A", 300, [address])
                await publish_queued(services, publisher)
                await wait_for_serial(ORIGIN, knot, key, change["serial"])
            request = dns.message.make_query(WWW, dns.rdatatype.A, want_dnssec=True)
            answer = await dns.asyncquery.udp(request, "127.0.0.1", port=knot.port, timeout=2)
            assert answer.answer[0][0].to_text() == "192.0.2.99"
            await asyncio.sleep(0.3)  # a transfer a child served is reported, then recorded
            await publisher.settle()
        assert caught_up and all(caught_up)
        zone = (await api.get(f"{ZONES}/published.example", headers=owner.headers)).json()
        [status] = zone["secondaries"]
        assert status["last_transfer_serial"] == change["serial"]
    finally:
        await workers.close()
        await server.close()
        await publisher.close()


async def test_a_large_zone_is_signed_in_the_signing_process_and_served_valid(
        api: httpx.AsyncClient, owner: Holder, services: Services, publisher: Publisher,
        server: DnsServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(apart, "SIGN_APART_AT", 10)  # "large" here: ten RRsets
    await host(api, services, owner, {"name": "published.example"})
    for index in range(12):
        await put(api, owner, f"host{index}", "A", 300, [f"192.0.2.{index + 1}"])
    await publish_queued(services, publisher)

    assert publisher._signing is not None  # the signing process was started and used
    state = publisher._states[ORIGIN]
    assert state.signed is not None and state.signed.signatures_made == 0
    dnskeys = await dnskeys_of(server)
    response = await query(server, dns.name.from_text("host3", ORIGIN), dns.rdatatype.A)
    rrset = response.find_rrset(response.answer, dns.name.from_text("host3", ORIGIN),
                                dns.rdataclass.IN, dns.rdatatype.A)
    rrsigs = response.find_rrset(response.answer, rrset.name, dns.rdataclass.IN,
                                 dns.rdatatype.RRSIG, dns.rdatatype.A)
    dns.dnssec.validate(rrset, rrsigs, {ORIGIN: dnskeys})
    # The next edit is signed here, incrementally.
    await put(api, owner, "www", "A", 300, ["192.0.2.99"])
    await publish_queued(services, publisher)
    validated(await query(server, WWW, dns.rdatatype.A), dnskeys, dns.rdatatype.A)
    assert 0 < state.signed.signatures_made < 10


async def test_a_large_zone_is_published_with_the_gil_handed_over_more_often(
        api: httpx.AsyncClient, owner: Holder, services: Services, publisher: Publisher,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(publisher_module, "LARGE_ZONE", 10)  # "large" here: ten RRsets
    publisher.switch_while_large = 0.0002
    before = sys.getswitchinterval()
    seen: list[tuple[str, float]] = []
    publisher.prepare = lambda zone, _: seen.append(
        (zone.origin.to_text(), sys.getswitchinterval()))
    await host(api, services, owner, {"name": "published.example"})
    await publish_queued(services, publisher)
    small = len(seen)
    assert small and all(interval == before for _, interval in seen)  # not large yet
    for index in range(12):
        await put(api, owner, f"host{index}", "A", 300, [f"192.0.2.{index + 1}"])
    await publish_queued(services, publisher)

    assert len(seen) > small and all(
        interval == pytest.approx(0.0002) for _, interval in seen[small:])
    assert sys.getswitchinterval() == before


def test_large_publications_at_once_put_the_first_ones_interval_back_when_the_last_ends(
        ) -> None:
    before = sys.getswitchinterval()
    first = publisher_module._switching(0.0002)
    second = publisher_module._switching(0.0003)
    first.__enter__()
    second.__enter__()
    assert sys.getswitchinterval() == pytest.approx(0.0003)
    first.__exit__(None, None, None)
    assert sys.getswitchinterval() == pytest.approx(0.0003)  # the second still runs
    second.__exit__(None, None, None)
    assert sys.getswitchinterval() == before
    with publisher_module._switching(None):
        assert sys.getswitchinterval() == before


async def test_the_workers_are_waited_for_when_a_notify_goes_out_or_the_transfer_keys_change(
        api: httpx.AsyncClient, world: World, owner: Holder, services: Services,
        publisher: Publisher, clock: FakeClock) -> None:
    """The processes answering from copies are waited for before a NOTIFY (a secondary then
    asks any of them) and when the keys that may transfer the zone change, so that a key no
    longer allowed is refused by every one of them; not for a zone nobody is notified of."""
    waited: list[dns.name.Name] = []

    async def before_notify(origin: dns.name.Name) -> None:
        waited.append(origin)
    publisher.before_notify = before_notify
    await host(api, services, owner, {"name": "published.example"})
    await put(api, owner, "www", "A", 300, ["192.0.2.10"])
    await publish_queued(services, publisher)
    assert publisher.table.get(ORIGIN) is not None
    assert waited == []  # no secondary: nothing to wait for

    operator = await world.user("operator")
    clock.advance(timedelta(seconds=1))  # its publication is not the edit's (dedupe key)
    added = await api.post(f"{ZONES}/published.example/secondaries",
                           json={"address": "127.0.0.1", "port": 9, "tsig_key": "xfr"},
                           headers=operator.headers)
    assert added.status_code == 201, added.text
    await publish_queued(services, publisher)
    assert waited == [ORIGIN]
    await put(api, owner, "www", "A", 300, ["192.0.2.11"])
    await publish_queued(services, publisher)
    assert waited == [ORIGIN, ORIGIN]

    async with services.store.write() as session:  # its last secondary gone
        await session.execute(update(Secondary).values(deleted_at=services.clock.now()))
    await put(api, owner, "www", "A", 300, ["192.0.2.12"])
    await publish_queued(services, publisher)
    assert waited == [ORIGIN, ORIGIN, ORIGIN]
    assert not publisher.allowed_keys(ORIGIN)
    await put(api, owner, "www", "A", 300, ["192.0.2.13"])
    await publish_queued(services, publisher)
    assert waited == [ORIGIN, ORIGIN, ORIGIN]
