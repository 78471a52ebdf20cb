"""The store's form of RRsets: every record reads back equal to dnspython's own reading of
the same wire, and a damaged blob is refused whole."""

from __future__ import annotations

import io
import pickle
import zlib
from datetime import UTC, datetime

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest

from regshield.dns import wireform
from regshield.dnssec.incremental import SignedZone
from regshield.dnssec.keys import KSK_FLAGS, generate_key

ORIGIN = dns.name.from_text("Example.")
RECORDS = [
    ("@", "SOA", "ns1 hostmaster 2026120601 7200 900 1209600 300"),
    ("@", "NS", "ns1.example."),
    ("@", "MX", "10 mail"),
    ("@", "TXT", '"v=spf1 -all" "two strings"'),
    ("@", "CAA", '0 issue "letsencrypt.org"'),
    ("ns1", "A", "192.0.2.1"),
    ("ns1", "AAAA", "2001:db8::1"),
    ("Mixed.Case", "A", "198.51.100.7"),
    ("alias", "CNAME", "www"),
    ("_sip._tcp", "SRV", "10 60 5060 sip"),
    ("sub", "NS", "ns.sub"),
    ("sub", "DS", "12345 13 2 49FD46E6C4B45C55D4AC49FD46E6C4B45C55D4AC49FD46E6C4B45C55D4AC49FD"),
    ("ns.sub", "A", "192.0.2.2"),
    ("*.wild", "TXT", '"wildcard"'),
    ("tlsa._443._tcp", "TLSA", "3 1 1 " + "ab" * 32),
    ("d", "DNAME", "elsewhere.example."),
]


def rrsets() -> list[dns.rrset.RRset]:
    return [dns.rrset.from_rdata(dns.name.from_text(owner, ORIGIN), 3600, dns.rdata.from_text(
        "IN", rdtype, text, origin=ORIGIN, relativize=False)) for owner, rdtype, text in RECORDS]


def same(read: list[dns.rrset.RRset], written: list[dns.rrset.RRset]) -> None:
    assert len(read) == len(written)
    for got, want in zip(read, written, strict=True):
        assert (got.name, got.rdtype, got.covers, got.ttl) == (
            want.name, want.rdtype, want.covers, want.ttl)
        assert got.name.labels == want.name.labels  # the case as written
        assert got == want
        assert {hash(rdata) for rdata in got} == {hash(rdata) for rdata in want}
        for rdata in got:
            wire = rdata.to_wire()
            assert wire is not None
            # Equal to what dnspython reads from the same wire, field by field.
            assert rdata == dns.rdata.from_wire(dns.rdataclass.IN, rdata.rdtype, wire, 0,
                                                len(wire))
            assert rdata.to_text() == dns.rdata.from_wire(
                dns.rdataclass.IN, rdata.rdtype, wire, 0, len(wire)).to_text()


@pytest.mark.parametrize("nsec", ["nsec", "nsec3"])
def test_a_signed_zone_reads_back_record_for_record(nsec: str) -> None:
    keys = [generate_key(flags=KSK_FLAGS), generate_key()]
    signed = SignedZone(rrsets(), keys, datetime.now(UTC), nsec=nsec)  # type: ignore[arg-type]
    written = list(signed.rrsets())
    kinds = {rrset.rdtype for rrset in written}
    assert {dns.rdatatype.RRSIG, dns.rdatatype.DNSKEY, dns.rdatatype.DS} <= kinds

    read = wireform.decode(wireform.encode(written))

    same(read, written)
    # Read back, the zone is the one the signer holds (what a restart relies on).
    restored = SignedZone.restore(read, keys, nsec=nsec)  # type: ignore[arg-type]
    assert sorted(map(str, restored.rrsets())) == sorted(map(str, written))


def test_an_empty_list_and_unusual_ttls_and_types_read_back() -> None:
    assert wireform.decode(wireform.encode([])) == []
    odd = [dns.rrset.from_text("x.example.", 0, "IN", "TYPE65000", r"\# 3 010203"),
           dns.rrset.from_text("x.example.", 2**31 - 1, "IN", "A", "192.0.2.1", "192.0.2.2")]
    same(wireform.decode(wireform.encode(odd)), odd)


@pytest.mark.parametrize("damage", [
    lambda blob: blob[:-5],  # cut short
    lambda blob: b"XXXX" + blob[4:],  # not this form
    lambda blob: wireform.MAGIC + zlib.compress(zlib.decompress(blob[4:])[:-3]),  # a record cut
    lambda blob: wireform.MAGIC + zlib.compress(zlib.decompress(blob[4:]) + b"\x05abc"),
    lambda blob: wireform.MAGIC + zlib.compress(b"\xc0\x0c" + zlib.decompress(blob[4:])),
])
def test_a_damaged_blob_is_refused(damage: object) -> None:
    blob = wireform.encode(rrsets())
    with pytest.raises(ValueError):
        wireform.decode(damage(blob))  # type: ignore[operator]


def test_a_record_whose_length_disagrees_with_its_type_is_refused() -> None:
    a = dns.rrset.from_text("x.example.", 300, "IN", "A", "192.0.2.1")
    data = bytearray(zlib.decompress(wireform.encode([a])[4:]))
    data[-6:-4] = (5).to_bytes(2, "big")  # an A record of five octets
    data += b"\x00"
    with pytest.raises(ValueError):
        wireform.decode(wireform.MAGIC + zlib.compress(bytes(data)))


@pytest.mark.parametrize("text", ["Mixed.Case.Example.", "example.", ".", r"a\000b.example.",
                                  "*.wild.example.", "x" * 63 + ".example."])
def test_a_stored_name_is_a_dnspython_name_in_every_way_but_the_work(text: str) -> None:
    plain = dns.name.from_text(text)
    wire = plain.to_wire()
    assert wire is not None
    stored = wireform.stored_name(wire)
    lowered = dns.name.from_text(text.lower())

    assert isinstance(stored, dns.name.Name)
    assert stored.labels == plain.labels  # the case as written
    for other in (plain, lowered, wireform.stored_name(lowered.to_wire() or b"")):
        assert stored == other and other == stored
        assert not stored != other  # noqa: SIM202 (its own __ne__)
        assert hash(stored) == hash(other)
        assert {other: 1}[stored] == 1 and {stored: 1}[other] == 1
    assert stored != dns.name.from_text("other.example.") and stored != text
    assert stored.to_wire() == wire
    assert stored.to_wire(canonicalize=True) == plain.to_wire(canonicalize=True)
    assert stored.canonicalize().labels == plain.canonicalize().labels
    assert stored.to_text() == plain.to_text()
    # Compression and ordering are dnspython's own.
    assert sorted([stored, dns.name.from_text("zz.example.")]) == sorted(
        [plain, dns.name.from_text("zz.example.")])
    written = []
    for name in (stored, plain):
        out, table = io.BytesIO(), {}  # type: ignore[var-annotated]
        for _ in range(2):  # the second time, a pointer to the first
            name.to_wire(out, table)
        written.append(out.getvalue())
    assert written[0] == written[1]
    # Sent to a DNS worker, it arrives as what it is.
    again = pickle.loads(pickle.dumps(stored))  # noqa: S301 (its own bytes)
    assert type(again) is wireform.StoredName and again == plain and hash(again) == hash(plain)
    assert again.labels == plain.labels


@pytest.mark.parametrize("wire", [b"", b"\x03abc", b"\xc0\x0c", b"\x40" + b"a" * 64 + b"\x00",
                                  b"\x01a\x00extra", (b"\x3f" + b"a" * 63) * 4 + b"\x00"])
def test_a_stored_name_that_is_not_one_absolute_name_is_refused(wire: bytes) -> None:
    with pytest.raises(ValueError):
        wireform.stored_name(wire)


def test_records_read_back_hash_as_dnspython_does_after_pickling_and_replace() -> None:
    keys = [generate_key(flags=KSK_FLAGS), generate_key()]
    written = list(SignedZone(rrsets(), keys, datetime.now(UTC)).rrsets())
    read = wireform.decode(wireform.encode(written))
    for got, want in zip(read, written, strict=True):
        for rdata, expected in zip(sorted(got), sorted(want), strict=True):
            assert hash(rdata) == hash(expected)
            # The kept hash is this process's: a copy sent elsewhere works it out again.
            again = pickle.loads(pickle.dumps(rdata))  # noqa: S301 (its own bytes)
            assert "_hash" not in rdata.__getstate__()
            assert again == expected and hash(again) == hash(expected)
            assert again.to_text() == expected.to_text()
            if rdata.rdtype != dns.rdatatype.RRSIG:
                continue
            later = rdata.replace(expiration=rdata.expiration + 1)  # type: ignore[attr-defined]
            assert hash(later) == hash(expected.replace(  # type: ignore[attr-defined]
                expiration=expected.expiration + 1))  # type: ignore[attr-defined]


@pytest.mark.parametrize("rdtype, text, damage", [
    ("SOA", "ns1.example. h.example. 1 7200 900 1209600 300",
     lambda data: data[:-4] + b"\xff\xff\xff\xff"),  # a negative-TTL minimum
    ("SOA", "ns1.example. h.example. 1 7200 900 1209600 300", lambda data: data + b"\0"),
    ("DNSKEY", "257 3 13 " + "AQID" * 8, lambda data: data[:3]),  # no room for its fields
])
def test_a_record_read_by_this_module_that_is_out_of_shape_is_refused(
        rdtype: str, text: str, damage: object) -> None:
    rrset = dns.rrset.from_text("x.example.", 300, "IN", rdtype, text)
    data = zlib.decompress(wireform.encode([rrset])[4:])
    length_at = len(data) - len(rrset[0].to_wire() or b"") - 2
    record = damage(data[length_at + 2:])  # type: ignore[operator]
    damaged = data[:length_at] + len(record).to_bytes(2, "big") + record
    with pytest.raises(ValueError):
        wireform.decode(wireform.MAGIC + zlib.compress(damaged))
