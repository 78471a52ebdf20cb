"""DNS workers: child processes answer on the same port as the main one (SO_REUSEPORT), every
one from the zones, keys and allow-list the main process publishes, and none outlives it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import dns.asyncquery
import dns.exception
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset
import dns.tsig
import dns.xfr
import dns.zone
import pytest
import uvloop
from dns_peers import LOOPBACK, free_port
from prometheus_client import CollectorRegistry

from regshield import processes
from regshield.api.routers.metrics import DnsCollector
from regshield.dns.rrl import RateLimiter
from regshield.dns.server import DnsServer
from regshield.dns.transfer import TransferService, diff_zones
from regshield.dns.tsig import generate_secret, make_key
from regshield.dns.workers import DnsWorkers, WatchedTable, apply_diffs, fingerprint
from regshield.dns.zonedata import ServedZone
from regshield.dnssec import KSK_FLAGS, generate_key
from regshield.dnssec.incremental import SignedZone

ORIGIN = dns.name.from_text("workers.example.")
WWW = dns.name.from_text("www.workers.example.")
NOW = datetime(2026, 6, 1, tzinfo=UTC)
KEYS = (generate_key(flags=KSK_FLAGS), generate_key())
TRANSFER_KEY = make_key("transfer.workers.example.", generate_secret())
QUERIES = 120  # each from a socket of its own, so from as many source ports


def zone_rrsets(origin: dns.name.Name, serial: int, address: str) -> list[dns.rrset.RRset]:
    text = f"""
@ 3600 IN SOA ns1.workers.example. hostmaster.workers.example. {serial} 3600 600 86400 300
@ 3600 IN NS ns1.workers.example.
ns1 3600 IN A 192.0.2.1
www 300 IN A {address}
mail 300 IN MX 10 ns1.workers.example.
"""
    zone = dns.zone.from_text(text, origin=origin, relativize=False)
    return [dns.rrset.from_rdata_list(name, rdataset.ttl, list(rdataset))
            for name, node in zone.nodes.items() for rdataset in node.rdatasets]


def records_of(rrsets: Iterable[dns.rrset.RRset]) -> set[tuple[Any, ...]]:
    return {(r.name, r.rdtype, r.covers, r.ttl, frozenset(r)) for r in rrsets}


class Primary:
    """The main process's side: a signed zone in a watched table, its own server, and the
    workers fed from that table."""

    def __init__(self) -> None:
        self.table = WatchedTable()
        self.signed = SignedZone(zone_rrsets(ORIGIN, 1, "192.0.2.80"), KEYS, NOW)
        self.journal: list[Any] = []
        self.table.put(self.signed.served())
        self.keyring = {TRANSFER_KEY.name: TRANSFER_KEY}
        self.allowed = {ORIGIN: [TRANSFER_KEY.name]}
        # A limiter that would drop nearly everything but the allow-listed loopback.
        self.rate_limiter = RateLimiter(1, slip=0, allow=["127.0.0.0/8"])
        self.transfers_served: list[tuple[Any, ...]] = []
        self.server = DnsServer(
            self.table, keyring=self.keyring, rrl=self.rate_limiter,
            transfers=TransferService(self.table, self.allowed))
        self.workers: DnsWorkers | None = None

    async def start(self, count: int = 2) -> DnsWorkers:
        await self.server.start(LOOPBACK, free_port(), reuse_port=True)
        self.workers = DnsWorkers(
            count, self.table, keyring=self.keyring,
            allowed_keys=lambda origin: self.allowed.get(origin, []),
            rate_limiter=self.rate_limiter,
            on_transfer=lambda *served: self.transfers_served.append(served))
        await self.workers.start(LOOPBACK, self.server.port)
        return self.workers

    def change(self, address: str) -> ServedZone:
        """Point www at `address`: a new serial, re-signed, with its journal entry."""
        www = dns.rrset.from_text(WWW, 300, "IN", "A", address)
        self.journal.append(self.signed.apply(NOW, replace=[www]))
        served = self.signed.served(tuple(self.journal))
        self.table.put(served)
        return served

    async def close(self) -> None:
        if self.workers is not None:
            await self.workers.close()
        await self.server.close()


@pytest.fixture
async def primary() -> AsyncIterator[Primary]:
    running = Primary()
    try:
        yield running
    finally:
        await running.close()


async def ask_from_many_ports(port: int, name: dns.name.Name = WWW,
                              rdtype: int = dns.rdatatype.A, count: int = QUERIES,
                              wait: float = 2.0) -> list[dns.message.Message | None]:
    """`count` queries, each from a new socket; None for one not answered within `wait`."""
    async def one() -> dns.message.Message | None:
        query = dns.message.make_query(name, rdtype)
        try:
            return await dns.asyncquery.udp(query, LOOPBACK, port=port, timeout=wait)
        except dns.exception.Timeout:
            return None
    return list(await asyncio.gather(*(one() for _ in range(count))))


def addresses(response: dns.message.Message | None) -> list[str]:
    assert response is not None, "a query was not answered"
    assert response.rcode() == dns.rcode.NOERROR, dns.rcode.to_text(response.rcode())
    return [rdata.to_text() for rrset in response.answer
            if rrset.rdtype == dns.rdatatype.A for rdata in rrset]


async def test_queries_from_many_source_ports_reach_every_process(primary: Primary) -> None:
    workers = await primary.start(count=3)

    responses = await ask_from_many_ports(primary.server.port)

    assert all(addresses(response) == ["192.0.2.80"] for response in responses)
    children = await workers.counters()
    assert sorted(c.pid for c in children) == sorted(workers.pids)
    assert len(children) == 2 and os.getpid() not in workers.pids
    answered = [primary.rate_limiter.counters.answered, *(c.answered for c in children)]
    # Every process took a share, and every answer came from one of them. The limiter allows
    # one response a second: the children answered all theirs, so the allow-list reached them.
    assert all(share > 0 for share in answered), answered
    assert sum(answered) == QUERIES
    assert all(c.dropped == 0 and c.slipped == 0 for c in children)


async def test_metrics_add_up_the_queries_of_every_process(primary: Primary) -> None:
    workers = await primary.start(count=3)
    responses = await ask_from_many_ports(primary.server.port)
    assert all(addresses(response) == ["192.0.2.80"] for response in responses)

    children = await workers.counters()
    assert len(children) == 2 and all(c.figures.udp[dns.rcode.NOERROR] > 0 for c in children)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DnsCollector(SimpleNamespace(dns_servers=[primary.server],
                                                   other_processes=None),
                                   [c.figures for c in children]))
    found = {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
             for family in registry.collect() for sample in family.samples}

    # Every query, whichever process answered it (the main one had its share too).
    assert 0 < primary.server.counters.udp[dns.rcode.NOERROR] < QUERIES
    assert found["regshield_dns_queries_total",
                 (("rcode", "NOERROR"), ("transport", "udp"))] == QUERIES
    assert found["regshield_dns_rrl_responses_total", (("action", "answered"),)] == QUERIES
    assert found["regshield_dns_answer_cache_entries", ()] == (
        primary.server.answer_cache_size + sum(c.figures.cache_entries for c in children))


async def test_a_new_serial_is_served_by_every_process_once_caught_up(primary: Primary) -> None:
    workers = await primary.start(count=3)

    served = primary.change("192.0.2.81")
    assert await workers.caught_up()

    responses = await ask_from_many_ports(primary.server.port)
    assert all(addresses(response) == ["192.0.2.81"] for response in responses)
    soas = await ask_from_many_ports(primary.server.port, ORIGIN, dns.rdatatype.SOA)
    assert {response.answer[0][0].serial for response in soas if response} == {served.serial}
    assert all(response is not None for response in soas)


async def test_a_change_reaches_the_workers_on_its_own_within_a_second(
        primary: Primary) -> None:
    await primary.start()

    primary.change("192.0.2.82")  # nobody waits for the workers: the table's watch sends it
    deadline = time.monotonic() + 1.0
    while True:
        responses = await ask_from_many_ports(primary.server.port, count=40)
        if all(addresses(response) == ["192.0.2.82"] for response in responses):
            break
        assert time.monotonic() < deadline, "a worker still answers the old serial"
        await asyncio.sleep(0.05)


async def test_a_journal_entry_that_does_not_lead_to_the_snapshot_gets_the_zone_sent_whole(
        primary: Primary) -> None:
    workers = await primary.start()
    honest = primary.change("192.0.2.89")
    assert await workers.caught_up()
    # A snapshot whose last journal entry says less than what changed (www moved too): a
    # child that applied the entry alone would serve www at its old address.
    www = dns.rrset.from_text(WWW, 300, "IN", "A", "203.0.113.9")
    primary.signed.apply(NOW, replace=[www])
    moved = primary.signed.served()
    ftp = dns.rrset.from_text("ftp.workers.example.", 300, "IN", "A", "192.0.2.21")
    entry = diff_zones(honest, replace_rrset(honest, ftp, moved.serial))
    primary.table.put(ServedZone(ORIGIN, moved.serial, moved.rrsets, (entry,)))

    deadline = time.monotonic() + 5
    while True:
        responses = await ask_from_many_ports(primary.server.port, count=40)
        if all(addresses(response) == ["203.0.113.9"] for response in responses):
            break
        assert time.monotonic() < deadline, "a child kept serving what the entry said"
        await asyncio.sleep(0.1)


def replace_rrset(zone: ServedZone, rrset: dns.rrset.RRset, serial: int) -> ServedZone:
    """`zone` with `rrset` added and its SOA at `serial` (signatures left as they are)."""
    soa = zone.soa.copy()
    soa.clear()
    soa.add(zone.soa[0].replace(serial=serial), zone.soa.ttl)
    kept = [r for r in zone.rrsets if r.rdtype != dns.rdatatype.SOA]
    return ServedZone(zone.origin, serial, (soa, *kept, rrset))


async def test_a_removed_zone_is_refused_by_every_process(primary: Primary) -> None:
    workers = await primary.start()

    primary.table.remove(ORIGIN)
    assert await workers.caught_up()

    responses = await ask_from_many_ports(primary.server.port, count=60)
    assert all(r is not None and r.rcode() == dns.rcode.REFUSED for r in responses)


async def test_a_worker_that_died_is_restarted_with_every_zone(primary: Primary) -> None:
    workers = await primary.start()
    [first] = workers.pids
    primary.change("192.0.2.83")
    assert await workers.caught_up()

    os.kill(first, signal.SIGKILL)
    deadline = time.monotonic() + 15
    while workers.pids in ([], [first]):
        assert time.monotonic() < deadline, "the worker was not restarted"
        await asyncio.sleep(0.1)
    [second] = workers.pids
    assert second != first
    assert await workers.caught_up()

    responses = await ask_from_many_ports(primary.server.port)
    assert all(addresses(response) == ["192.0.2.83"] for response in responses)
    [restarted] = await workers.counters()
    assert restarted.pid == second and restarted.answered > 0  # it answered its share


async def test_a_stopped_child_holds_up_nothing_and_is_replaced_once_it_lags_too_far(
        primary: Primary, monkeypatch: pytest.MonkeyPatch) -> None:
    workers = await primary.start()
    [stopped] = workers.pids
    workers.catch_up_seconds = 0.5
    os.kill(stopped, signal.SIGSTOP)
    try:
        primary.change("192.0.2.90")
        started = time.monotonic()
        assert not await workers.caught_up()  # NOTIFY would go out after half a second
        assert time.monotonic() - started < 2

        # A zone far larger than the socket buffers waits unread; the next batch finds it.
        monkeypatch.setattr(processes, "MAX_QUEUED_BYTES", 1)
        large = dns.name.from_text("large.example.")
        primary.table.put(ServedZone(large, 1, tuple(
            # Random text: the zone goes compressed (dns/wireform.py), and must stay large.
            dns.rrset.from_text(f"host{index}.large.example.", 300, "IN", "TXT",
                                os.urandom(100).hex())
            for index in range(5_000))))
        assert not await workers.caught_up()
        primary.change("192.0.2.91")
        await workers.caught_up()  # finds the zone still queued: the child is killed
        monkeypatch.undo()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(stopped, signal.SIGCONT)
    deadline = time.monotonic() + 15
    while workers.pids in ([], [stopped]):
        assert time.monotonic() < deadline, "the child that stopped reading was not replaced"
        await asyncio.sleep(0.1)
    assert exited(stopped)
    workers.catch_up_seconds = 2
    assert await workers.caught_up()
    responses = await ask_from_many_ports(primary.server.port)
    assert all(addresses(response) == ["192.0.2.91"] for response in responses)


async def test_zones_published_before_a_worker_starts_are_served_by_it(
        primary: Primary) -> None:
    # Three serials and a second zone exist before the workers start.
    for address in ("192.0.2.84", "192.0.2.85", "192.0.2.86"):
        primary.change(address)
    other = dns.name.from_text("other.example.")
    primary.table.put(ServedZone(other, 7, tuple(zone_rrsets(other, 7, "198.51.100.7"))))

    workers = await primary.start(count=3)

    www = await ask_from_many_ports(primary.server.port)
    assert all(addresses(response) == ["192.0.2.86"] for response in www)
    elsewhere = await ask_from_many_ports(primary.server.port,
                                          dns.name.from_text("www.other.example."))
    assert all(addresses(response) == ["198.51.100.7"] for response in elsewhere)
    assert all(c.answered > 0 for c in await workers.counters())


def test_a_zone_larger_than_the_pipes_buffer_reaches_workers_started_on_uvloop() -> None:
    # `serve` runs on uvloop, which makes the descriptors it watches non-blocking: a zone sent
    # whole to a new child (megabytes) once failed half-written, and the child never started.
    big = dns.name.from_text("big.workers.example.")
    text = "\n".join(
        ["@ 3600 IN SOA ns1 hostmaster 1 3600 600 86400 300", "@ 3600 IN NS ns1",
         "ns1 3600 IN A 192.0.2.1"]
        + [f"host{index} 300 IN TXT \"{'x' * 100} {index}\"" for index in range(20_000)])
    zone = dns.zone.from_text(text, origin=big, relativize=False)
    rrsets = tuple(dns.rrset.from_rdata_list(name, rdataset.ttl, list(rdataset))
                   for name, node in zone.nodes.items() for rdataset in node.rdatasets)

    async def run() -> list[list[str]]:
        table = WatchedTable([ServedZone(big, 1, rrsets)])
        server = DnsServer(table)
        await server.start(LOOPBACK, free_port(), reuse_port=True)
        workers = DnsWorkers(2, table, keyring={}, allowed_keys=lambda origin: [],
                             rate_limiter=None)
        try:
            await workers.start(LOOPBACK, server.port)
            answers = await ask_from_many_ports(
                server.port, dns.name.from_text("host19999.big.workers.example."),
                dns.rdatatype.TXT)
            return [[rdata.to_text() for rrset in response.answer for rdata in rrset]
                    for response in answers if response is not None]
        finally:
            await workers.close()
            await server.close()

    answered = uvloop.run(run())
    assert len(answered) == QUERIES
    assert all(len(texts) == 1 and "19999" in texts[0] for texts in answered)


async def test_every_process_serves_transfers_with_the_journal_and_reports_them(
        primary: Primary) -> None:
    workers = await primary.start(count=3)
    before = primary.signed.serial
    primary.change("192.0.2.87")
    assert await workers.caught_up()
    latest = primary.change("192.0.2.88")  # reaches the children as a journal entry
    assert await workers.caught_up()

    async def transfer(rdtype: int) -> set[tuple[Any, ...]]:
        query, _ = dns.xfr.make_query(dns.zone.Zone(ORIGIN), serial=before,
                                      keyring={TRANSFER_KEY.name: TRANSFER_KEY},
                                      keyname=TRANSFER_KEY.name) \
            if rdtype == dns.rdatatype.IXFR else (dns.message.make_query(ORIGIN, rdtype), None)
        if rdtype == dns.rdatatype.AXFR:
            query.use_tsig({TRANSFER_KEY.name: TRANSFER_KEY}, keyname=TRANSFER_KEY.name)
        response = await dns.asyncquery.tcp(query, LOOPBACK, port=primary.server.port,
                                            timeout=5)
        assert response.rcode() == dns.rcode.NOERROR
        assert response.had_tsig
        return records_of(response.answer)

    axfrs = await asyncio.gather(*(transfer(dns.rdatatype.AXFR) for _ in range(24)))
    whole = records_of(latest.rrsets)
    assert all(records == whole for records in axfrs)
    ixfrs = await asyncio.gather(*(transfer(dns.rdatatype.IXFR) for _ in range(24)))
    assert all(records == ixfrs[0] for records in ixfrs)
    assert ("192.0.2.88" in {r.to_text() for rrset in latest.rrsets for r in rrset})
    # Transfers a child served are reported to the main process, which records them.
    await asyncio.sleep(0.2)
    reported = primary.transfers_served
    assert reported, "no child served a transfer of the 48"
    assert {(origin, key, serial) for origin, _, key, _, serial in reported} == {
        (ORIGIN, TRANSFER_KEY.name, latest.serial)}
    assert {kind for *_, kind, _ in reported} <= {"AXFR", "IXFR"}


async def test_a_new_secondary_key_reaches_every_process_before_notify_without_a_new_serial(
        primary: Primary) -> None:
    workers = await primary.start(count=3)
    newcomer = make_key("newcomer.workers.example.", generate_secret())

    async def axfr() -> int:
        query = dns.message.make_query(ORIGIN, dns.rdatatype.AXFR)
        query.use_tsig({newcomer.name: newcomer}, keyname=newcomer.name)
        try:
            response = await dns.asyncquery.tcp(query, LOOPBACK, port=primary.server.port,
                                                timeout=5)
        except dns.tsig.PeerBadKey:
            return dns.rcode.NOTAUTH  # NOTAUTH with BADKEY: the key was not known there
        return response.rcode()

    assert dns.rcode.NOERROR not in await asyncio.gather(*(axfr() for _ in range(12)))
    # What the publisher does for a secondary added to a zone that has not changed: the key
    # joins the keyring and the zone's allowed keys, and NOTIFY waits for the children.
    primary.keyring[newcomer.name] = newcomer
    primary.allowed[ORIGIN] = [TRANSFER_KEY.name, newcomer.name]
    assert await workers.caught_up(ORIGIN)

    assert set(await asyncio.gather(*(axfr() for _ in range(24)))) == {dns.rcode.NOERROR}


def test_applying_journal_entries_rebuilds_the_new_serial_exactly() -> None:
    signed = SignedZone(zone_rrsets(ORIGIN, 1, "192.0.2.80"), KEYS, NOW)
    old = signed.served()
    www = dns.rrset.from_text(WWW, 600, "IN", "A", "192.0.2.90", "192.0.2.91")  # new TTL
    mail = (dns.name.from_text("mail.workers.example."), dns.rdatatype.MX)
    first = signed.apply(NOW, replace=[www], delete=[mail])
    ftp = dns.rrset.from_text("ftp.workers.example.", 300, "IN", "AAAA", "2001:db8::21")
    second = signed.apply(NOW, replace=[ftp, dns.rrset.from_text(WWW, 600, "IN", "A",
                                                                   "192.0.2.91")])
    new = signed.served((first, second))

    rebuilt = apply_diffs(old, [first, second], journal_length=1)

    assert records_of(rebuilt.rrsets) == records_of(new.rrsets)
    assert fingerprint(rebuilt) == fingerprint(new)
    assert rebuilt.serial == new.serial and rebuilt.journal == (second,)
    with pytest.raises(ValueError, match="starts at"):
        apply_diffs(old, [second], journal_length=1)


CHILD_SCRIPT = textwrap.dedent("""
    import asyncio, sys
    from regshield.dns.rrl import RateLimiter
    from regshield.dns.server import DnsServer
    from regshield.dns.workers import DnsWorkers, WatchedTable

    async def main():
        table = WatchedTable()
        server = DnsServer(table)
        await server.start("127.0.0.1", int(sys.argv[1]), reuse_port=True)
        workers = DnsWorkers(3, table, keyring={}, allowed_keys=lambda origin: (),
                             rate_limiter=RateLimiter())
        await workers.start("127.0.0.1", server.port)
        print(" ".join(map(str, workers.pids)), flush=True)
        await asyncio.sleep(600)

    asyncio.run(main())
""")


def exited(pid: int) -> bool:
    """Gone, or a zombie waiting for whoever inherited it to reap it."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")


def test_workers_exit_when_the_main_process_is_killed() -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", CHILD_SCRIPT, str(free_port())],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        children = [int(pid) for pid in line.split()]
        assert len(children) == 2, process.stderr.read() if process.stderr else line
        assert not any(exited(pid) for pid in children)

        process.kill()  # SIGKILL: no cleanup of its own runs
        process.wait(5)

        deadline = time.monotonic() + 5
        while not all(exited(pid) for pid in children):
            assert time.monotonic() < deadline, "a worker outlived the main process"
            time.sleep(0.05)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)
