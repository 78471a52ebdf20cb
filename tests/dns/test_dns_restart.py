"""A restart serves what was published, at once: the signed zone and its journal are read back
from the store (no signature made), IXFR carries on from serials served before the restart,
and the edits, key changes and deletions made while stopped are caught up afterwards."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import dns.asyncquery
import dns.dnssec
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.xfr
import dns.zone
import httpx
import pytest
from conftest import World
from domains.conftest import Holder, stepped_up_owner
from sql_statements import statements
from sqlalchemy import func, select, update
from test_dns_publisher import ORIGIN, WWW, ZONES, allowing, host, publish_queued, put

from regshield.clock import FakeClock
from regshield.config import Settings
from regshield.dns import publisher as publisher_module
from regshield.dns import wireform
from regshield.dns.publisher import Publisher
from regshield.dns.server import DnsServer
from regshield.dns.tsig import make_key
from regshield.dns.zonedata import ServedZone
from regshield.dnssec.signer import signature_time
from regshield.flows.zone_keys import PUBLISH_KIND
from regshield.outbox.worker import OutboxWorker
from regshield.services import Services
from regshield.store.models import Event, OutboxItem, PublishedZone, Zone, ZoneJournal, ZoneKey


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return allowing(settings, "127.0.0.0/8")  # the secondary here is on loopback


@pytest.fixture
async def owner(world: World, api: httpx.AsyncClient, clock: FakeClock) -> Holder:
    return await stepped_up_owner(world, api, clock, await world.account("Restart Customer"))


@pytest.fixture
async def first(services: Services) -> AsyncIterator[Publisher]:
    """The publisher of the run before the restart."""
    publisher = Publisher(services, notify_timeout=0.2, notify_retries=1)
    yield publisher
    await publisher.close()


@pytest.fixture
async def second(services: Services) -> AsyncIterator[Publisher]:
    """The publisher of the process started afterwards, on the same store."""
    publisher = Publisher(services, notify_timeout=0.2, notify_retries=1)
    yield publisher
    await publisher.close()


@pytest.fixture
async def server(second: Publisher) -> AsyncIterator[DnsServer]:
    server = DnsServer(second.table, keyring=second.keyring, transfers=second.transfers)
    await server.start("127.0.0.1", 0)
    yield server
    await server.close()


def records(zone: ServedZone) -> set[str]:
    return {line for rrset in zone.rrsets for line in rrset.to_text().splitlines()}


def signatures_made(publisher: Publisher) -> int:
    state = publisher._states[ORIGIN]
    assert state.signed is not None
    return state.signed.signatures_made


async def published_zone(api: httpx.AsyncClient, world: World, services: Services,
                         owner: Holder, publisher: Publisher) -> tuple[ServedZone, str]:
    """A signed zone published, edited twice, with a secondary; returns the snapshot and the
    secondary's TSIG key (name, secret)."""
    await host(api, services, owner, {"name": "published.example", "serial_scheme": "increment"})
    for index in range(10):
        await put(api, owner, f"host{index}", "A", 300, [f"192.0.2.{index + 1}"])
    operator = await world.user("operator")
    added = (await api.post(f"{ZONES}/published.example/secondaries",
                            json={"address": "127.0.0.1", "port": 9, "tsig_key": "xfr"},
                            headers=operator.headers)).json()
    await publish_queued(services, publisher)
    await put(api, owner, "www", "A", 300, ["192.0.2.99"])
    await publish_queued(services, publisher)
    served = publisher.table.get(ORIGIN)
    assert served is not None and served.journal
    return served, f"{added['tsig_key']}:{added['tsig_secret']}"


async def test_a_restart_serves_the_published_zone_and_its_journal_without_signing(
        api: httpx.AsyncClient, world: World, owner: Holder, services: Services,
        first: Publisher, second: Publisher, server: DnsServer) -> None:
    before, tsig = await published_zone(api, world, services, owner, first)
    key = make_key(*tsig.split(":", 1))

    assert await second.restore() == 1

    restored = second.table.get(ORIGIN)
    assert restored is not None
    assert restored.serial == before.serial
    assert records(restored) == records(before)  # the same signatures, not new ones
    assert [(d.from_serial, d.to_serial) for d in restored.journal] == [
        (d.from_serial, d.to_serial) for d in before.journal]
    whole = dns.zone.Zone(ORIGIN, relativize=False)
    await dns.asyncquery.inbound_xfr(
        "127.0.0.1", whole, dns.xfr.make_query(whole, keyring=key)[0], port=server.port,
        timeout=5)
    assert whole.get_soa().serial == before.serial
    # A secondary that holds the serial before the last edit (served before the restart) is
    # sent only the difference: a copy rolled back by it asks by IXFR.
    diff = before.journal[-1]
    with whole.writer() as txn:
        for rrset in diff.added:
            txn.delete(rrset.name, rrset)
        for rrset in diff.removed:
            txn.add(rrset)
    assert whole.get_soa().serial == diff.from_serial
    ixfr, _ = dns.xfr.make_query(whole, keyring=key)
    await dns.asyncquery.inbound_xfr("127.0.0.1", whole, ixfr, port=server.port, timeout=5)
    assert whole.get_soa().serial == before.serial
    assert whole.get_rdataset(WWW, dns.rdatatype.A)[0].to_text() == "192.0.2.99"
    await second.settle()
    async with services.store.read() as session:
        kinds = (await session.execute(select(Event.summary).where(
            Event.tag == "dns:transfer:served"))).scalars().all()
    assert [k["kind"] for k in kinds] == ["AXFR", "IXFR"]

    # With no edit and no signature due, catching up leaves the zone as it was restored.
    await second.load_all()
    await second.refresh_all()
    assert second.table.get(ORIGIN) is restored

    # The next edit is signed incrementally, from the restored signatures.
    change = await put(api, owner, "host3", "A", 300, ["192.0.2.33"])
    await publish_queued(services, second)
    after = second.table.get(ORIGIN)
    assert after is not None and after.serial == change["serial"]
    assert 0 < signatures_made(second) < 10
    assert after.journal[-1].from_serial == before.serial
    dnskeys = next(r for r in after.rrsets if r.rdtype == dns.rdatatype.DNSKEY)
    for rrset in after.rrsets:
        if rrset.rdtype == dns.rdatatype.RRSIG:
            covered = next(r for r in after.rrsets if r.name == rrset.name
                           and r.rdtype == rrset.covers)
            dns.dnssec.validate(covered, rrset, {ORIGIN: dnskeys})


def counted_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The zones a publisher reads at their first question, as they are read."""
    reads: list[str] = []
    read_restored = Publisher._read_restored

    def counted(self: Publisher, published: PublishedZone, name: str, journals: Any
                ) -> ServedZone | None:
        reads.append(name)
        return read_restored(self, published, name, journals)

    monkeypatch.setattr(Publisher, "_read_restored", counted)
    return reads


async def test_a_small_zone_is_served_before_it_is_read_and_read_once(
        api: httpx.AsyncClient, world: World, owner: Holder, services: Services,
        first: Publisher, second: Publisher, server: DnsServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """At start a small zone answers as soon as DNS listens: its stored copy is read at the
    first question (or transfer) that reaches it, once."""
    before, tsig = await published_zone(api, world, services, owner, first)
    reads = counted_reads(monkeypatch)

    async def not_yet(self: Publisher, *arguments: Any) -> None:
        return None  # the background reading held back: the questions read the zone

    monkeypatch.setattr(Publisher, "_read_stored", not_yet)
    assert await second.restore() == 1
    assert second.table.is_deferred(ORIGIN) and not list(second.table)

    query = dns.message.make_query(WWW, dns.rdatatype.A, want_dnssec=True)
    answer = await dns.asyncquery.udp(query, "127.0.0.1", port=server.port, timeout=5)
    assert answer.rcode() == dns.rcode.NOERROR and answer.flags & dns.flags.AA
    assert answer.find_rrset(answer.answer, WWW, dns.rdataclass.IN, dns.rdatatype.A
                             )[0].to_text() == "192.0.2.99"
    assert reads == ["published.example."] and not second.table.is_deferred(ORIGIN)
    whole = dns.zone.Zone(ORIGIN, relativize=False)
    await dns.asyncquery.inbound_xfr(
        "127.0.0.1", whole, dns.xfr.make_query(whole, keyring=make_key(*tsig.split(":", 1)))[0],
        port=server.port, timeout=5)
    assert whole.get_soa().serial == before.serial and len(reads) == 1
    restored = second.table.get(ORIGIN)
    assert restored is not None and records(restored) == records(before)



async def test_the_background_reads_every_zone_served_unread_and_not_one_read_already(
        api: httpx.AsyncClient, world: World, owner: Holder, services: Services,
        first: Publisher, second: Publisher, monkeypatch: pytest.MonkeyPatch) -> None:
    await published_zone(api, world, services, owner, first)
    await host(api, services, owner, {"name": "second.example"})
    await publish_queued(services, first)
    other = dns.name.from_text("second.example.")
    reads = counted_reads(monkeypatch)
    assert await second.restore() == 2
    assert second.table.is_deferred(ORIGIN) and second.table.is_deferred(other)
    read_first = second.table.get(ORIGIN)  # a question before the background's turn
    assert read_first is not None and reads == ["published.example."]

    await second.settled()
    assert not second.table.deferred and len(second.table) == 2
    assert second.table.get(ORIGIN) is read_first  # not replaced by a second reading
    served, published = second.table.get(other), first.table.get(other)
    assert served is not None and published is not None
    assert served.serial == published.serial and records(served) == records(published)
    assert reads == ["published.example."]  # the background read the other in its batch
    await second.load_all()  # nothing changed while stopped: both left as they were
    assert second.table.get(ORIGIN) is read_first and second.table.get(other) is served


async def test_a_large_zone_loads_in_the_background_and_a_publication_waits_for_it(
        api: httpx.AsyncClient, world: World, owner: Holder, services: Services,
        first: Publisher, second: Publisher, server: DnsServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A zone too large to read at a question is loading at start: SERVFAIL until its copy
    is read in the background, then the serial served before; an edit's publication made
    meanwhile waits for the reading and is signed from the restored zone, not afresh."""
    before, _ = await published_zone(api, world, services, owner, first)
    monkeypatch.setattr(publisher_module, "READ_BEFORE_SERVING", 1)  # every zone is large
    change = await put(api, owner, "host4", "A", 300, ["192.0.2.44"])
    gate = threading.Event()  # the reading held until the loading zone has been asked
    restore_batch = Publisher._restore_batch

    def held(self: Publisher, *arguments: Any) -> Any:
        assert gate.wait(10)
        return restore_batch(self, *arguments)

    monkeypatch.setattr(Publisher, "_restore_batch", held)
    assert await second.restore() == 1
    assert second.table.is_loading(ORIGIN) and second.table.get(ORIGIN) is None
    query = dns.message.make_query(WWW, dns.rdatatype.A, want_dnssec=True)
    answer = await dns.asyncquery.udp(query, "127.0.0.1", port=server.port, timeout=5)
    assert answer.rcode() == dns.rcode.SERVFAIL

    publishing = asyncio.create_task(second.publish("published.example"))
    await asyncio.sleep(0.05)
    assert not publishing.done()  # it waits for the reading
    gate.set()
    publication = await publishing
    assert publication.serial == change["serial"] and not second.table.loading
    assert 0 < signatures_made(second) < 10  # the edit, from the restored signatures
    after = second.table.get(ORIGIN)
    assert after is not None and after.journal[-1].from_serial == before.serial
    answer = await dns.asyncquery.udp(query, "127.0.0.1", port=server.port, timeout=5)
    assert answer.rcode() == dns.rcode.NOERROR and answer.flags & dns.flags.AA


async def test_a_reading_that_stops_leaves_no_zone_loading_for_good(
        api: httpx.AsyncClient, world: World, owner: Holder, services: Services,
        first: Publisher, second: Publisher, monkeypatch: pytest.MonkeyPatch) -> None:
    before, _ = await published_zone(api, world, services, owner, first)
    monkeypatch.setattr(publisher_module, "READ_BEFORE_SERVING", 1)

    def broken(self: Publisher, *arguments: Any) -> Any:
        raise RuntimeError("the reading stopped")

    monkeypatch.setattr(Publisher, "_restore_batch", broken)
    await second.restore()
    await second.settled()
    assert not second.table.loading and second.table.get(ORIGIN) is None
    await second.load_all()  # signed again from its records, as a zone never published
    after = second.table.get(ORIGIN)
    assert after is not None and after.serial == before.serial
    assert records(after) - {line for line in records(after) if "RRSIG" in line} == records(
        before) - {line for line in records(before) if "RRSIG" in line}


def reads_the_zone(seen: list[str]) -> bool:
    """Whether the statements read the zone's records or unsealed a key."""
    return any("zone_rrsets" in sql or "data_keys" in sql for sql in seen)


async def test_publications_queued_for_what_is_served_read_no_record_and_unseal_no_key(
        api: httpx.AsyncClient, world: World, owner: Holder, services: Services,
        first: Publisher, second: Publisher) -> None:
    """Publications queued before a stop that the last one served (many, after a crash) find
    nothing to do from the zone's row alone; a change of anything a publication reads is
    still published, edits or not."""
    before, _ = await published_zone(api, world, services, owner, first)
    await second.restore()
    restored = second.table.get(ORIGIN)
    assert restored is not None
    # Its secondary has not been sent a NOTIFY by this process: the first publication does.
    first_one = await second.publish("published.example")
    assert first_one.notified and first_one.serial == before.serial
    for _ in range(3):
        with statements(services) as seen:
            publication = await second.publish("published.example")
        assert seen and not reads_the_zone(seen), seen
        assert (publication.serial, publication.diff, publication.notified) == (
            before.serial, None, {})
    assert second.table.get(ORIGIN) is restored  # not even taken back into the signer

    # A second secondary changes no record and moves no revision: it is published all the
    # same (its key may transfer the zone, it is sent a NOTIFY).
    operator = await world.user("operator")
    added = (await api.post(f"{ZONES}/published.example/secondaries",
                            json={"address": "127.0.0.2", "port": 9, "tsig_key": "xfr2"},
                            headers=operator.headers)).json()
    with statements(services) as seen:
        publication = await second.publish("published.example")
    assert reads_the_zone(seen)
    assert "127.0.0.2:9" in publication.notified
    assert dns.name.from_text(added["tsig_key"]) in second.allowed_keys(ORIGIN)

    # An edit is published at once, and the publication after it reads nothing again.
    change = await put(api, owner, "host3", "A", 300, ["192.0.2.33"])
    await publish_queued(services, second)
    after = second.table.get(ORIGIN)
    assert after is not None and after.serial == change["serial"]
    with statements(services) as seen:
        assert (await second.publish("published.example")).serial == change["serial"]
    assert not reads_the_zone(seen)

    # The zone's signing changed without an edit (NSEC3 instead of NSEC): signed afresh.
    async with services.store.write() as session:
        await session.execute(update(Zone).where(Zone.name == "published.example.")
                              .values(denial="nsec3"))
    denied = await second.publish("published.example")
    assert denied.serial is not None and denied.serial != change["serial"]
    assert any(r.rdtype == dns.rdatatype.NSEC3 for r in second.table.get(ORIGIN).rrsets)  # type: ignore[union-attr]


async def queue_publications(services: Services, names: list[str], times: int) -> None:
    """Publications queued as a crash leaves them: several per zone, nothing changed since."""
    now = services.clock.now()
    async with services.store.write() as session:
        session.add_all([OutboxItem(kind=PUBLISH_KIND, payload={"zone": name}, created_at=now,
                                    available_at=now) for _ in range(times) for name in names])


async def test_publications_claimed_together_read_whether_their_zones_changed_at_once(
        api: httpx.AsyncClient, owner: Holder, services: Services, first: Publisher,
        second: Publisher) -> None:
    """After a restart thousands of publications are queued, most for zones served as they
    stand: the outbox's look ahead reads the rows, keys and secondaries of every zone of a
    claimed batch in three statements, and each publication then reads nothing of its own.
    An edit made after that reading is published by its own queued publication."""
    names = [f"batch{index}.example." for index in range(6)]
    for name in names:
        await host(api, services, owner, {"name": name.rstrip(".")})
    await publish_queued(services, first)
    await second.restore()
    for name in names:  # taken into this process's signer, as the first after a start is
        await second.publish(name)
    served = {name: second.table.get(dns.name.from_text(name)) for name in names}
    await queue_publications(services, names, 3)

    worker = OutboxWorker(services, {PUBLISH_KIND: second.handle},
                          ahead={PUBLISH_KIND: second.handle_ahead})
    with statements(services) as seen:
        assert await worker.run_once() == 18
    zone_reads = [sql for sql in seen if sql.startswith("SELECT") and " FROM zones" in sql]
    key_reads = [sql for sql in seen if sql.startswith("SELECT") and " FROM zone_keys" in sql]
    # The look ahead's one read of the zones and of their keys; then the second and third
    # publication of each zone reads for itself (what was read ahead is used once).
    assert (len(zone_reads), len(key_reads)) == (1 + 12, 1 + 12), seen
    assert not reads_the_zone(seen)
    assert all(second.table.get(dns.name.from_text(name)) is served[name] for name in names)

    # An edit between the reading ahead and the publications: the stale reading lets that
    # publication pass, and the edit's own queued publication serves the change.
    await second.handle_ahead(services, [{"zone": name} for name in names])
    change = await put_in(api, owner, names[0], "www", "A", ["192.0.2.80"])
    skipped = await second.publish(names[0])
    assert skipped.serial == served[names[0]].serial  # type: ignore[union-attr]
    await OutboxWorker(services, {PUBLISH_KIND: second.handle},
                       ahead={PUBLISH_KIND: second.handle_ahead}).run_once()
    now_served = second.table.get(dns.name.from_text(names[0]))
    assert now_served is not None and now_served.serial == change["serial"]


async def put_in(api: httpx.AsyncClient, owner: Holder, zone: str, name: str, rtype: str,
                 records: list[str]) -> dict[str, Any]:
    response = await api.put(f"{ZONES}/{zone.rstrip('.')}/rrsets/{name}/{rtype}",
                             json={"ttl": 300, "records": records}, headers=owner.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_a_key_plan_step_that_leaves_the_served_keys_is_skipped_and_a_cds_is_not(
        api: httpx.AsyncClient, world: World, owner: Holder, services: Services,
        first: Publisher, second: Publisher) -> None:
    """The key sweep rewrites a zone's plan at each step (timers, the next event, whether
    the parent is awaited): a step that leaves the signing keys, the published keys and the
    CDS as they were needs no publication; a CDS published for the parent does."""
    before, _ = await published_zone(api, world, services, owner, first)
    await second.restore()
    await second.publish("published.example")  # its secondary's first NOTIFY
    async with services.store.read() as session:
        zone = (await session.execute(select(Zone).where(
            Zone.name == "published.example."))).scalar_one()
        plan = dict(zone.key_plan)
        keys = (await session.execute(select(ZoneKey).where(
            ZoneKey.zone_id == zone.id, ZoneKey.removed_at.is_(None)))).scalars().all()
    assert plan.get("data_signers") and plan.get("cds") is None
    ksk = next(key for key in keys if key.role == "ksk")

    async with services.store.write() as session:
        await session.execute(update(Zone).where(Zone.id == zone.id).values(key_plan={
            **plan, "check_parent": True, "ds_wanted": [ksk.public_id],
            "next_event_at": "2027-01-01T00:00:00+00:00"}))
        await session.execute(update(ZoneKey).where(ZoneKey.id == ksk.id).values(
            timers={**ksk.timers, "ds_seen_check": "2026-11-28T00:00:00+00:00"}))
    with statements(services) as seen:
        publication = await second.publish("published.example")
    assert not reads_the_zone(seen), seen
    assert publication.serial == before.serial

    async with services.store.write() as session:
        await session.execute(update(Zone).where(Zone.id == zone.id).values(key_plan={
            **plan, "check_parent": True, "ds_wanted": [ksk.public_id],
            "cds": {"keys": [ksk.public_id], "delete": False}}))
    with statements(services) as seen:
        publication = await second.publish("published.example")
    assert reads_the_zone(seen)
    served = second.table.get(ORIGIN)
    assert served is not None and publication.serial != before.serial
    assert {r.rdtype for r in served.rrsets if r.name == ORIGIN} >= {
        dns.rdatatype.CDS, dns.rdatatype.CDNSKEY}


async def test_a_restored_copy_without_the_digest_of_its_inputs_is_published_in_full(
        api: httpx.AsyncClient, world: World, owner: Holder, services: Services,
        first: Publisher, second: Publisher) -> None:
    """A copy stored before digests were kept (or whose digest is lost) is never taken to be
    current: the publication reads the zone."""
    await published_zone(api, world, services, owner, first)
    async with services.store.write() as session:
        await session.execute(update(PublishedZone).values(inputs=None))
    await second.restore()
    second._secondaries_notified.update(s.id for s in second._secondaries[ORIGIN])
    with statements(services) as seen:
        await second.publish("published.example")
    assert reads_the_zone(seen)


async def test_edits_made_while_stopped_are_published_after_the_restart(
        api: httpx.AsyncClient, world: World, owner: Holder, services: Services,
        first: Publisher, second: Publisher) -> None:
    before, _ = await published_zone(api, world, services, owner, first)
    change = await put(api, owner, "late", "TXT", 300, ['"edited while stopped"'])

    await second.restore()
    assert second.table.get(ORIGIN).serial == before.serial  # type: ignore[union-attr]
    await second.load_all()

    after = second.table.get(ORIGIN)
    assert after is not None and after.serial == change["serial"]
    assert any(r.rdtype == dns.rdatatype.TXT and r.name.labels[0] == b"late"
               for r in after.rrsets)
    # Only the new RRset, the SOA and the chain around them were signed.
    assert 0 < signatures_made(second) < 10
    assert after.journal[-1].from_serial == before.serial


async def test_after_a_stop_only_the_signatures_that_are_due_are_made_again(
        api: httpx.AsyncClient, world: World, owner: Holder, services: Services,
        first: Publisher, second: Publisher, clock: FakeClock) -> None:
    before, _ = await published_zone(api, world, services, owner, first)
    clock.advance(timedelta(days=1))

    await second.restore()
    await second.load_all()
    assert await second.refresh_all() == 0
    assert second.table.get(ORIGIN).serial == before.serial  # type: ignore[union-attr]

    # Ten days later every signature is in its refresh window: the zone is taken back into
    # the signer (without signing) and each signature is made again, once.
    clock.advance(timedelta(days=10))
    assert await second.refresh_all() == 1
    after = second.table.get(ORIGIN)
    assert after is not None and after.serial != before.serial
    assert signatures_made(second) == sum(
        len(r) for r in before.rrsets if r.rdtype == dns.rdatatype.RRSIG)
    window = signature_time(clock.now() + timedelta(days=14) / 4)
    assert all(rrsig.expiration > window for rrset in after.rrsets
               if rrset.rdtype == dns.rdatatype.RRSIG for rrsig in rrset)


async def test_a_zone_deleted_while_stopped_is_not_served_and_its_copy_is_dropped(
        api: httpx.AsyncClient, world: World, owner: Holder, services: Services,
        first: Publisher, second: Publisher, clock: FakeClock) -> None:
    await published_zone(api, world, services, owner, first)
    async with services.store.write() as session:
        await session.execute(update(Zone).where(Zone.name == "published.example.")
                              .values(deleted_at=clock.now()))

    assert await second.restore() == 0
    await second.load_all()
    assert second.table.get(ORIGIN) is None
    async with services.store.read() as session:
        assert (await session.execute(select(func.count()).select_from(PublishedZone))
                ).scalar_one() == 0


@pytest.mark.parametrize("damaged", [
    b"RSZ1 not zlib",  # unreadable
    wireform.encode([dns.rrset.from_text("x.published.example.", 300, "IN", "A",
                                         "192.0.2.1")]),  # readable, but no zone
])
async def test_a_damaged_copy_is_skipped_and_the_zone_signed_again_from_its_records(
        api: httpx.AsyncClient, world: World, owner: Holder, services: Services,
        first: Publisher, second: Publisher, damaged: bytes) -> None:
    before, _ = await published_zone(api, world, services, owner, first)
    async with services.store.write() as session:
        await session.execute(update(PublishedZone).values(base=damaged))

    # A small zone is served unread; its reading, at the first question, finds the damage.
    assert await second.restore() == 1 and second.table.is_deferred(ORIGIN)
    assert second.table.get(ORIGIN) is None
    assert not second.table.is_deferred(ORIGIN) and len(second.table) == 0
    await second.load_all()
    after = second.table.get(ORIGIN)
    assert after is not None and after.serial == before.serial
    assert {r.to_text() for r in after.rrsets if r.rdtype == dns.rdatatype.A
            } == {r.to_text() for r in before.rrsets if r.rdtype == dns.rdatatype.A}


async def test_the_store_keeps_a_bounded_journal_and_a_base_a_restart_can_reach(
        api: httpx.AsyncClient, world: World, owner: Holder, services: Services,
        first: Publisher, second: Publisher, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(publisher_module, "BASE_EVERY", 3)
    monkeypatch.setattr(publisher_module, "JOURNAL_LIMIT", 5)
    await published_zone(api, world, services, owner, first)
    for index in range(7):
        await put(api, owner, "www", "A", 300, [f"198.51.100.{index + 1}"])
        await publish_queued(services, first)
    before = first.table.get(ORIGIN)
    assert before is not None
    await first.settle()  # the base is written in the background
    async with services.store.read() as session:
        rows = (await session.execute(select(ZoneJournal).order_by(ZoneJournal.id))
                ).scalars().all()
        published = (await session.execute(select(PublishedZone))).scalar_one()
    assert len(rows) == 5
    assert [row.to_serial for row in rows][-1] == before.serial == published.serial
    assert published.base_serial != before.serial  # a base, then rows replayed on it
    assert any(row.id > published.base_journal_id for row in rows)

    await second.restore()
    restored = second.table.get(ORIGIN)
    assert restored is not None and records(restored) == records(before)
    assert len(restored.journal) == 5


async def test_a_change_of_the_dns_settings_while_stopped_is_published_after_the_restart(
        api: httpx.AsyncClient, world: World, owner: Holder, services: Services,
        first: Publisher) -> None:
    before, _ = await published_zone(api, world, services, owner, first)
    dns_settings = replace(services.settings.dns, hostmaster="dns-admin.registrar.test.")
    changed = replace(services, settings=replace(services.settings, dns=dns_settings))
    second = Publisher(changed, notify_timeout=0.2, notify_retries=1)
    try:
        await second.restore()
        await second.load_all()
        after = second.table.get(ORIGIN)
        assert after is not None and after.serial == before.serial + 1  # a new SOA: a new serial
        soa = next(r for r in after.rrsets if r.rdtype == dns.rdatatype.SOA)[0]
        assert soa.rname.to_text() == "dns-admin.registrar.test."
    finally:
        await second.close()
