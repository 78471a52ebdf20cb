"""The embedded authoritative server: answers, DNSSEC proofs, EDNS, TSIG, odd packets, transfers."""

from __future__ import annotations

import base64
import hashlib
import socket
import struct
import subprocess
from collections.abc import Iterator
from typing import Literal

import dns.dnssec
import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.node
import dns.opcode
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.rrset
import dns.tsig
import pytest
from dns_peers import LOOPBACK, SignedZone, build_signed_zone, require_binary, running_server

from regshield.dns.server import DnsServer
from regshield.dns.zonedata import ServedZone, ZoneTable

ORIGIN = dns.name.from_text("regshield.test.")
NEGATIVE_TTL = 300  # min(SOA TTL 3600, SOA MINIMUM 300)


@pytest.fixture(scope="module")
def zones() -> dict[str, SignedZone]:
    return {"nsec": build_signed_zone(nsec="nsec"), "nsec3": build_signed_zone(nsec="nsec3")}


@pytest.fixture(params=["nsec", "nsec3"])
def chain(request: pytest.FixtureRequest) -> Literal["nsec", "nsec3"]:
    value: Literal["nsec", "nsec3"] = request.param
    return value


@pytest.fixture
def zone(zones: dict[str, SignedZone], chain: str) -> SignedZone:
    return zones[chain]


@pytest.fixture
def table(zone: SignedZone) -> ZoneTable:
    return ZoneTable([zone.served])


@pytest.fixture
def server(table: ZoneTable) -> Iterator[DnsServer]:
    with running_server(DnsServer(table)) as running:
        yield running


def ask(server: DnsServer, name: str, rdtype: str, *, dnssec: bool = True,
        edns: int = 0, payload: int = 1232, tcp: bool = False) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype, use_edns=edns, want_dnssec=dnssec,
                                   payload=payload)
    if tcp:
        return dns.query.tcp(query, LOOPBACK, port=server.port, timeout=3)
    return dns.query.udp(query, LOOPBACK, port=server.port, timeout=3)


def exchange_raw(server: DnsServer, wire: bytes, timeout: float = 0.5) -> bytes | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(wire, (LOOPBACK, server.port))
        try:
            return sock.recv(65535)
        except TimeoutError:
            return None


def validate_all(response: dns.message.Message, zone: SignedZone) -> int:
    """Check every RRSIG in answer and authority against the zone's DNSKEYs; count them."""
    keys: dict[dns.name.Name, dns.node.Node | dns.rdataset.Rdataset] = {
        zone.origin: zone.dnskey()
    }
    checked = 0
    for section in (response.answer, response.authority):
        signed = {(r.name, r.rdtype): r for r in section if r.rdtype != dns.rdatatype.RRSIG}
        for rrsig in (r for r in section if r.rdtype == dns.rdatatype.RRSIG):
            dns.dnssec.validate(signed[(rrsig.name, rrsig.covers)], rrsig, keys)
            checked += 1
        assert checked >= len([r for r in signed.values() if r.rdtype != dns.rdatatype.NS])
    return checked


def records(section: list[dns.rrset.RRset], rdtype: int) -> list[dns.rrset.RRset]:
    return [rrset for rrset in section if rrset.rdtype == rdtype]


def nsec_covers(nsec: dns.rrset.RRset, name: dns.name.Name) -> bool:
    following = nsec[0].next
    if nsec.name < following:
        return bool(nsec.name < name < following)
    return bool(name > nsec.name or name < following)  # the last NSEC wraps to the apex


def nsec3_hash(name: dns.name.Name) -> bytes:
    wire = name.canonicalize().to_wire()
    assert wire is not None
    return hashlib.sha1(wire, usedforsecurity=False).digest()  # RFC 9276: no salt, no iterations


def nsec3_matches(nsec3: dns.rrset.RRset, name: dns.name.Name) -> bool:
    return base64.b32hexdecode(nsec3.name.labels[0].upper()) == nsec3_hash(name)


def nsec3_covers(nsec3: dns.rrset.RRset, name: dns.name.Name) -> bool:
    owner = base64.b32hexdecode(nsec3.name.labels[0].upper())
    following, digest = nsec3[0].next, nsec3_hash(name)
    if owner < following:
        return bool(owner < digest < following)
    return bool(digest > owner or digest < following)


def name(text: str) -> dns.name.Name:
    return dns.name.from_text(text, ORIGIN)


def test_an_existing_name_gets_an_authoritative_answer_whose_signature_validates(
    server: DnsServer, zone: SignedZone,
) -> None:
    response = ask(server, "www.regshield.test.", "A")
    assert response.rcode() == dns.rcode.NOERROR
    assert response.flags & dns.flags.AA and not response.flags & dns.flags.RA
    assert [r.to_text() for r in records(response.answer, dns.rdatatype.A)] == [
        "www.regshield.test. 3600 IN A 192.0.2.10"
    ]
    assert validate_all(response, zone) == 1
    assert not response.authority and not response.additional  # minimal responses


def test_without_the_do_bit_no_dnssec_records_are_added(server: DnsServer) -> None:
    for qname in ("www.regshield.test.", "missing.regshield.test."):
        response = ask(server, qname, "A", dnssec=False)
        types = {r.rdtype for r in response.answer + response.authority}
        assert types & {dns.rdatatype.RRSIG, dns.rdatatype.NSEC, dns.rdatatype.NSEC3} == set()
        assert response.ednsflags & dns.flags.DO == 0


def test_nxdomain_holds_the_soa_with_the_negative_ttl_and_proofs_that_validate(
    server: DnsServer, zone: SignedZone, chain: str,
) -> None:
    qname = name("missing")
    response = ask(server, str(qname), "A")
    assert response.rcode() == dns.rcode.NXDOMAIN and response.flags & dns.flags.AA
    (soa,) = records(response.authority, dns.rdatatype.SOA)
    assert soa.ttl == NEGATIVE_TTL
    validate_all(response, zone)
    wildcard = name("*")
    if chain == "nsec":
        nsecs = records(response.authority, dns.rdatatype.NSEC)
        assert any(nsec_covers(n, qname) for n in nsecs)
        assert any(nsec_covers(n, wildcard) for n in nsecs)
    else:
        nsec3s = records(response.authority, dns.rdatatype.NSEC3)
        assert any(nsec3_matches(n, ORIGIN) for n in nsec3s)  # the closest encloser
        assert any(nsec3_covers(n, qname) for n in nsec3s)  # the next closer name
        assert any(nsec3_covers(n, wildcard) for n in nsec3s)


def test_nodata_proves_the_name_exists_without_the_type(
    server: DnsServer, zone: SignedZone, chain: str,
) -> None:
    response = ask(server, "www.regshield.test.", "MX")
    assert response.rcode() == dns.rcode.NOERROR and not response.answer
    assert records(response.authority, dns.rdatatype.SOA)[0].ttl == NEGATIVE_TTL
    validate_all(response, zone)
    denial = records(response.authority,
                     dns.rdatatype.NSEC if chain == "nsec" else dns.rdatatype.NSEC3)
    assert len(denial) == 1
    bitmap = denial[0][0].to_text().split()
    assert "A" in bitmap and "MX" not in bitmap


def test_an_empty_non_terminal_is_nodata_not_nxdomain(server: DnsServer) -> None:
    response = ask(server, "ent.a.regshield.test.", "A")
    assert response.rcode() == dns.rcode.NOERROR and not response.answer
    assert records(response.authority, dns.rdatatype.SOA)


def test_a_wildcard_expands_with_proof_that_the_exact_name_does_not_exist(
    server: DnsServer, zone: SignedZone, chain: str,
) -> None:
    qname = name("anything.wild")
    response = ask(server, str(qname), "A")
    (answer,) = records(response.answer, dns.rdatatype.A)
    assert answer.name == qname and answer[0].address == "192.0.2.20"
    (rrsig,) = records(response.answer, dns.rdatatype.RRSIG)
    assert rrsig[0].labels == 3  # the wildcard's labels: a validator sees the expansion
    validate_all(response, zone)
    if chain == "nsec":
        assert any(nsec_covers(n, qname) for n in records(response.authority,
                                                           dns.rdatatype.NSEC))
    else:
        assert any(nsec3_covers(n, qname) for n in records(response.authority,
                                                            dns.rdatatype.NSEC3))


def test_a_delegation_is_a_referral_with_its_ds_and_glue(
    server: DnsServer, zone: SignedZone,
) -> None:
    response = ask(server, "host.sub.regshield.test.", "A")
    assert response.rcode() == dns.rcode.NOERROR and not response.flags & dns.flags.AA
    assert not response.answer
    assert {(str(r.name), r.rdtype) for r in response.authority} == {
        ("sub.regshield.test.", dns.rdatatype.NS), ("sub.regshield.test.", dns.rdatatype.DS),
        ("sub.regshield.test.", dns.rdatatype.RRSIG),
    }
    validate_all(response, zone)
    assert [r.to_text() for r in response.additional if r.rdtype == dns.rdatatype.A] == [
        "ns.sub.regshield.test. 3600 IN A 192.0.2.53"
    ]


def test_a_delegation_without_ds_carries_the_proof_that_there_is_none(
    server: DnsServer, zone: SignedZone, chain: str,
) -> None:
    response = ask(server, "insecure.regshield.test.", "A")
    assert not response.flags & dns.flags.AA
    validate_all(response, zone)
    denial_type = dns.rdatatype.NSEC if chain == "nsec" else dns.rdatatype.NSEC3
    (denial,) = records(response.authority, denial_type)
    bitmap = denial[0].to_text()
    assert "NS" in bitmap and "DS" not in bitmap.split()


def test_a_cname_is_followed_inside_the_zone_but_not_outside(server: DnsServer) -> None:
    inside = ask(server, "alias.regshield.test.", "A", dnssec=False)
    assert [r.rdtype for r in inside.answer] == [dns.rdatatype.CNAME, dns.rdatatype.A]
    outside = ask(server, "outside.regshield.test.", "A", dnssec=False)
    assert [r.rdtype for r in outside.answer] == [dns.rdatatype.CNAME]
    assert outside.rcode() == dns.rcode.NOERROR and outside.flags & dns.flags.AA


def test_names_outside_every_zone_are_refused_without_recursion(server: DnsServer) -> None:
    response = ask(server, "www.example.org.", "A")
    assert response.rcode() == dns.rcode.REFUSED
    assert not response.flags & (dns.flags.AA | dns.flags.RA) and not response.answer


@pytest.mark.parametrize("name", ["www.example.org.", "WwW.ExAmPlE.oRg.", "org.", "."])
def test_a_name_outside_every_zone_is_refused_as_the_general_path_refuses_it(
        server: DnsServer, name: str) -> None:
    # Refused from the question's bytes, never read into a message: octet for octet what the
    # general path (dnspython's reading and rendering) answers, in every spelling.
    for edns, dnssec, flags, query_id in [(-1, False, 0, 1), (0, False, dns.flags.RD, 65535),
                                          (0, True, dns.flags.CD, 7),
                                          (0, True, dns.flags.RD | dns.flags.CD, 0)]:
        query = dns.message.make_query(name, "A", use_edns=edns, want_dnssec=dnssec,
                                       payload=4096 if edns >= 0 else None)
        query.id, query.flags = query_id, flags
        wire = query.to_wire()
        fast = server._respond(wire, udp=True)
        assert fast == server._respond_general(wire, udp=True)
        assert fast is not None and dns.message.from_wire(fast).rcode() == dns.rcode.REFUSED
        assert server._respond(wire, udp=True) == fast  # asked again, as the C loop keeps it


def test_any_gets_one_rrset(server: DnsServer) -> None:
    response = ask(server, "www.regshield.test.", "ANY", dnssec=False)
    assert len(response.answer) == 1 and response.answer[0].rdtype == dns.rdatatype.A


def test_a_query_for_rrsig_gets_every_signature_at_the_name(
    server: DnsServer, zone: SignedZone,
) -> None:
    response = ask(server, "www.regshield.test.", "RRSIG", dnssec=False)
    assert {r.covers for r in response.answer} == {
        dns.rdatatype.A, dns.rdatatype.AAAA,
        dns.rdatatype.NSEC if zone.served.find(ORIGIN, dns.rdatatype.NSEC) else dns.rdatatype.A,
    }


def test_edns_is_answered_only_when_asked_and_newer_versions_get_badvers(
    server: DnsServer,
) -> None:
    plain = ask(server, "www.regshield.test.", "A", dnssec=False, edns=-1)
    assert plain.edns == -1 and plain.answer
    with_edns = ask(server, "www.regshield.test.", "A")
    assert with_edns.edns == 0 and with_edns.payload == 1232
    assert with_edns.ednsflags & dns.flags.DO
    future = ask(server, "www.regshield.test.", "A", edns=1)
    assert future.rcode() == dns.rcode.BADVERS and future.edns == 0 and not future.answer


def test_an_answer_too_big_for_the_clients_udp_size_is_truncated_and_whole_over_tcp(
    server: DnsServer,
) -> None:
    small = ask(server, "big.regshield.test.", "TXT", dnssec=False, edns=-1)
    assert small.flags & dns.flags.TC and not small.answer
    edns_small = ask(server, "big.regshield.test.", "TXT", payload=512)
    assert edns_small.flags & dns.flags.TC and edns_small.edns == 0
    large = ask(server, "big.regshield.test.", "TXT", payload=4096)
    assert not large.flags & dns.flags.TC and len(large.answer[0]) == 12
    over_tcp = ask(server, "big.regshield.test.", "TXT", dnssec=False, edns=-1, tcp=True)
    assert not over_tcp.flags & dns.flags.TC and len(over_tcp.answer[0]) == 12


def test_the_question_comes_back_in_the_case_it_was_asked(server: DnsServer) -> None:
    for _ in range(2):  # the second answer comes from the answer cache
        response = ask(server, "WwW.ReGsHiElD.TeSt.", "A")
        assert response.question[0].name.to_text() == "WwW.ReGsHiElD.TeSt."
        assert response.answer[0][0].address == "192.0.2.10"


def test_malformed_packets_get_formerr_or_silence(server: DnsServer) -> None:
    assert exchange_raw(server, b"\x12\x34\x01") is None  # not even a header
    response = exchange_raw(server, b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07ab")
    assert response is not None and response[:2] == b"\x12\x34"
    assert response[3] & 0x0F == dns.rcode.FORMERR and response[2] & 0x80
    query = dns.message.make_query("www.regshield.test.", "A")
    two_questions = bytearray(query.to_wire())
    two_questions[5] = 2
    two_questions += two_questions[12:]
    response = exchange_raw(server, bytes(two_questions))
    assert response is not None and response[3] & 0x0F == dns.rcode.FORMERR
    as_response = bytearray(query.to_wire())
    as_response[2] |= 0x80
    assert exchange_raw(server, bytes(as_response)) is None  # never answer a response
    assert ask(server, "www.regshield.test.", "A").answer  # still serving


def test_other_classes_are_refused(server: DnsServer) -> None:
    query = dns.message.make_query("version.bind.", "TXT", "CH")
    response = dns.query.udp(query, LOOPBACK, port=server.port, timeout=3)
    assert response.rcode() == dns.rcode.REFUSED


def test_notify_is_refused_and_update_is_not_implemented(server: DnsServer) -> None:
    notify = dns.message.make_query(ORIGIN, "SOA")
    notify.set_opcode(dns.opcode.NOTIFY)
    response = dns.query.udp(notify, LOOPBACK, port=server.port, timeout=3)
    assert response.rcode() == dns.rcode.REFUSED
    update = dns.message.make_query(ORIGIN, "SOA")
    update.set_opcode(dns.opcode.UPDATE)
    response = dns.query.udp(update, LOOPBACK, port=server.port, timeout=3)
    assert response.rcode() == dns.rcode.NOTIMP


def test_zone_transfers_over_udp_are_not_served(server: DnsServer) -> None:
    assert ask(server, "regshield.test.", "AXFR").rcode() == dns.rcode.FORMERR
    ixfr = dns.message.make_query(ORIGIN, "IXFR")
    ixfr.authority = [dns.rrset.from_text(ORIGIN, 0, "IN", "SOA", ". . 0 0 0 0 0")]
    response = dns.query.udp(ixfr, LOOPBACK, port=server.port, timeout=3)
    assert [r.rdtype for r in response.answer] == [dns.rdatatype.SOA]  # RFC 1995: use TCP


def test_axfr_over_tcp_is_refused_without_a_transfer_handler(server: DnsServer) -> None:
    query = dns.message.make_query(ORIGIN, "AXFR")
    response = dns.query.tcp(query, LOOPBACK, port=server.port, timeout=3)
    assert response.rcode() == dns.rcode.REFUSED


class RecordingTransfers:
    """A transfer handler that answers with the SOA twice, as the shortest AXFR does."""

    def __init__(self, zone: ServedZone) -> None:
        self.zone = zone
        self.peers: list[tuple[str, int]] = []
        self.signed: list[bool] = []

    def respond(self, query: dns.message.Message, peer: tuple[str, int]) -> list[bytes]:
        self.peers.append(peer)
        self.signed.append(query.had_tsig)
        first = dns.message.make_response(query)
        first.answer = [self.zone.soa]
        last = dns.message.make_response(query)
        last.answer = [self.zone.soa]
        return [first.to_wire(), last.to_wire()]


def test_axfr_over_tcp_writes_every_message_of_the_transfer_handler(
    table: ZoneTable, zone: SignedZone,
) -> None:
    transfers = RecordingTransfers(zone.served)
    with running_server(DnsServer(table, transfers=transfers)) as running:
        messages = list(dns.query.xfr(LOOPBACK, ORIGIN, port=running.port, timeout=3,
                                      relativize=False))
    assert len(messages) == 2
    assert all(m.answer[0].rdtype == dns.rdatatype.SOA for m in messages)
    assert transfers.peers[0][0] == LOOPBACK and transfers.signed == [False]


KEY_NAME = dns.name.from_text("transfer.key.")
KEY = dns.tsig.Key(KEY_NAME, base64.b64encode(b"k" * 32).decode(), dns.tsig.HMAC_SHA256)


def test_a_tsig_signed_query_gets_a_signed_answer(table: ZoneTable) -> None:
    with running_server(DnsServer(table, keyring={KEY_NAME: KEY})) as running:
        query = dns.message.make_query(ORIGIN, "SOA")
        query.use_tsig(KEY)
        response = dns.query.udp(query, LOOPBACK, port=running.port, timeout=3)
        assert response.had_tsig and response.answer  # dnspython checked the signature
        response = dns.query.tcp(query, LOOPBACK, port=running.port, timeout=3)
        assert response.had_tsig


def test_a_query_signed_with_an_unknown_or_wrong_key_gets_notauth(table: ZoneTable) -> None:
    keyring: dict[dns.name.Name, dns.tsig.Key] = {}
    with running_server(DnsServer(table, keyring=keyring)) as running:
        query = dns.message.make_query(ORIGIN, "SOA")
        query.use_tsig(KEY)
        with pytest.raises(dns.tsig.PeerBadKey):
            dns.query.udp(query, LOOPBACK, port=running.port, timeout=3)
        # The keyring is shared: a key with the same name but another secret is now known.
        keyring[KEY_NAME] = dns.tsig.Key(KEY_NAME, base64.b64encode(b"o" * 32).decode(),
                                         dns.tsig.HMAC_SHA256)
        with pytest.raises(dns.tsig.PeerBadSignature):
            dns.query.udp(query, LOOPBACK, port=running.port, timeout=3)
        wire = exchange_raw(running, query.to_wire())
        assert wire is not None and wire[3] & 0x0F == dns.rcode.NOTAUTH
        keyring[KEY_NAME] = KEY
        assert dns.query.udp(query, LOOPBACK, port=running.port, timeout=3).had_tsig


def test_a_new_snapshot_is_answered_from_the_next_query(
    server: DnsServer, table: ZoneTable, zone: SignedZone, chain: Literal["nsec", "nsec3"],
) -> None:
    assert ask(server, "regshield.test.", "SOA").answer[0][0].serial == 1
    assert ask(server, "new.regshield.test.", "A").rcode() == dns.rcode.NXDOMAIN
    updated = build_signed_zone(serial=2, nsec=chain, keys=zone.keys,
                                extra="new 3600 A 192.0.2.99\n")
    table.put(updated.served)
    response = ask(server, "new.regshield.test.", "A")
    assert response.rcode() == dns.rcode.NOERROR
    assert response.answer[0][0].address == "192.0.2.99"
    assert ask(server, "regshield.test.", "SOA").answer[0][0].serial == 2  # not the cached 1
    table.remove(ORIGIN)
    assert ask(server, "www.regshield.test.", "A").rcode() == dns.rcode.REFUSED


def test_kdig_gets_an_authoritative_signed_answer_over_tcp(server: DnsServer) -> None:
    kdig = require_binary("kdig")
    result = subprocess.run(
        [kdig, f"@{LOOPBACK}", "-p", str(server.port), "+tcp", "+dnssec",
         "www.regshield.test.", "A"],
        capture_output=True, text=True, timeout=10, check=True,
    )
    assert "status: NOERROR" in result.stdout
    assert "Flags: qr aa rd;" in result.stdout  # RD is echoed, RA is not set
    assert "192.0.2.10" in result.stdout and "RRSIG" in result.stdout


def test_a_packet_of_random_bytes_does_not_stop_the_server(server: DnsServer) -> None:
    for size in (12, 13, 40, 300):
        payload = hashlib.sha256(struct.pack("!I", size)).digest() * (size // 32 + 1)
        exchange_raw(server, payload[:size], timeout=0.1)
    assert ask(server, "www.regshield.test.", "A").answer


def test_a_query_with_an_edns_cookie_is_answered(server: DnsServer) -> None:
    query = dns.message.make_query("www.regshield.test.", "A", use_edns=0,
                                   options=[dns.edns.CookieOption(b"c" * 8, b"")])
    response = dns.query.udp(query, LOOPBACK, port=server.port, timeout=3)
    assert response.answer and response.rcode() == dns.rcode.NOERROR


def test_the_ds_of_a_child_zone_served_here_too_comes_from_the_parent(
    zone: SignedZone,
) -> None:
    child = build_signed_zone("sub.regshield.test.")
    table = ZoneTable([zone.served, child.served])
    with running_server(DnsServer(table)) as running:
        ds = ask(running, "sub.regshield.test.", "DS")
        soa = ask(running, "sub.regshield.test.", "SOA")
    assert [r.to_text().split()[-4] for r in records(ds.answer, dns.rdatatype.DS)] == ["12345"]
    assert soa.answer[0].name == dns.name.from_text("sub.regshield.test.")
    assert soa.flags & dns.flags.AA


def test_several_queries_on_one_tcp_connection_are_answered_in_order(server: DnsServer) -> None:
    names = ["www.regshield.test.", "missing.regshield.test.", "ns1.regshield.test."]
    queries = [dns.message.make_query(qname, "A") for qname in names]
    with socket.create_connection((LOOPBACK, server.port), timeout=3) as sock:
        sock.sendall(b"".join(struct.pack("!H", len(w)) + w
                              for w in (q.to_wire() for q in queries)))
        answers = []
        for query in queries:
            size = struct.unpack("!H", sock.recv(2, socket.MSG_WAITALL))[0]
            answers.append(dns.message.from_wire(sock.recv(size, socket.MSG_WAITALL)))
            assert answers[-1].id == query.id
    assert [dns.rcode.to_text(a.rcode()) for a in answers] == ["NOERROR", "NXDOMAIN", "NOERROR"]


# -- the answer cache keys on the question's name case-folded, and on its type as it is -------

TYPED = dns.name.from_text("typed.regshield.test.")
# Types 65 to 90 are the byte values of 'A' to 'Z': lowering the question's type bytes made
# each share the cached answer of the type 32 above it (HTTPS, 65, with TYPE97).
TYPED_RECORDS = "typed 3600 HTTPS 1 . alpn=h2\ntyped 3600 DSYNC CDS 1 5359 ns1\n" + "".join(
    f"typed 3600 TYPE{rdtype} \\# 1 {rdtype:02x}\n" for rdtype in range(67, 91))
# Two owners that differ only in a byte above ASCII (0xC1, 0xE1: 'Á' and 'á' in Latin-1):
# RFC 4343 folds ASCII letters only, so these are two names.
EIGHT_BIT_RECORDS = "\\193 3600 A 192.0.2.65\n\\225 3600 A 192.0.2.97\n"
# Meta and transfer types, answered by rules of their own (not "the RRset of this type").
SPECIAL_QTYPES = {dns.rdatatype.OPT, dns.rdatatype.RRSIG, dns.rdatatype.TKEY,
                  dns.rdatatype.TSIG, dns.rdatatype.IXFR, dns.rdatatype.AXFR,
                  dns.rdatatype.MAILB, dns.rdatatype.MAILA, dns.rdatatype.ANY}


@pytest.fixture(scope="module")
def typed_zone() -> SignedZone:
    return build_signed_zone(extra=TYPED_RECORDS + EIGHT_BIT_RECORDS)


def plain_query(qname: dns.name.Name, rdtype: int, query_id: int) -> bytes:
    """A query without EDNS, built by hand: ID `query_id`, the type as given."""
    wire = qname.to_wire()
    assert wire is not None
    return struct.pack("!HHHHHH", query_id, 0, 1, 0, 0, 0) + wire + struct.pack(
        "!HH", rdtype, dns.rdataclass.IN)


def answered_types(port: int, qname: dns.name.Name, rdtypes: list[int],
                   window: int = 128) -> dict[int, set[int]]:
    """The types in the answer section for each type asked at `qname`, in the order given.

    Each type is asked as the query's ID, a window at a time over one UDP socket; a question
    whose answer got lost is asked again.
    """
    answered: dict[int, set[int]] = {}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect((LOOPBACK, port))
        sock.settimeout(2)
        for start in range(0, len(rdtypes), window):
            waiting = set(rdtypes[start:start + window])
            for _ in range(3):
                for rdtype in sorted(waiting):
                    sock.send(plain_query(qname, rdtype, rdtype))
                try:
                    while waiting:
                        response = dns.message.from_wire(sock.recv(65535))
                        assert response.question[0].rdtype == response.id
                        if response.id in waiting:
                            waiting.discard(response.id)
                            answered[response.id] = {r.rdtype for r in response.answer}
                except TimeoutError:
                    continue
                break
            assert not waiting, f"no answer for types {sorted(waiting)[:10]}"
    return answered


def test_a_type_whose_bytes_are_capital_letters_gets_its_own_answer_after_its_lowercase_twin(
    typed_zone: SignedZone,
) -> None:
    held = range(65, 91)
    with running_server(DnsServer(ZoneTable([typed_zone.served]))) as running:
        # The spoofable question first (TYPE97 before HTTPS, ...), then the real one.
        twins_first = answered_types(running.port, TYPED, [t for r in held for t in (r + 32, r)])
    with running_server(DnsServer(ZoneTable([typed_zone.served]))) as running:
        real_first = answered_types(running.port, TYPED, [t for r in held for t in (r, r + 32)])
    for answered in (twins_first, real_first):
        assert {rdtype: answered[rdtype] for rdtype in held} == {r: {r} for r in held}
        assert all(answered[rdtype + 32] == set() for rdtype in held)
    https = dns.message.from_wire(exchange_raw_to(
        typed_zone, [plain_query(TYPED, 97, 1), plain_query(TYPED, dns.rdatatype.HTTPS, 2)]))
    assert [r.to_text() for r in https.answer] == [
        "typed.regshield.test. 3600 IN HTTPS 1 . alpn=\"h2\""]


def exchange_raw_to(zone: SignedZone, wires: list[bytes]) -> bytes:
    """Send each query in turn to a fresh server of `zone`; the last answer."""
    with running_server(DnsServer(ZoneTable([zone.served]))) as running:
        answers = [exchange_raw(running, wire, timeout=2) for wire in wires]
    assert answers[-1] is not None
    return answers[-1]


def test_every_query_type_gets_the_rrset_of_its_own_type_asked_first_or_from_the_cache(
    typed_zone: SignedZone,
) -> None:
    held = {rrset.rdtype for rrset in typed_zone.served.rrsets if rrset.name == TYPED}
    # Every type below 1024 (the answer cache holds types below 128), every type whose high
    # byte is a letter with a few low bytes (letters among them), and one in 251 of the rest.
    sample = {*range(1, 1024), *range(1024, 65536, 251),
              *((high << 8) | low for high in (*range(65, 91), *range(97, 123))
                for low in (0, 65, 97, 255))}
    asked = [rdtype for rdtype in sorted(sample) if rdtype not in SPECIAL_QTYPES]
    expected = {rdtype: {rdtype} if rdtype in held else set() for rdtype in asked}
    with running_server(DnsServer(ZoneTable([typed_zone.served]))) as running:
        assert answered_types(running.port, TYPED, asked) == expected
        # Again, descending: every answer now comes from the cache when one was kept.
        assert answered_types(running.port, TYPED, asked[::-1]) == expected


def test_names_that_differ_only_above_ascii_do_not_share_a_cached_answer(
    typed_zone: SignedZone,
) -> None:
    upper, lower = (dns.name.from_text(f"\\{code}.regshield.test.") for code in (193, 225))
    with running_server(DnsServer(ZoneTable([typed_zone.served]))) as running:
        for _ in range(2):  # the second round from the cache
            for qname, address in ((upper, "192.0.2.65"), (lower, "192.0.2.97")):
                wire = exchange_raw(running, plain_query(qname, dns.rdatatype.A, 7), timeout=2)
                assert wire is not None
                assert dns.message.from_wire(wire).answer[0][0].address == address
        # A 63-octet label (the longest) folds like any other.
        long_label = "Q" * 63
        response = ask(running, f"{long_label}.regshield.test.", "A")
        again = ask(running, f"{long_label.lower()}.regshield.test.", "A")
        assert response.rcode() == again.rcode() == dns.rcode.NXDOMAIN


def test_a_zone_served_unread_answers_as_if_read_and_is_read_once(zone: SignedZone) -> None:
    """At start small zones are served before they are read (`ZoneTable.defer`): the first
    question that reaches one reads it, and every answer is the one the read zone gives."""
    reads: list[str] = []

    def read() -> ServedZone:
        reads.append("read")
        return zone.served

    deferred = ZoneTable()
    deferred.defer(ORIGIN, read)
    assert len(deferred) == 1 and not list(deferred)
    questions = [("www.regshield.test.", "A"), ("nothere.regshield.test.", "A"),
                 ("regshield.test.", "SOA"), ("regshield.test.", "DS"),
                 ("a.b.nothere.regshield.test.", "TXT")]
    with running_server(DnsServer(ZoneTable([zone.served]))) as read_ahead, \
            running_server(DnsServer(deferred)) as unread:
        for name, rdtype in questions:
            for dnssec in (True, False):
                expected, got = (ask(server, name, rdtype, dnssec=dnssec)
                                 for server in (read_ahead, unread))
                got.id = expected.id
                assert got.to_wire() == expected.to_wire(), (name, rdtype, dnssec)
    assert reads == ["read"] and not deferred.deferred and list(deferred) == [zone.served]


def test_a_zone_whose_reading_fails_is_no_longer_served() -> None:
    deferred = ZoneTable()
    deferred.defer(ORIGIN, lambda: None)  # a damaged copy: the publisher signs it again
    with running_server(DnsServer(deferred)) as server:
        assert ask(server, "www.regshield.test.", "A").rcode() == dns.rcode.REFUSED
    assert len(deferred) == 0 and deferred.get(ORIGIN) is None


def test_a_zone_loading_answers_servfail_not_its_parents_denial(zone: SignedZone) -> None:
    """A large zone being read at start (`ZoneTable.load`) answers SERVFAIL, so resolvers ask
    another of its servers; neither a zone above it nor the refusal of names in no zone
    speaks for it; once put, it answers."""
    parent = ServedZone(dns.name.from_text("test."), 1, (
        dns.rrset.from_text("test.", 300, "IN", "SOA", "ns1.test. h.test. 1 7200 3600 1209600 300"),
        dns.rrset.from_text("test.", 300, "IN", "NS", "ns1.test."),
        dns.rrset.from_text("ns1.test.", 300, "IN", "A", "192.0.2.1")))
    table = ZoneTable([parent])
    table.load(ORIGIN)
    assert len(table) == 2 and table.waits(dns.name.from_text("www.regshield.test."))
    with running_server(DnsServer(table)) as server:
        for name, rdtype, dnssec, tcp in [("www.regshield.test.", "A", True, False),
                                           ("nothere.regshield.test.", "A", False, False),
                                           ("regshield.test.", "SOA", True, True),
                                           ("regshield.test.", "ANY", False, False)]:
            response = ask(server, name, rdtype, dnssec=dnssec, tcp=tcp)
            assert response.rcode() == dns.rcode.SERVFAIL, (name, rdtype)
            assert not response.answer and not response.authority
        # The parent still answers for itself, and a name in no zone is still refused.
        assert ask(server, "ns1.test.", "A").rcode() == dns.rcode.NOERROR
        assert ask(server, "www.example.", "A").rcode() == dns.rcode.REFUSED
        table.put(zone.served)
        response = ask(server, "www.regshield.test.", "A")
        assert response.rcode() == dns.rcode.NOERROR and response.flags & dns.flags.AA
    assert not table.loading and len(table) == 2
