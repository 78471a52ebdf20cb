"""unbound, validating with the zone's DS as its trust anchor, resolves through the server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest
from dns_peers import (
    LOOPBACK,
    PeerProcess,
    SignedZone,
    build_signed_zone,
    running_server,
    start_unbound,
    with_corrupted_signature,
)

from regshield.dns.server import DnsServer
from regshield.dns.zonedata import ZoneTable


def resolve(resolver: PeerProcess, name: str, rdtype: str) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype, want_dnssec=True)
    return dns.query.udp(query, LOOPBACK, port=resolver.port, timeout=5)


@pytest.fixture(params=["nsec", "nsec3"])
def validated(request: pytest.FixtureRequest,
              tmp_path: Path) -> Iterator[tuple[PeerProcess, ZoneTable, SignedZone]]:
    chain: Literal["nsec", "nsec3"] = request.param
    zone = build_signed_zone(nsec=chain)
    table = ZoneTable([zone.served])
    with running_server(DnsServer(table)) as server:
        resolver = start_unbound(tmp_path, zone.origin, zone.ds_text(),
                                 [(LOOPBACK, server.port)])
        try:
            yield resolver, table, zone
        finally:
            resolver.stop()


def test_signed_answers_and_denials_validate_in_unbound(
    validated: tuple[PeerProcess, ZoneTable, SignedZone],
) -> None:
    resolver, _, _ = validated
    cases = [
        ("www.regshield.test.", "A", dns.rcode.NOERROR, 1),
        ("alias.regshield.test.", "A", dns.rcode.NOERROR, 2),  # CNAME followed in the zone
        ("anything.wild.regshield.test.", "TXT", dns.rcode.NOERROR, 1),  # wildcard expansion
        ("missing.regshield.test.", "A", dns.rcode.NXDOMAIN, 0),
        ("www.regshield.test.", "MX", dns.rcode.NOERROR, 0),  # NODATA
        ("ent.a.regshield.test.", "A", dns.rcode.NOERROR, 0),  # empty non-terminal
        ("anything.wild.regshield.test.", "MX", dns.rcode.NOERROR, 0),  # wildcard NODATA
        ("sub.regshield.test.", "DS", dns.rcode.NOERROR, 1),
        ("insecure.regshield.test.", "DS", dns.rcode.NOERROR, 0),  # no DS: NSEC/NSEC3 proof
    ]
    for name, rdtype, rcode, answer_sets in cases:
        response = resolve(resolver, name, rdtype)
        seen = (name, rdtype, dns.rcode.to_text(response.rcode()),
                bool(response.flags & dns.flags.AD))
        assert seen == (name, rdtype, dns.rcode.to_text(rcode), True), resolver.output()
        answered = [r for r in response.answer if r.rdtype != dns.rdatatype.RRSIG]
        assert len(answered) == answer_sets, (name, rdtype, response.answer)


def test_a_corrupted_signature_makes_unbound_answer_servfail(
    validated: tuple[PeerProcess, ZoneTable, SignedZone],
) -> None:
    resolver, table, zone = validated
    assert resolve(resolver, "ns1.regshield.test.", "A").flags & dns.flags.AD
    table.put(with_corrupted_signature(zone, "www", dns.rdatatype.A, serial=2).served)
    response = resolve(resolver, "www.regshield.test.", "A")
    assert response.rcode() == dns.rcode.SERVFAIL
    assert not response.answer
