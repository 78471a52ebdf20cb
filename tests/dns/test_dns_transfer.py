"""Zone transfers as a dnspython client sees them from regshield's DNS server: AXFR and IXFR of a
signed zone over TCP, TSIG on every message, refusals that show nothing, large zones in several
messages."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from typing import Any

import dns.asyncquery
import dns.dnssec
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
from dns_peers import build_signed_zone, running_server
from dns_secondaries import TransferLog, edited, next_serial

from regshield.dns.server import DnsServer
from regshield.dns.transfer import TransferService, diff_zones
from regshield.dns.tsig import generate_secret, make_key
from regshield.dns.zonedata import ServedZone, ZoneTable
from regshield.dnssec import KSK_FLAGS, generate_key

ORIGIN = dns.name.from_text("example.")
OTHER = dns.name.from_text("example.net.")
TRANSFER_KEY = make_key("transfer.example.", generate_secret())
OTHER_KEY = make_key("transfer.example.net.", generate_secret())
KEYS = (generate_key(flags=KSK_FLAGS), generate_key())
PEER = ("127.0.0.1", 5300)

Records = set[tuple[dns.name.Name, int, int, int, frozenset[Any]]]


def signed(serial: int, extra: str = "", origin: str = "example.") -> ServedZone:
    return build_signed_zone(origin, serial=serial, keys=KEYS, extra=extra).served


def records_of(rrsets: Any) -> Records:
    return {(r.name, r.rdtype, r.covers, r.ttl, frozenset(r)) for r in rrsets}


def zone_records(zone: dns.zone.Zone) -> Records:
    return {
        (name, rdataset.rdtype, rdataset.covers, rdataset.ttl, frozenset(rdataset))
        for name, node in zone.nodes.items() for rdataset in node.rdatasets
    }


class Primary:
    """A table of two zones, each with its own transfer key, and the service over it."""

    def __init__(self, zone: ServedZone, message_size: int = 16 * 1024) -> None:
        self.table = ZoneTable([zone, signed(1, origin="example.net.")])
        self.log = TransferLog()
        self.service = TransferService(
            self.table,
            {ORIGIN: {TRANSFER_KEY.name}, OTHER: {OTHER_KEY.name}},
            on_transfer=self.log,
            message_size=message_size,
        )
        self.keyring = {TRANSFER_KEY.name: TRANSFER_KEY, OTHER_KEY.name: OTHER_KEY}
        self.port = 0

    @property
    def zone(self) -> ServedZone:
        zone = self.table.get(ORIGIN)
        assert zone is not None
        return zone


@pytest.fixture
def primary() -> Iterator[Primary]:
    state = Primary(signed(1))
    server = DnsServer(state.table, keyring=state.keyring, transfers=state.service)
    with running_server(server):
        state.port = server.port
        yield state


async def transfer_into(zone: dns.zone.Zone, primary: Primary, key: dns.tsig.Key | None,
                        *, whole: bool) -> None:
    """AXFR (`whole`) or IXFR from the zone's own serial, applied to `zone`."""
    query, _ = dns.xfr.make_query(zone, serial=None if whole else 0, keyring=key)
    await dns.asyncquery.inbound_xfr("127.0.0.1", zone, query, port=primary.port, timeout=5)


async def axfr(primary: Primary, key: dns.tsig.Key | None,
               origin: dns.name.Name = ORIGIN) -> dns.zone.Zone:
    zone = dns.zone.Zone(origin, relativize=False)
    await transfer_into(zone, primary, key, whole=True)
    return zone


async def test_axfr_with_an_allowed_key_carries_the_whole_signed_zone(primary: Primary) -> None:
    received = await axfr(primary, TRANSFER_KEY)

    assert zone_records(received) == records_of(primary.zone.rrsets)
    www = dns.name.from_text("www.example.")
    assert received.get_rdataset(www, dns.rdatatype.NSEC) is not None
    # The signatures arrive intact: they still validate against the zone's DNSKEY set.
    dnskeys = received.find_rrset(ORIGIN, dns.rdatatype.DNSKEY)
    dns.dnssec.validate(received.find_rrset(www, dns.rdatatype.A),
                        received.find_rrset(www, dns.rdatatype.RRSIG, dns.rdatatype.A),
                        {ORIGIN: dnskeys})
    assert [(t.origin, t.key_name, t.kind, t.serial) for t in primary.log.transfers] == [
        (ORIGIN, TRANSFER_KEY.name, "AXFR", 1)]
    assert primary.log.transfers[0].peer[0] == "127.0.0.1"


async def test_an_axfr_after_a_new_serial_carries_the_new_serial(primary: Primary) -> None:
    await axfr(primary, TRANSFER_KEY)
    primary.table.put(signed(2, "www 3600 A 192.0.2.11\n"))

    received = await axfr(primary, TRANSFER_KEY)

    assert zone_records(received) == records_of(primary.zone.rrsets)
    assert [t.serial for t in primary.log.transfers] == [1, 2]


async def test_ixfr_sends_only_the_journal_from_the_secondary_serial(primary: Primary) -> None:
    held = await axfr(primary, TRANSFER_KEY)
    www = dns.name.from_text("www.example.")
    second = edited(primary.zone, 2, dns.rrset.from_text(www, 3600, "IN", "A", "192.0.2.11"),
                    KEYS[1])
    third = edited(second, 3, dns.rrset.from_text(www, 3600, "IN", "A", "192.0.2.12"), KEYS[1])
    primary.table.put(third)

    query, _ = dns.xfr.make_query(held, keyring=TRANSFER_KEY)
    wires = primary.service.respond(_received(query, primary.keyring), PEER)
    answer = [rrset for wire in wires for rrset in _parsed(wire, query).answer]
    await dns.asyncquery.inbound_xfr("127.0.0.1", held, query, port=primary.port, timeout=5)

    assert zone_records(held) == records_of(third.rrsets)
    # New SOA, then old/new SOA around each difference, then the new SOA again (RFC 1995 §4).
    serials = [rrset[0].serial for rrset in answer if rrset.rdtype == dns.rdatatype.SOA]
    assert serials == [3, 1, 2, 2, 3, 3]
    # Each removal and each addition carries the A record and two signatures, nothing else.
    others = [(r.name.to_text(), dns.rdatatype.to_text(r.rdtype), dns.rdatatype.to_text(r.covers))
              for r in answer if r.rdtype != dns.rdatatype.SOA]
    assert sorted(others) == sorted([
        ("example.", "RRSIG", "SOA"), ("www.example.", "A", "TYPE0"),
        ("www.example.", "RRSIG", "A")] * 4)
    assert (primary.log.transfers[-1].kind, primary.log.transfers[-1].serial) == ("IXFR", 3)


async def test_ixfr_with_changes_outweighing_the_zone_gets_the_whole_zone(
        primary: Primary) -> None:
    held = await axfr(primary, TRANSFER_KEY)
    # Signing the whole zone afresh twice replaces every signature twice over.
    second = next_serial(primary.zone, signed(2, "www 3600 A 192.0.2.11\n"))
    third = next_serial(second, signed(3, "www 3600 A 192.0.2.12\n"))
    primary.table.put(third)
    changes = sum(len(r) for diff in third.journal for r in (*diff.removed, *diff.added))
    assert changes > sum(len(r) for r in third.rrsets)

    await transfer_into(held, primary, TRANSFER_KEY, whole=False)

    assert zone_records(held) == records_of(third.rrsets)
    assert (primary.log.transfers[-1].kind, primary.log.transfers[-1].serial) == ("AXFR", 3)


async def test_ixfr_from_a_serial_the_journal_does_not_reach_gets_the_whole_zone(
        primary: Primary) -> None:
    held = await axfr(primary, TRANSFER_KEY)
    # Serial 5 carries no journal, so serial 1 can only be brought up to date with all of it.
    primary.table.put(signed(5, "www 3600 A 192.0.2.55\n"))

    await transfer_into(held, primary, TRANSFER_KEY, whole=False)

    assert zone_records(held) == records_of(primary.zone.rrsets)
    assert (primary.log.transfers[-1].kind, primary.log.transfers[-1].serial) == ("AXFR", 5)


def test_ixfr_from_the_current_serial_gets_the_soa_alone() -> None:
    primary = Primary(signed(1))
    held = dns.zone.from_text("@ 300 SOA ns1 hostmaster 1 7200 900 1209600 300\n@ 300 NS ns1\n",
                              origin=ORIGIN, relativize=False)
    query, _ = dns.xfr.make_query(held, keyring=TRANSFER_KEY)

    wires = primary.service.respond(_received(query, primary.keyring), PEER)

    assert len(wires) == 1
    answer = _parsed(wires[0], query).answer
    assert [(r.rdtype, r[0].serial) for r in answer] == [(dns.rdatatype.SOA, 1)]


async def test_axfr_without_tsig_is_refused_and_shows_nothing(primary: Primary) -> None:
    with pytest.raises(dns.xfr.TransferError) as refused:
        await axfr(primary, None)
    assert refused.value.rcode == dns.rcode.REFUSED
    assert primary.log.transfers == []


async def test_axfr_with_a_key_allowed_only_for_another_zone_is_refused(
        primary: Primary) -> None:
    with pytest.raises(dns.xfr.TransferError) as refused:
        await axfr(primary, OTHER_KEY)
    assert refused.value.rcode == dns.rcode.REFUSED
    # The same key does transfer the zone it is allowed for.
    assert (await axfr(primary, OTHER_KEY, OTHER)).get_soa() is not None
    assert [t.origin for t in primary.log.transfers] == [OTHER]


async def test_axfr_signed_with_a_wrong_secret_gets_no_zone_data(primary: Primary) -> None:
    forged = make_key(TRANSFER_KEY.name, generate_secret())
    zone = dns.zone.Zone(ORIGIN, relativize=False)
    with pytest.raises(dns.tsig.PeerBadSignature):
        await transfer_into(zone, primary, forged, whole=True)
    assert zone_records(zone) == set()
    assert primary.log.transfers == []


def test_an_unverified_tsig_is_refused_by_the_service_itself() -> None:
    """A query parsed without the keyring names a key, but nothing proved it holds the key."""
    primary = Primary(signed(1))
    query = dns.message.make_query(ORIGIN, dns.rdatatype.AXFR)
    query.use_tsig(TRANSFER_KEY)
    unverified = dns.message.from_wire(query.to_wire(), keyring=False)
    assert unverified.had_tsig

    wires = primary.service.respond(unverified, PEER)

    answer = dns.message.from_wire(wires[0], keyring=False)
    assert answer.rcode() == dns.rcode.REFUSED and answer.answer == []


def test_a_key_of_another_algorithm_is_refused_even_when_allowed() -> None:
    sha1 = dns.tsig.Key("legacy.example.", TRANSFER_KEY.secret, dns.tsig.HMAC_SHA1)
    service = TransferService(ZoneTable([signed(1)]), {ORIGIN: {sha1.name}})
    query = dns.message.make_query(ORIGIN, dns.rdatatype.AXFR)
    query.use_tsig(sha1)

    wires = service.respond(_received(query, {sha1.name: sha1}), PEER)

    answer = _parsed(wires[0], query)
    assert answer.rcode() == dns.rcode.REFUSED and answer.answer == []


def test_a_source_outside_the_allowed_networks_is_refused() -> None:
    service = TransferService(ZoneTable([signed(1)]), {ORIGIN: {TRANSFER_KEY.name}},
                              allowed_networks=[ipaddress.ip_network("192.0.2.0/24")])
    query = dns.message.make_query(ORIGIN, dns.rdatatype.AXFR)
    query.use_tsig(TRANSFER_KEY)
    received = _received(query, {TRANSFER_KEY.name: TRANSFER_KEY})

    outside = service.respond(received, ("127.0.0.1", 5300))
    inside = service.respond(received, ("192.0.2.7", 5300))

    assert _parsed(outside[0], query).rcode() == dns.rcode.REFUSED
    assert _parsed(inside[0], query).answer[0].rdtype == dns.rdatatype.SOA


async def test_a_large_zone_comes_in_several_signed_messages_under_the_size() -> None:
    hosts = "".join(f"host{n} 3600 IN A 198.51.100.{n % 250 + 1}\n" for n in range(1500))
    # One RRset larger than a TCP message can carry: it goes out a record at a time.
    texts = "".join(f'many 3600 IN TXT "{n:04} {"x" * 120}"\n' for n in range(600))
    primary = Primary(signed(1, hosts + texts), message_size=8 * 1024)
    query = dns.message.make_query(ORIGIN, dns.rdatatype.AXFR)
    query.use_tsig(TRANSFER_KEY)

    wires = primary.service.respond(_received(query, primary.keyring), PEER)

    assert len(wires) > 10
    # Only the TXT set too big for 8 KiB is sent in larger messages: about 80 KB, in two.
    assert len([wire for wire in wires if len(wire) > 8 * 1024 + 200]) == 2
    assert max(len(wire) for wire in wires) <= 65535
    server = DnsServer(primary.table, keyring=primary.keyring, transfers=primary.service)
    with running_server(server):
        primary.port = server.port
        received = await axfr(primary, TRANSFER_KEY)
    # dnspython checked every message's TSIG, each chained to the one before.
    assert zone_records(received) == records_of(primary.zone.rrsets)


def test_a_zone_diff_lists_the_records_removed_and_added() -> None:
    before = signed(1, "old 3600 TXT \"gone\"\n")
    after = signed(2, "www 3600 A 192.0.2.11\n")

    diff = diff_zones(before, after)

    assert (diff.from_serial, diff.to_serial) == (1, 2)
    assert diff.removed[0][0].serial == 1 and diff.added[0][0].serial == 2
    unsigned = {dns.rdatatype.A, dns.rdatatype.TXT}
    assert [r.to_text() for r in diff.removed if r.rdtype in unsigned] == [
        'old.example. 3600 IN TXT "gone"']
    assert [r.to_text() for r in diff.added if r.rdtype in unsigned] == [
        "www.example. 3600 IN A 192.0.2.11"]


def _received(query: dns.message.Message,
              keyring: dict[dns.name.Name, dns.tsig.Key]) -> dns.message.Message:
    """The query as the server hands it over: parsed from the wire, its TSIG verified."""
    return dns.message.from_wire(query.to_wire(), keyring=keyring)


def _parsed(wire: bytes, query: dns.message.Message) -> dns.message.Message:
    return dns.message.from_wire(wire, keyring=query.keyring, request_mac=query.mac,
                                 one_rr_per_rrset=True)


def test_a_transfer_key_is_hmac_sha256_with_a_full_length_secret() -> None:
    key = make_key("k.example.", generate_secret())
    assert key.algorithm == dns.tsig.HMAC_SHA256 and len(key.secret) == 32
    assert generate_secret() != generate_secret()
    with pytest.raises(ValueError, match="at least 32"):
        make_key("k.example.", "c2hvcnQ=")
    with pytest.raises(ValueError, match="base64"):
        make_key("k.example.", "not base64!")
