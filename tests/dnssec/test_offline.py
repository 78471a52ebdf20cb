"""The zone-file signer: master-file syntax it reads, what it writes, the errors it reports."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import dns.dnssec
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.zone
import pytest
from dns.rdtypes.ANY.DNSKEY import DNSKEY

from regshield.dnssec.keys import ED25519, KSK_FLAGS, SigningKey, generate_key, sign_data
from regshield.dnssec.offline import ZoneFileError, sign_zone_text
from regshield.dnssec.signer import sign_zone

NOW = datetime.now(UTC)
INCEPTION = NOW - timedelta(hours=1)
EXPIRATION = NOW + timedelta(days=14)
ORIGIN = dns.name.from_text("example.")
ZONE = """; a comment line
$ORIGIN example.
$TTL 1h
@   IN  SOA ns1 hostmaster ( 7 ; serial
            2h 15m 2w 300 )
    IN  NS  ns1            ; the owner carries on from the line above
@       NS  ns2.Example.
@  600  IN  TXT "quoted ; not a comment" "two  spaces"
ns1 IN 120 A 192.0.2.1
ns2     A   192.0.2.2
MiXed   AAAA 2001:DB8:0:0::1
mail    MX  10 @
alias   CNAME mail
sub     NS  ns.sub
sub     DS  12345 13 2 49FD46E6C4B45C55D4AC49FD46E6C4B4 5C55D4AC49FD46E6C4B45C55D4AC49FD
ns.sub  A   192.0.2.40
old     RRSIG A 13 2 3600 20300101000000 20200101000000 1 example. AAAA
"""


def _keys() -> list[SigningKey]:
    return [generate_key(ED25519, KSK_FLAGS), generate_key(ED25519)]


def _signed(text: str = ZONE, **options: str) -> dns.zone.Zone:
    signed, _ = sign_zone_text(text, _keys(), INCEPTION, EXPIRATION, **options)  # type: ignore[arg-type]
    return dns.zone.from_text(signed, relativize=False, origin=options.get("origin", "example."))


def test_the_signed_file_holds_the_data_as_written_with_absolute_names() -> None:
    zone = _signed()
    txt = zone.get_rdataset("example.", "TXT")
    assert txt is not None and txt.ttl == 600
    assert txt[0].to_text() == '"quoted ; not a comment" "two  spaces"'
    soa = zone.get_rdataset("example.", "SOA")
    assert soa is not None and soa.ttl == 3600
    assert soa[0].to_text() == "ns1.example. hostmaster.example. 7 7200 900 1209600 300"
    ns = zone.get_rdataset("example.", "NS")
    assert ns is not None and {r.to_text().lower() for r in ns} == {
        "ns1.example.", "ns2.example."}
    a = zone.get_rdataset("ns1.example.", "A")
    assert a is not None and a.ttl == 120
    assert zone.get_rdataset("mail.example.", "MX")[0].to_text() == "10 example."  # type: ignore[index]
    assert zone.get_rdataset("mixed.example.", "AAAA")[0].to_text() == "2001:db8::1"  # type: ignore[index]
    # The RRSIG given in the file is dropped; the signer makes its own.
    rrsigs = zone.get_rdataset("old.example.", "RRSIG", "A")
    assert rrsigs is None


def test_every_signature_validates_and_matches_the_rrset_signers_records() -> None:
    keys = _keys()
    signed, summary = sign_zone_text(ZONE, keys, INCEPTION, EXPIRATION)
    zone = dns.zone.from_text(signed, relativize=False, origin=ORIGIN)
    dnskeys = {ORIGIN: zone.get_rdataset(ORIGIN, "DNSKEY")}
    signatures = 0
    for name, rdataset in zone.iterate_rdatasets():
        if rdataset.rdtype == dns.rdatatype.RRSIG:
            covered = dns.rrset.RRset(name, rdataset.rdclass, rdataset.covers)
            covered.update(zone.get_rdataset(name, rdataset.covers))  # type: ignore[no-untyped-call]
            sigs = dns.rrset.RRset(name, rdataset.rdclass, rdataset.rdtype, rdataset.covers)
            sigs.update(rdataset)  # type: ignore[no-untyped-call]
            dns.dnssec.validate(covered, sigs, dnskeys)  # type: ignore[arg-type]
            signatures += len(rdataset)
    assert signatures == summary.signatures
    by_rrset_signer = sign_zone(
        dns.zone.from_text(ZONE.replace("old     RRSIG", "; "), relativize=False),
        keys, INCEPTION, EXPIRATION)
    assert {(r.name, r.rdtype, r.covers) for r in by_rrset_signer} == {
        (name, rdataset.rdtype, rdataset.covers) for name, rdataset in zone.iterate_rdatasets()
        if name != dns.name.from_text("old.example.")
    }


def test_nsec3_output_has_the_rfc_9276_parameters() -> None:
    zone = _signed(nsec="nsec3")
    param = zone.get_rdataset("example.", "NSEC3PARAM")
    assert param is not None and param[0].to_text() == "1 0 0 -"
    nsec3s = [rdataset for _, rdataset in zone.iterate_rdatasets()
              if rdataset.rdtype == dns.rdatatype.NSEC3]
    assert nsec3s and all(rdataset[0].iterations == 0 and rdataset[0].salt == b""
                          and rdataset[0].flags == 0 for rdataset in nsec3s)


def test_origin_comes_from_the_option_when_the_file_has_none() -> None:
    text = "$TTL 300\n@ SOA ns1 hostmaster 1 2 3 4 5\n@ NS ns1\nns1 A 192.0.2.1\n"
    zone = _signed(text, origin="example.org.")
    assert zone.origin == dns.name.from_text("example.org.")
    assert zone.get_rdataset("ns1.example.org.", "RRSIG", "A") is not None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("$ORIGIN x.\n$TTL 60\n@ SOA a b 1 2 3 4 5\n@ NS a\nw A 192.0.2.300\n", "line 5: bad A"),
        ("$ORIGIN x.\n$TTL 60\n@ SOA a b 1 2 3 4 5\nw BOGUS 1\n", "line 4: unknown record type"),
        ("$ORIGIN x.\n$TTL 60\n@ SOA a b 1 2 3 4 5\nw DS 1 13 2 ABCD\n", "line 4: bad DS"),
        ("$ORIGIN x.\n$TTL 60\n@ SOA a b 1 2 3 4 5\nw MX 10\n", "line 4: bad MX"),
        ("$ORIGIN x.\n$TTL 60\n@ SOA a b ( 1 2 3 4 5\n", "line 3: a '(' is never closed"),
        ("$ORIGIN x.\n$TTL 60\nw A 192.0.2.1\n", "no SOA"),
        ("$ORIGIN x.\nw A 192.0.2.1\n", "line 2: no TTL"),
        ("$ORIGIN x.\n$TTL 60\n@ SOA a b 1 2 3 4 5\nw CH A 192.0.2.1\n", "line 4: class CH"),
        ("$ORIGIN x.\n$TTL 60\n@ SOA a b 1 2 3 4 5\n$INCLUDE other\n", "line 4: $INCLUDE"),
        ("$ORIGIN x.\n$TTL 60\n@ SOA a b 1 2 3 4 5\nw.y. A 192.0.2.1\n", "outside the zone"),
        ("$TTL 60\nw A 192.0.2.1\n", "line 2: relative name"),
        ("$ORIGIN x.\n$TTL 60\n@ SOA a b 1 2 3 4 5\nw TXT \"open\n", "line 4: a quoted"),
    ],
)
def test_bad_zone_files_are_refused_with_the_line_at_fault(text: str, message: str) -> None:
    with pytest.raises(ZoneFileError, match=message.replace("$", r"\$").replace("(", r"\(")):
        sign_zone_text(text, _keys(), INCEPTION, EXPIRATION)


def test_large_zones_are_signed_in_several_processes_with_the_same_result() -> None:
    text = "$ORIGIN big.\n$TTL 300\n@ SOA ns hostmaster 1 2 3 4 5\n@ NS ns\nns A 192.0.2.1\n"
    text += "".join(f"h{i} A 192.0.2.{i % 250 + 1}\nd{i} NS ns.d{i}\nns.d{i} A 192.0.2.9\n"
                    for i in range(4000))
    keys = _keys()
    one, one_summary = sign_zone_text(text, keys, INCEPTION, EXPIRATION, workers=1)
    two, two_summary = sign_zone_text(text, keys, INCEPTION, EXPIRATION, workers=2)
    # Ed25519 signatures are deterministic, so the two runs agree to the byte.
    assert one == two
    # SOA, NS, DNSKEY and NSEC at the apex, A and NSEC at ns; then for each i the A and NSEC
    # of h<i> and the NSEC of the insecure delegation d<i>.
    assert one_summary.signatures == two_summary.signatures == 6 + 3 * 4000


def test_relative_names_in_data_follow_the_origin_in_force_on_their_line() -> None:
    text = ZONE + "$ORIGIN sub2.example.\n@ NS ns\nns A 192.0.2.41\nwww CNAME target\n" \
        "www2 SRV 0 5 80 target\n"
    zone = _signed(text)
    ns = zone.get_rdataset("sub2.example.", "NS")
    assert ns is not None and ns[0].to_text() == "ns.sub2.example."
    cname = zone.get_rdataset("www.sub2.example.", "CNAME")
    assert cname is not None and cname[0].to_text() == "target.sub2.example."
    srv = zone.get_rdataset("www2.sub2.example.", "SRV")
    assert srv is not None and srv[0].to_text() == "0 5 80 target.sub2.example."


def test_the_signed_file_begins_with_the_soa_wherever_the_source_has_it() -> None:
    text = "$ORIGIN example.\n$TTL 300\nwww A 192.0.2.1\n@ NS ns\nns A 192.0.2.2\n" \
        "@ SOA ns hostmaster 1 2 3 4 5\n"
    signed, _ = sign_zone_text(text, _keys(), INCEPTION, EXPIRATION)
    assert signed.startswith("example.\t300\tIN\tSOA\tns.example. hostmaster.example. 1 ")


@dataclass(frozen=True)
class _TokenKey:
    """A key that makes its own signatures, the way an HSM-held key (dnssec/hsm.py) does."""

    inner: SigningKey
    calls: list[int]

    @property
    def flags(self) -> int:
        return self.inner.flags

    @property
    def algorithm(self) -> int:
        return self.inner.algorithm

    @property
    def key_tag(self) -> int:
        return self.inner.key_tag

    @property
    def dnskey(self) -> DNSKEY:
        return self.inner.dnskey

    @property
    def is_ksk(self) -> bool:
        return self.inner.is_ksk

    def sign(self, data: bytes) -> bytes:
        self.calls.append(len(data))
        return sign_data(self.inner, data)


def test_keys_held_elsewhere_sign_through_their_own_sign_method() -> None:
    calls: list[int] = []
    keys = [_TokenKey(key, calls) for key in _keys()]
    text = ZONE + "".join(f"h{i} A 192.0.2.{i % 250 + 1}\n" for i in range(6000))
    signed, summary = sign_zone_text(text, keys, INCEPTION, EXPIRATION)
    # Every signature was asked of the keys, in this process (a token session cannot be
    # shared with forked workers).
    assert len(calls) == summary.signatures > 12000
    wanted = [line for line in signed.splitlines()
              if line.startswith(("h5999.example.\t", "example.\t3600\tIN\tDNSKEY"))]
    zone = dns.zone.from_text("\n".join(wanted), relativize=False, origin=ORIGIN,
                              check_origin=False)
    rrsigs = zone.get_rdataset("h5999.example.", "RRSIG", "A")
    covered = dns.rrset.RRset(dns.name.from_text("h5999.example."), dns.rdataclass.IN,
                               dns.rdatatype.A)
    covered.update(zone.get_rdataset("h5999.example.", "A"))  # type: ignore[no-untyped-call]
    sigs = dns.rrset.RRset(covered.name, dns.rdataclass.IN, dns.rdatatype.RRSIG, dns.rdatatype.A)
    sigs.update(rrsigs)  # type: ignore[no-untyped-call]
    dns.dnssec.validate(covered, sigs, {ORIGIN: zone.get_rdataset(ORIGIN, "DNSKEY")})  # type: ignore[dict-item]


def test_a_bad_record_in_a_large_zone_is_reported_from_the_worker_that_found_it() -> None:
    text = "$ORIGIN big.\n$TTL 300\n@ SOA ns hostmaster 1 2 3 4 5\n@ NS ns\nns A 192.0.2.1\n"
    text += "".join(f"h{i} A 192.0.2.{i % 250 + 1}\n" for i in range(12000))
    text += "broken A 192.0.2.256\n"
    with pytest.raises(ZoneFileError, match=r"line 12006: bad A data '192.0.2.256'"):
        sign_zone_text(text, _keys(), INCEPTION, EXPIRATION, workers=2)
