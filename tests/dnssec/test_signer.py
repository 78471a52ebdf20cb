"""The signer: every RRSIG validates with dnspython; the NSEC and NSEC3 chains and bitmaps."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import dns.dnssec
import dns.exception
import dns.name
import dns.node
import dns.rdataset
import dns.rdatatype
import dns.rrset
import dns.zone
import pytest
from dns.rdtypes.ANY.NSEC import NSEC
from dns.rdtypes.ANY.NSEC3 import NSEC3
from dns.rdtypes.ANY.RRSIG import RRSIG
from dns_peers import zone_rrsets

from regshield.dnssec.keys import ECDSAP256SHA256, ED25519, KSK_FLAGS, SigningKey, generate_key
from regshield.dnssec.signer import sign_rrset, sign_zone

INCEPTION = datetime(2026, 1, 1, tzinfo=UTC)
EXPIRATION = INCEPTION + timedelta(days=14)
NOW = (INCEPTION + timedelta(days=1)).timestamp()
ORIGIN = dns.name.from_text("example.")

ZONE_TEXT = """
$TTL 3600
@        IN SOA   ns1.example. hostmaster.example. 1 7200 900 1209600 300
@        IN NS    ns1.example.
@        IN NS    ns2.example.
@        IN MX    10 Mail.Example.
ns1      IN A     192.0.2.1
ns2      IN A     192.0.2.2
www      IN A     192.0.2.10
www      IN AAAA  2001:db8::10
*.wild   IN TXT   "wildcard"
a.b.c    IN A     192.0.2.20
Mixed    IN A     192.0.2.30
secure   IN NS    ns.secure.
secure   IN DS    12345 13 2 49FD46E6C4B45C55D4AC49FD46E6C4B45C55D4AC49FD46E6C4B45C55D4AC49FD
ns.secure IN A    192.0.2.40
insecure IN NS    ns.insecure.
ns.insecure IN A  192.0.2.50
ns.insecure IN AAAA 2001:db8::50
"""


def _zone() -> dns.zone.Zone:
    return dns.zone.from_text(ZONE_TEXT, origin=ORIGIN)


def _keys(algorithm: int) -> list[SigningKey]:
    return [generate_key(algorithm, KSK_FLAGS), generate_key(algorithm)]


def _index(rrsets: list[dns.rrset.RRset]) -> dict[tuple[str, int, int], dns.rrset.RRset]:
    return {(r.name.to_text().lower(), r.rdtype, r.covers): r for r in rrsets}


def _signed(algorithm: int = ECDSAP256SHA256) -> tuple[list[SigningKey], list[dns.rrset.RRset]]:
    keys = _keys(algorithm)
    return keys, sign_zone(_zone(), keys, INCEPTION, EXPIRATION)


KeyMap = dict[dns.name.Name, dns.node.Node | dns.rdataset.Rdataset]


def _dnskeys(rrsets: list[dns.rrset.RRset]) -> KeyMap:
    return {ORIGIN: _index(rrsets)[("example.", dns.rdatatype.DNSKEY, 0)]}


@pytest.mark.parametrize("algorithm", [ECDSAP256SHA256, ED25519])
def test_every_rrsig_validates_with_dnspython(algorithm: int) -> None:
    _, rrsets = _signed(algorithm)
    index = _index(rrsets)
    dnskeys = _dnskeys(rrsets)
    checked = 0
    for (name, rdtype, covers), rrsigs in index.items():
        if rdtype != dns.rdatatype.RRSIG:
            continue
        covered = index[(name, covers, 0)]
        for rrsig in rrsigs:
            assert isinstance(rrsig, RRSIG)
            dns.dnssec.validate_rrsig(covered, rrsig, dnskeys, now=NOW)
            checked += 1
        dns.dnssec.validate(covered, rrsigs, dnskeys, now=NOW)
    assert checked >= 12


def test_dnskey_rrset_is_signed_by_the_ksk_and_the_rest_by_the_zsk() -> None:
    keys, rrsets = _signed()
    ksk, zsk = keys
    for rrset in rrsets:
        if rrset.rdtype != dns.rdatatype.RRSIG:
            continue
        expected = ksk if rrset.covers == dns.rdatatype.DNSKEY else zsk
        assert [rrsig.key_tag for rrsig in rrset] == [expected.key_tag]


def test_a_corrupted_signature_fails_validation() -> None:
    _, rrsets = _signed()
    index = _index(rrsets)
    www = index[("www.example.", dns.rdatatype.A, 0)]
    rrsig = index[("www.example.", dns.rdatatype.RRSIG, dns.rdatatype.A)][0]
    broken = bytearray(rrsig.signature)
    broken[5] ^= 0x01
    with pytest.raises(dns.exception.ValidationFailure):
        dns.dnssec.validate_rrsig(
            www, rrsig.replace(signature=bytes(broken)), _dnskeys(rrsets), now=NOW)
    with pytest.raises(dns.exception.ValidationFailure):
        dns.dnssec.validate_rrsig(
            www, rrsig.replace(original_ttl=rrsig.original_ttl + 1), _dnskeys(rrsets), now=NOW)


def test_nsec_chain_covers_every_authoritative_name_in_canonical_order_and_wraps() -> None:
    _, rrsets = _signed()
    chain = {r.name: r[0] for r in rrsets if r.rdtype == dns.rdatatype.NSEC}
    expected = sorted(
        dns.name.from_text(text, ORIGIN)
        for text in ["@", "ns1", "ns2", "www", "*.wild", "a.b.c", "mixed", "secure", "insecure"]
    )
    assert sorted(chain) == expected
    walked = [ORIGIN]
    while True:
        nsec = chain[walked[-1]]
        assert isinstance(nsec, NSEC)
        if nsec.next == ORIGIN:
            break
        walked.append(nsec.next)
    assert walked == expected


def _bitmap(rrsets: list[dns.rrset.RRset], name: str) -> set[str]:
    nsec = _index(rrsets)[(name, dns.rdatatype.NSEC, 0)][0]
    assert isinstance(nsec, NSEC)
    types = set()
    for window, bits in nsec.windows:
        for byte_index, byte in enumerate(bits):
            for bit in range(8):
                if byte & (0x80 >> bit):
                    types.add(dns.rdatatype.to_text(window * 256 + byte_index * 8 + bit))
    return types


def test_type_bitmaps_list_the_types_present_plus_rrsig_and_nsec() -> None:
    _, rrsets = _signed()
    assert _bitmap(rrsets, "example.") == {"SOA", "NS", "MX", "DNSKEY", "RRSIG", "NSEC"}
    assert _bitmap(rrsets, "www.example.") == {"A", "AAAA", "RRSIG", "NSEC"}
    assert _bitmap(rrsets, "secure.example.") == {"NS", "DS", "RRSIG", "NSEC"}
    assert _bitmap(rrsets, "insecure.example.") == {"NS", "RRSIG", "NSEC"}


def test_delegation_signs_ds_and_nsec_but_not_ns() -> None:
    _, rrsets = _signed()
    index = _index(rrsets)
    assert ("secure.example.", dns.rdatatype.RRSIG, dns.rdatatype.DS) in index
    assert ("secure.example.", dns.rdatatype.RRSIG, dns.rdatatype.NSEC) in index
    assert ("secure.example.", dns.rdatatype.RRSIG, dns.rdatatype.NS) not in index
    assert ("insecure.example.", dns.rdatatype.RRSIG, dns.rdatatype.NS) not in index
    assert ("example.", dns.rdatatype.RRSIG, dns.rdatatype.NS) in index


def test_glue_is_published_unsigned_and_outside_the_chain() -> None:
    _, rrsets = _signed()
    index = _index(rrsets)
    for glue in ["ns.secure.example.", "ns.insecure.example."]:
        assert (glue, dns.rdatatype.A, 0) in index
        assert not [key for key in index if key[0] == glue and key[1] in (
            dns.rdatatype.RRSIG, dns.rdatatype.NSEC)]
    for nsec in (r[0] for r in rrsets if r.rdtype == dns.rdatatype.NSEC):
        assert isinstance(nsec, NSEC)
        assert not nsec.next.is_subdomain(dns.name.from_text("ns.secure.example."))


def test_wildcard_label_is_not_counted() -> None:
    _, rrsets = _signed()
    index = _index(rrsets)
    assert index[("*.wild.example.", dns.rdatatype.RRSIG, dns.rdatatype.TXT)][0].labels == 2
    assert index[("a.b.c.example.", dns.rdatatype.RRSIG, dns.rdatatype.A)][0].labels == 4


def test_upper_case_names_in_rdata_are_signed_in_canonical_form() -> None:
    _, rrsets = _signed()
    index = _index(rrsets)
    mx = index[("example.", dns.rdatatype.MX, 0)]
    rrsig = index[("example.", dns.rdatatype.RRSIG, dns.rdatatype.MX)][0]
    lower = dns.rrset.from_text("example.", 3600, "IN", "MX", "10 mail.example.")
    dns.dnssec.validate_rrsig(mx, rrsig, _dnskeys(rrsets), now=NOW)
    dns.dnssec.validate_rrsig(lower, rrsig, _dnskeys(rrsets), now=NOW)


def test_nsec_ttl_is_the_smaller_of_soa_ttl_and_minimum() -> None:
    _, rrsets = _signed()
    assert all(r.ttl == 300 for r in rrsets if r.rdtype == dns.rdatatype.NSEC)


def test_signing_a_signed_zone_replaces_the_signatures() -> None:
    keys, rrsets = _signed()
    again = sign_zone(rrsets, keys, INCEPTION, EXPIRATION)
    assert sorted(_index(again)) == sorted(_index(rrsets))
    assert all(len(r) == 1 for r in again if r.rdtype == dns.rdatatype.RRSIG)
    dnskey = _index(again)[("example.", dns.rdatatype.DNSKEY, 0)]
    assert len(dnskey) == 2


def test_sign_rrset_output_validates_and_records_the_times() -> None:
    key = generate_key(ED25519)
    rrset = dns.rrset.from_text("Host.Example.", 600, "IN", "A", "192.0.2.1", "192.0.2.2")
    rrsig = sign_rrset(rrset, key, INCEPTION, EXPIRATION, ORIGIN)
    dnskeys: KeyMap = {ORIGIN: dns.rrset.from_rdata(ORIGIN, 3600, key.dnskey)}
    dns.dnssec.validate_rrsig(rrset, rrsig, dnskeys, now=NOW)
    assert (rrsig.inception, rrsig.expiration, rrsig.original_ttl, rrsig.labels) == (
        int(INCEPTION.timestamp()), int(EXPIRATION.timestamp()), 600, 2)
    with pytest.raises(dns.exception.ValidationFailure):
        dns.dnssec.validate_rrsig(rrset, rrsig, dnskeys, now=EXPIRATION.timestamp() + 1)


def test_naive_times_and_unknown_denial_are_refused() -> None:
    keys = _keys(ECDSAP256SHA256)
    with pytest.raises(ValueError, match="timezone"):
        sign_zone(_zone(), keys, datetime(2026, 1, 1), EXPIRATION)
    with pytest.raises(ValueError, match="nsec"):
        sign_zone(_zone(), keys, INCEPTION, EXPIRATION, nsec="nsec5")  # type: ignore[arg-type]


def test_names_below_a_dname_are_not_signed_and_not_in_the_chain() -> None:
    zone = dns.zone.from_text(
        ZONE_TEXT + "moved IN DNAME elsewhere.example.\nold.moved IN A 192.0.2.60\n",
        origin=ORIGIN,
    )
    rrsets = sign_zone(zone, _keys(ECDSAP256SHA256), INCEPTION, EXPIRATION)
    index = _index(rrsets)
    assert ("old.moved.example.", dns.rdatatype.A, 0) in index
    assert ("old.moved.example.", dns.rdatatype.NSEC, 0) not in index
    assert ("old.moved.example.", dns.rdatatype.RRSIG, dns.rdatatype.A) not in index
    assert _bitmap(rrsets, "moved.example.") == {"DNAME", "RRSIG", "NSEC"}


def test_a_single_ksk_signs_everything_as_a_combined_key() -> None:
    ksk = generate_key(ED25519, KSK_FLAGS)
    rrsets = sign_zone(list(_zone_rrsets()), [ksk], INCEPTION, EXPIRATION)
    dnskeys = _dnskeys(rrsets)
    index = _index(rrsets)
    for rrsigs in (r for r in rrsets if r.rdtype == dns.rdatatype.RRSIG):
        assert [rrsig.key_tag for rrsig in rrsigs] == [ksk.key_tag]
        covered = index[(rrsigs.name.to_text().lower(), rrsigs.covers, 0)]
        dns.dnssec.validate(covered, rrsigs, dnskeys, now=NOW)


def _zone_rrsets() -> list[dns.rrset.RRset]:
    return zone_rrsets(dns.zone.from_text(ZONE_TEXT, origin=ORIGIN, relativize=False))


# NSEC3 (RFC 5155) with the RFC 9276 parameters

NAMES = ["@", "ns1", "ns2", "www", "*.wild", "a.b.c", "mixed", "secure", "insecure"]
EMPTY_NON_TERMINALS = ["wild", "b.c", "c"]


def _signed_nsec3(algorithm: int = ECDSAP256SHA256) -> list[dns.rrset.RRset]:
    return sign_zone(_zone(), _keys(algorithm), INCEPTION, EXPIRATION, nsec="nsec3")


def _hashed(name: str) -> str:
    label = dns.dnssec.nsec3_hash(dns.name.from_text(name, ORIGIN), None, 0, 1).lower()
    return f"{label}.example."


def _nsec3_types(rrset: dns.rrset.RRset) -> set[str]:
    nsec3 = rrset[0]
    assert isinstance(nsec3, NSEC3)
    types = set()
    for window, bits in nsec3.windows:
        for byte_index, byte in enumerate(bits):
            for bit in range(8):
                if byte & (0x80 >> bit):
                    types.add(dns.rdatatype.to_text(window * 256 + byte_index * 8 + bit))
    return types


def test_nsec3_every_rrsig_validates_with_dnspython() -> None:
    for algorithm in (ECDSAP256SHA256, ED25519):
        rrsets = _signed_nsec3(algorithm)
        index = _index(rrsets)
        dnskeys = _dnskeys(rrsets)
        for (name, _, covers), rrsigs in [
            item for item in index.items() if item[0][1] == dns.rdatatype.RRSIG
        ]:
            dns.dnssec.validate(index[(name, covers, 0)], rrsigs, dnskeys, now=NOW)


def test_nsec3_chain_holds_every_authoritative_name_and_empty_non_terminal_in_hash_order() -> None:
    rrsets = _signed_nsec3()
    chain = {r.name.to_text(): r for r in rrsets if r.rdtype == dns.rdatatype.NSEC3}
    assert sorted(chain) == sorted(_hashed(name) for name in NAMES + EMPTY_NON_TERMINALS)
    assert not [r for r in rrsets if r.rdtype == dns.rdatatype.NSEC]
    owners = sorted(chain)
    for position, owner in enumerate(owners):
        nsec3 = chain[owner][0]
        assert isinstance(nsec3, NSEC3)
        assert (nsec3.algorithm, nsec3.flags, nsec3.iterations, nsec3.salt) == (1, 0, 0, b"")
        following = owners[(position + 1) % len(owners)]
        # Base32hex keeps the hash order, so the owners' text order is the chain order.
        assert base64.b32hexencode(nsec3.next).decode().lower() == following.split(".")[0]


def test_nsec3_type_bitmaps_follow_rfc_5155() -> None:
    index = _index(_signed_nsec3())

    def types(name: str) -> set[str]:
        return _nsec3_types(index[(_hashed(name), dns.rdatatype.NSEC3, 0)])

    assert types("@") == {"SOA", "NS", "MX", "DNSKEY", "NSEC3PARAM", "RRSIG"}
    assert types("www") == {"A", "AAAA", "RRSIG"}
    assert types("secure") == {"NS", "DS", "RRSIG"}
    assert types("insecure") == {"NS"}
    assert types("b.c") == set()


def test_nsec3_leaves_glue_out_and_puts_nsec3param_at_the_apex() -> None:
    rrsets = _signed_nsec3()
    owners = {r.name.to_text() for r in rrsets if r.rdtype == dns.rdatatype.NSEC3}
    assert _hashed("ns.secure") not in owners
    assert _hashed("ns.insecure") not in owners
    param = _index(rrsets)[("example.", dns.rdatatype.NSEC3PARAM, 0)][0]
    assert param.to_text() == "1 0 0 -"
