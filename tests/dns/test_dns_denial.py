"""Negative answers and referrals built from a proof, not per question.

The fast path answers a question that gets no data from the proof's pre-rendered sections;
each response must be the very one the general path (dnspython all the way) renders, for
names of every kind: missing, below an empty non-terminal, under a wildcard, below a
delegation, with existing types missing, in any case, with and without EDNS and DO.
"""

from __future__ import annotations

import random
import socket
import struct
from collections.abc import Iterator

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import pytest
from dns_peers import LOOPBACK, SignedZone, build_signed_zone, running_server

from regshield.dns.server import DnsServer
from regshield.dns.zonedata import ServedZone, ZoneTable

ORIGIN = "regshield.test."
# Where random labels go: the apex, existing names, empty non-terminals, the wildcard's
# parent, below delegations (and their glue), the wildcard itself, a name under a '*' label.
PARENTS = ("", "www", "a", "ent.a", "deep.ent.a", "wild", "*.wild", "sub", "ns.sub",
           "insecure", "ns.insecure", "alias", "big", "ns1", "x.*.wild")
QTYPES = ("A", "AAAA", "MX", "TXT", "DS", "NS", "SOA", "NSEC", "NSEC3", "RRSIG", "CNAME",
          "DNSKEY", "CAA", "TYPE99", "TYPE127")


@pytest.fixture(scope="module", params=["nsec", "nsec3"])
def zone(request: pytest.FixtureRequest) -> SignedZone:
    return build_signed_zone(nsec=request.param)


@pytest.fixture(scope="module")
def unsigned_zone() -> SignedZone:
    """The test zone without its DNSSEC records: DO asked, nothing to prove with."""
    signed = build_signed_zone(nsec="nsec")
    dnssec_types = {dns.rdatatype.RRSIG, dns.rdatatype.NSEC, dns.rdatatype.NSEC3,
                    dns.rdatatype.NSEC3PARAM, dns.rdatatype.DNSKEY}
    rrsets = tuple(rrset for rrset in signed.served.rrsets if rrset.rdtype not in dnssec_types)
    return SignedZone(ServedZone(signed.origin, 1, rrsets), ())


def random_label(chooser: random.Random) -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-"
    return "".join(chooser.choice(alphabet) for _ in range(chooser.randint(1, 20)))


def random_names(chooser: random.Random, count: int) -> Iterator[str]:
    for _ in range(count):
        parent = chooser.choice(PARENTS)
        labels = [random_label(chooser) for _ in range(chooser.choice((0, 1, 1, 1, 2)))]
        name = ".".join([*labels, parent, ORIGIN] if parent else [*labels, ORIGIN])
        # Mixed case: the proof and the rendering fold case, the question keeps it.
        yield "".join(c.upper() if chooser.random() < 0.3 else c for c in name)


def query_wire(name: str, rdtype: str, *, edns: bool, dnssec: bool, payload: int,
               query_id: int) -> bytes:
    query = dns.message.make_query(name, rdtype, use_edns=0 if edns else False,
                                   want_dnssec=dnssec, payload=payload)
    query.id = query_id
    if query_id % 3 == 0:
        query.flags |= dns.flags.CD
    if query_id % 5 == 0:
        query.flags &= ~dns.flags.RD
    return query.to_wire()


def same_response(ours: bytes | None, general: bytes | None) -> bool:
    """Equal but for the order of records within an RRset (both paths shuffle it): the same
    length (so the same truncation), header, question and RRsets, section by section."""
    if ours is None or general is None:
        return ours is general
    first, second = dns.message.from_wire(ours), dns.message.from_wire(general)
    return (len(ours) == len(general) and ours[:12] == general[:12] and first == second
            and [first.section_count(section) for section in range(4)]
            == [second.section_count(section) for section in range(4)]
            and first.opt == second.opt)


def compare_paths(zone: SignedZone, names: int, seed: int) -> DnsServer:
    """Ask `names` random questions; each fast answer must equal the general path's, octet
    for octet. Returns the server, its caches as the questions left them."""
    chooser = random.Random(seed)
    server = DnsServer(ZoneTable([zone.served]))
    fast = 0
    for number, name in enumerate(random_names(chooser, names)):
        edns = chooser.random() < 0.8
        dnssec = edns and chooser.random() < 0.7
        payload = chooser.choice((512, 1232, 4096))
        udp = chooser.random() < 0.8
        wire = query_wire(name, chooser.choice(QTYPES), edns=edns, dnssec=dnssec,
                          payload=payload, query_id=number)
        before = len(server._cache)
        ours = server._respond(wire, udp=udp)
        general = server._respond_general(wire, udp)
        assert same_response(ours, general), (name, dns.message.from_wire(wire).question)
        fast += len(server._cache) == before
    assert fast > names // 2  # most of these questions get no data: the proof path answered
    return server


def test_proof_answers_equal_the_general_answers_on_random_names(zone: SignedZone) -> None:
    compare_paths(zone, 1500, seed=12)


def test_proof_answers_equal_the_general_answers_in_an_unsigned_zone(
    unsigned_zone: SignedZone,
) -> None:
    compare_paths(unsigned_zone, 500, seed=13)


def test_a_name_holding_a_denial_record_owner_below_the_encloser_takes_the_general_path(
    zone: SignedZone,
) -> None:
    # x.<an NSEC3 owner> or x.<SOA rname>: the general renderer points into the question
    # there; the proof's sections cannot, so the response comes from the general path.
    server = DnsServer(ZoneTable([zone.served]))
    owners = [rrset.name for rrset in zone.served.rrsets
              if rrset.rdtype in (dns.rdatatype.NSEC3, dns.rdatatype.NSEC)]
    names = [f"x.{owner}" for owner in owners[:20]] + [f"x.hostmaster.{ORIGIN}"]
    for number, name in enumerate(names):
        wire = query_wire(name, "A", edns=True, dnssec=True, payload=1232, query_id=number)
        assert same_response(server._respond(wire, udp=True), server._respond_general(wire, True))


def test_a_flood_of_new_names_keeps_one_cached_answer_per_proof(zone: SignedZone) -> None:
    server = DnsServer(ZoneTable([zone.served]))
    denial_records = sum(1 for rrset in zone.served.rrsets
                         if rrset.rdtype in (dns.rdatatype.NSEC, dns.rdatatype.NSEC3))
    chooser = random.Random(7)
    flood = 3000
    with running_server(server) as running, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect((LOOPBACK, running.port))
        sock.settimeout(2)
        kept_before = running.answer_cache_size  # the harness's readiness question
        rcodes = set()
        for window in range(0, flood, 20):  # a window in flight at a time: within socket buffers
            for number in range(window, window + 20):
                name = f"{random_label(chooser)}-{number}.{ORIGIN}"
                sock.send(query_wire(name, "A", edns=True, dnssec=True, payload=1232,
                                     query_id=number))
            for _ in range(20):
                response = dns.message.from_wire(sock.recv(65535))
                rcodes.add(response.rcode())
                assert response.flags & dns.flags.AA
                assert any(rrset.rdtype == dns.rdatatype.SOA for rrset in response.authority)
        assert rcodes == {dns.rcode.NXDOMAIN}
        # Every name was new: one rendering per proof, none per question.
        assert running.answer_cache_size - kept_before <= denial_records
        assert running.cache_hits >= flood - denial_records


def test_a_proof_answer_too_big_for_512_octets_is_truncated_like_the_general_one(
    zone: SignedZone,
) -> None:
    server = DnsServer(ZoneTable([zone.served]))
    wire = query_wire(f"nothing-here.{ORIGIN}", "A", edns=True, dnssec=True, payload=512,
                      query_id=9)
    ours = server._respond(wire, udp=True)
    assert ours is not None
    assert same_response(ours, server._respond_general(wire, True))
    response = dns.message.from_wire(ours)
    assert response.flags & dns.flags.TC and not response.authority
    whole = dns.message.from_wire(server._respond(wire, udp=False) or b"")
    assert whole.rcode() == dns.rcode.NXDOMAIN and len(whole.to_wire()) > 512


def test_a_new_snapshot_gets_new_proof_answers(zone: SignedZone) -> None:
    table = ZoneTable([zone.served])
    server = DnsServer(table)
    wire = query_wire(f"nothing-here.{ORIGIN}", "A", edns=True, dnssec=False, payload=1232,
                      query_id=1)
    first = dns.message.from_wire(server._respond(wire, udp=True) or b"")
    newer = build_signed_zone(serial=2, nsec="nsec")
    table.put(newer.served)
    second = dns.message.from_wire(server._respond(wire, udp=True) or b"")
    serials = [next(iter(response.authority[0])).serial for response in (first, second)]
    assert serials == [1, 2]


def test_a_query_id_and_flags_come_back_on_a_proof_answer(zone: SignedZone) -> None:
    server = DnsServer(ZoneTable([zone.served]))
    for query_id in (0x1234, 0xBEEF):
        header = struct.pack("!HHHHHH", query_id, 0x0110, 1, 0, 0, 0)  # RD and CD
        wire = header + dns.name.from_text(f"q{query_id}.{ORIGIN}").to_wire() + b"\x00\x01\x00\x01"
        response = server._respond(wire, udp=True)
        assert response is not None
        assert response[:2] == wire[:2]
        assert response[2] & 0x01 and response[3] & 0x10  # RD and CD echoed
        assert same_response(response, server._respond_general(wire, True))
