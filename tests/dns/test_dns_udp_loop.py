"""The UDP loop in C (regshield/dns/_udp.c) answers every datagram as the Python loop does.

Two servers of the same zone, one with each loop, get the same datagrams over real sockets:
queries of every kind in many spellings (case, EDNS sizes, DO, RD, CD, IDs), asked again and
again so that the C loop answers from what the Python side built, and datagrams made hostile
by mutation. Their responses must be equal octet for octet, or both absent.
"""

from __future__ import annotations

import itertools
import random
import socket
import string
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset
import dns.zone
import pytest
from dns_peers import (
    LOOPBACK,
    TEST_ZONE_TEXT,
    SignedZone,
    build_signed_zone,
    require_binary,
    running_server,
)

from regshield.dns.rrl import RateLimiter
from regshield.dns.server import DnsServer
from regshield.dns.udp import native
from regshield.dns.zonedata import ServedZone, ZoneTable

NAMES = [
    "regshield.test.", "www.regshield.test.", "WwW.ReGsHiElD.TeSt.", "alias.regshield.test.",
    "outside.regshield.test.", "a.wild.regshield.test.", "b.c.wild.regshield.test.",
    "ent.a.regshield.test.", "a.regshield.test.", "deep.ent.a.regshield.test.",
    "sub.regshield.test.", "www.sub.regshield.test.", "insecure.regshield.test.",
    "x.insecure.regshield.test.", "big.regshield.test.", "missing.regshield.test.",
    "Missing.Regshield.Test.", "a.b.missing.regshield.test.", "example.org.", "ns1.regshield.test.",
]
MARKERS = itertools.count()  # each marker a question never asked before
TYPES = ["A", "AAAA", "TXT", "MX", "NS", "DS", "SOA", "DNSKEY", "RRSIG", "NSEC", "CNAME", "ANY"]


def test_the_c_loop_is_built() -> None:
    # The package builds it wherever a C compiler is (setup.py); the other tests here compare
    # it with the Python loop, and would compare the Python loop with itself without it.
    assert native is not None


@pytest.fixture(scope="module", params=["nsec", "nsec3"])
def zone(request: pytest.FixtureRequest) -> SignedZone:
    chain: Literal["nsec", "nsec3"] = request.param
    return build_signed_zone(nsec=chain)


@pytest.fixture
def servers(zone: SignedZone) -> Iterator[tuple[DnsServer, DnsServer]]:
    table = ZoneTable([zone.served])
    with running_server(DnsServer(table)) as c_loop, \
            running_server(DnsServer(table, native_loop=False)) as python_loop:
        assert c_loop._responder is not None and python_loop._responder is None
        yield c_loop, python_loop


def spellings(chooser: random.Random) -> Iterator[bytes]:
    """Every name and type, without EDNS and with it in several sizes, DO on and off, with
    RD and CD as a resolver might set them and any ID."""
    for name in NAMES:
        for rdtype in TYPES:
            for edns, payload, dnssec in ((-1, 0, False), (0, 512, True), (0, 1232, True),
                                          (0, 600, False), (0, 4096, True), (0, 1232, False)):
                query = dns.message.make_query(name, rdtype, use_edns=edns, payload=payload,
                                               want_dnssec=dnssec)
                query.id = chooser.randrange(65536)
                query.flags = dns.flags.Flag(chooser.choice([0, dns.flags.RD])
                                             | chooser.choice([0, dns.flags.CD]))
                yield query.to_wire()


def exchange(sock: socket.socket, port: int, wire: bytes, marker: bytes) -> list[bytes]:
    """Send `wire`, then `marker` (a question never asked before); the responses that come
    before the marker's (the server answers a datagram before any that follows it, or never).
    """
    sock.sendto(wire, (LOOPBACK, port))
    sock.sendto(marker, (LOOPBACK, port))
    received = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        response = sock.recv(65535)
        if response[:2] == marker[:2] and response[12:len(marker) - 4] == marker[12:-4]:
            return received
        received.append(response)
    raise AssertionError("no answer to the marker")


def marker() -> bytes:
    name = dns.name.from_text(f"marker{next(MARKERS)}.regshield.test.").to_wire()
    assert name is not None
    return struct.pack("!HHHHHH", 0xFFFF, 0, 1, 0, 0, 0) + name + struct.pack("!HH", 1, 1)


def same_message(first: bytes, second: bytes) -> bool:
    """The same DNS message, the records of each RRset in any order; else the same octets."""
    try:
        return bool(dns.message.from_wire(first) == dns.message.from_wire(second))
    except Exception:
        return first == second


def same_responses(first: list[list[bytes]], second: list[list[bytes]]) -> bool:
    return len(first) == len(second) and all(
        len(one) == len(other) and all(map(same_message, one, other))
        for one, other in zip(first, second, strict=True))


def compare(servers: tuple[DnsServer, DnsServer], datagrams: list[bytes]) -> list[list[bytes]]:
    """Send each datagram to both servers; their responses must be the same. The responses of
    the C loop's server, by datagram."""
    responses = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        for number, wire in enumerate(datagrams):
            c_loop, python_loop = (exchange(sock, server.port, wire, marker())
                                   for server in servers)
            assert len(c_loop) == len(python_loop) and all(
                same_message(*pair) for pair in zip(c_loop, python_loop, strict=True)
            ), f"datagram {number}: {wire.hex()}"
            responses.append(c_loop)
    return responses


def test_every_spelling_of_every_question_gets_the_python_loops_response_again_and_again(
    servers: tuple[DnsServer, DnsServer],
) -> None:
    chooser = random.Random(7)
    queries = list(spellings(chooser))
    # Three rounds: the first built by Python, the others answered by the C loop where it can.
    first = compare(servers, queries)
    assert all(len(responses) == 1 for responses in first)
    for _ in range(2):
        assert same_responses(compare(servers, queries), first)
    c_loop, python_loop = servers
    # The C loop answered most of the later rounds itself, and counted them as the answer
    # cache's hits.
    assert len(c_loop._answers) > len(queries) // 3
    deadline = time.monotonic() + 2  # the C loop's counts are added once it has sent
    while c_loop.counters.udp != python_loop.counters.udp and time.monotonic() < deadline:
        time.sleep(0.01)
    assert c_loop.counters.udp == python_loop.counters.udp
    assert c_loop.native_hits > len(queries)
    assert c_loop.cache_hits + c_loop.cache_misses == \
        python_loop.cache_hits + python_loop.cache_misses


def mutations(chooser: random.Random, queries: list[bytes]) -> Iterator[bytes]:
    """Queries made hostile: octets flipped (the header, the question, the OPT record), cut,
    extended, their counts and flags changed."""
    for wire in queries:
        kind = chooser.randrange(6)
        changed = bytearray(wire)
        if kind == 0:
            for _ in range(chooser.randint(1, 3)):
                changed[chooser.randrange(len(changed))] = chooser.randrange(256)
        elif kind == 1:
            changed = changed[:chooser.randrange(len(changed))]
        elif kind == 2:
            changed += bytes(chooser.randrange(256) for _ in range(chooser.randint(1, 12)))
        elif kind == 3:
            struct.pack_into("!H", changed, 4 + 2 * chooser.randrange(4), chooser.randrange(4))
        elif kind == 4:
            changed[2] = chooser.randrange(256)  # QR, opcode, AA, TC, RD
        else:
            changed[12] = chooser.choice([0, 63, 64, 0xC0, 0xFF])  # the first label's length
        yield bytes(changed)


def test_hostile_datagrams_get_what_the_python_loop_gives_them(
    servers: tuple[DnsServer, DnsServer],
) -> None:
    chooser = random.Random(11)
    queries = list(spellings(chooser))
    chooser.shuffle(queries)
    compare(servers, queries[:300])  # the C loop now holds answers to mutate around
    hostile = list(mutations(chooser, queries[:1500]))
    first = compare(servers, hostile)
    assert same_responses(compare(servers, hostile), first)  # again: now from the answers each kept
    assert sum(map(len, first)) > 300  # many still got an answer: those the mutation spared
    # Still serving.
    assert all(len(responses) == 1 for responses in compare(servers, queries[:20]))


def test_a_response_too_big_for_the_clients_size_is_truncated_by_python_not_sent_whole(
    servers: tuple[DnsServer, DnsServer],
) -> None:
    c_loop, _ = servers
    big = dns.message.make_query("big.regshield.test.", "TXT", use_edns=0, payload=4096,
                                 want_dnssec=True)
    small = dns.message.make_query("big.regshield.test.", "TXT", use_edns=0, payload=512,
                                   want_dnssec=True)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        for _ in range(2):
            sock.sendto(big.to_wire(), (LOOPBACK, c_loop.port))
            whole = dns.message.from_wire(sock.recv(65535))
            sock.sendto(small.to_wire(), (LOOPBACK, c_loop.port))
            truncated = dns.message.from_wire(sock.recv(65535))
    assert whole.answer and not whole.flags & dns.flags.TC
    assert truncated.flags & dns.flags.TC and not truncated.answer
    assert truncated.rcode() == dns.rcode.NOERROR


def test_over_ipv6_the_c_loop_answers_and_limits_each_56() -> None:
    zone = build_signed_zone()
    limiter = RateLimiter(0.1, burst=2, slip=0)  # two answers, then one every ten seconds
    with running_server(DnsServer(ZoneTable([zone.served]), rrl=limiter), host="::1") as server:
        assert server._responder is not None
        outcomes = []
        for _ in range(5):
            try:
                response = dns.query.udp(dns.message.make_query("www.regshield.test.", "A"),
                                         "::1", port=server.port, timeout=0.3)
                outcomes.append(response.rcode())
            except dns.exception.Timeout:
                outcomes.append(None)
    assert outcomes == [dns.rcode.NOERROR] * 2 + [None] * 3
    counted = limiter.counters
    assert (counted.answered, counted.dropped) == (2, 3)


@pytest.fixture(params=["nsec", "nsec3"])
def fresh_servers(request: pytest.FixtureRequest) -> Iterator[tuple[DnsServer, DnsServer]]:
    """A server with each loop, of a zone signed with NSEC or NSEC3 for this test alone."""
    chain: Literal["nsec", "nsec3"] = request.param
    table = ZoneTable([build_signed_zone(nsec=chain).served])
    with running_server(DnsServer(table)) as c_loop, \
            running_server(DnsServer(table, native_loop=False)) as python_loop:
        yield c_loop, python_loop


# Where names never asked before land: under the apex, under names with data, under an empty
# non-terminal and under a name below it, a glue name, a TXT set too big for 512 octets; and
# where the C loop must leave them to Python: below delegations (secure and not) and under a
# wildcard.
ENCLOSERS = ["", "www.", "a.", "ent.a.", "deep.ent.a.", "ns1.", "big.", "alias.", "sub.",
             "ns.sub.", "insecure.", "wild."]
LABEL_OCTETS = string.ascii_letters + string.digits + "-"


def random_label(chooser: random.Random) -> str:
    return "".join(chooser.choices(LABEL_OCTETS, k=chooser.randint(1, 24))).strip("-") or "x"


def new_name_queries(chooser: random.Random, owners: list[str], count: int) -> list[bytes]:
    """Queries with DO for names never asked before, as a random-subdomain flood sends them:
    one or two random labels under each encloser, in every UDP size (512 truncates some), any
    type, ID, RD and CD; some labels are `owners` (labels of names the sections hold), and
    some next to them in canonical order."""
    queries = []
    for _ in range(count):
        encloser = chooser.choice(ENCLOSERS)
        labels = [random_label(chooser) for _ in range(chooser.choice([1, 1, 1, 2]))]
        near = chooser.random()
        if near < 0.1:
            labels[-1] = chooser.choice(owners)
        elif near < 0.3:  # next to an owner in canonical order: a label that extends or cuts it
            owner = chooser.choice(owners)
            labels[-1] = chooser.choice([owner + random_label(chooser), owner[:-1] or "x",
                                         owner.upper() + "-"])
        query = dns.message.make_query(f"{'.'.join(labels)}.{encloser}regshield.test.",
                                       chooser.choice(TYPES), use_edns=0,
                                       payload=chooser.choice([512, 1232, 4096]),
                                       want_dnssec=True)
        query.id = chooser.randrange(65536)
        query.flags = dns.flags.Flag(chooser.choice([0, dns.flags.RD])
                                     | chooser.choice([0, dns.flags.CD]))
        queries.append(query.to_wire())
    return queries


def owner_labels(server: DnsServer) -> list[str]:
    """The first label of every NSEC or NSEC3 owner name of the test zone."""
    return sorted({rrset.name.labels[0].decode() for rrset in server.table.get(
        dns.name.from_text("regshield.test.")).rrsets
        if rrset.rdtype in (dns.rdatatype.NSEC, dns.rdatatype.NSEC3) and rrset.name.labels[0]})


def test_names_never_asked_get_the_python_loops_denial_octet_for_octet_from_the_c_loop(
    fresh_servers: tuple[DnsServer, DnsServer],
) -> None:
    c_loop, python_loop = fresh_servers
    chooser = random.Random(5155)
    owners = owner_labels(c_loop)
    assert len(owners) > 8
    # A first name under each encloser: Python answers it and lends the loop its frame.
    compare(fresh_servers, [dns.message.make_query(f"first.{encloser}regshield.test.", "A",
                                                   want_dnssec=True).to_wire()
                            for encloser in ENCLOSERS])
    queries = new_name_queries(chooser, owners, 1500)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        for number, wire in enumerate(queries):
            ours, theirs = (exchange(sock, server.port, wire, marker()) for server in fresh_servers)
            assert ours == theirs, f"query {number}: {wire.hex()}"  # the same octets
            assert len(ours) == 1
    # The loop put most of the denials together itself (about half the names are under an
    # encloser it denies in; it leaves those whose covering record is also the encloser's or
    # its wildcard's, and those naming an NSEC3 owner).
    print("denied by the loop:", c_loop.native_denials, "of", len(queries))
    assert c_loop.native_denials > len(queries) // 4
    assert python_loop.native_denials == 0
    # Each answer was an NXDOMAIN with the proof, or truncated for a 512-octet client.
    assert c_loop.counters.udp[dns.rcode.NXDOMAIN] > c_loop.native_denials


def test_a_new_snapshot_is_never_denied_from_the_last_ones_chain(
    fresh_servers: tuple[DnsServer, DnsServer],
) -> None:
    c_loop, _ = fresh_servers
    chain = "nsec3" if any(rrset.rdtype == dns.rdatatype.NSEC3
                           for rrset in c_loop.table.get(dns.name.from_text("regshield.test."))
                           .rrsets) else "nsec"

    def ask(name: str) -> dns.message.Message:
        query = dns.message.make_query(name, "A", want_dnssec=True)
        return dns.query.udp(query, LOOPBACK, port=c_loop.port, timeout=5)

    # Python denies these and lends the loop the apex's frame (NSEC3) or the proof of "added"
    # (NSEC: "addea" and "added" are covered by the same record).
    for name in ("first.regshield.test.", "addea.regshield.test."):
        assert ask(name).rcode() == dns.rcode.NXDOMAIN
    before = c_loop.native_denials
    assert ask("added.regshield.test.").rcode() == dns.rcode.NXDOMAIN
    assert c_loop.native_denials == before + 1  # denied by the loop
    c_loop.table.put(build_signed_zone(nsec=chain, serial=2,
                                       extra="added 3600 A 192.0.2.99\n").served)
    answer = ask("added.regshield.test.")
    assert answer.rcode() == dns.rcode.NOERROR
    assert [rdata.to_text() for rrset in answer.answer for rdata in rrset
            if rrset.rdtype == dns.rdatatype.A] == ["192.0.2.99"]
    assert ask("other.added.regshield.test.").rcode() == dns.rcode.NXDOMAIN


def signed_by_ldns(directory: Path) -> ServedZone:
    """The test zone signed by ldns-signzone with NSEC3 as older signers made it: a salt and
    extra iterations (RFC 9276 advises against both; zones signed elsewhere still have them)."""
    text = TEST_ZONE_TEXT.format(serial=1, digest="ab" * 32, big='big 3600 TXT "big"')
    (directory / "zone").write_text(f"$ORIGIN regshield.test.\n{text}")
    key = subprocess.run([require_binary("ldns-keygen"), "-a", "ECDSAP256SHA256",
                          "regshield.test."], cwd=directory, capture_output=True, text=True,
                         check=True).stdout.strip()
    subprocess.run([require_binary("ldns-signzone"), "-n", "-t", "7", "-s", "c0ffee", "zone",
                    key], cwd=directory, check=True, capture_output=True)
    zone = dns.zone.from_file(str(directory / "zone.signed"), origin="regshield.test.",
                              relativize=False)
    rrsets = []
    for name, node in zone.nodes.items():
        for rdataset in node.rdatasets:
            rrset = dns.rrset.RRset(name, rdataset.rdclass, rdataset.rdtype, rdataset.covers)
            rrset.update_ttl(rdataset.ttl)
            rrset.update(rdataset)
            rrsets.append(rrset)
    return ServedZone(zone.origin, 1, tuple(rrsets))


def test_a_salted_iterated_nsec3_chain_is_hashed_by_the_c_loop_as_by_python(
    tmp_path: Path,
) -> None:
    table = ZoneTable([signed_by_ldns(tmp_path)])
    with running_server(DnsServer(table)) as c_loop, \
            running_server(DnsServer(table, native_loop=False)) as python_loop:
        servers = (c_loop, python_loop)
        params = [rrset for rrset in table.get(dns.name.from_text("regshield.test.")).rrsets
                  if rrset.rdtype == dns.rdatatype.NSEC3PARAM]
        assert [(rdata.iterations, rdata.salt.hex()) for rdata in params[0]] == [(7, "c0ffee")]
        compare(servers, [dns.message.make_query(f"first.{encloser}regshield.test.", "A",
                                                 want_dnssec=True).to_wire()
                          for encloser in ENCLOSERS])
        queries = new_name_queries(random.Random(9276), owner_labels(c_loop), 400)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(5)
            for number, wire in enumerate(queries):
                ours, theirs = (exchange(sock, server.port, wire, marker()) for server in servers)
                assert ours == theirs, f"query {number}: {wire.hex()}"
    assert c_loop.native_denials > len(queries) // 4
