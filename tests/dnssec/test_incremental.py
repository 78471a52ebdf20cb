"""Incremental signing: a change re-signs only what it touches, the result stays valid for
ldns, BIND and Knot, its diff is an IXFR sequence, and signatures are refreshed a few at a time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import dns.dnssec
import dns.name
import dns.rdatatype
import dns.rrset
import dns.zone
import pytest
from dns_peers import zone_rrsets

from regshield.dns.zonedata import ZoneDiff
from regshield.dnssec.incremental import SignedZone
from regshield.dnssec.keys import ECDSAP256SHA256, ED25519, KSK_FLAGS, SigningKey, generate_key
from regshield.dnssec.signer import KSK_SIGNED_TYPES

from .validators import assert_valid, write_zone

ORIGIN = dns.name.from_text("example.")
NOW = datetime.now(UTC).replace(microsecond=0)
ZONE = """$ORIGIN example.
$TTL 3600
@           IN SOA  ns1 hostmaster 100 7200 900 1209600 300
@           IN NS   ns1
ns1         IN A    192.0.2.1
www         IN A    192.0.2.10
www         IN AAAA 2001:db8::10
mail        IN A    192.0.2.3
*.wild      IN TXT  "wildcard"
a.b.c       IN A    192.0.2.20
secure      IN NS   ns.secure
secure      IN DS   12345 13 2 49FD46E6C4B45C55D4AC49FD46E6C4B45C55D4AC49FD46E6C4B45C55D4AC49FD
ns.secure   IN A    192.0.2.40
"""


def _rrsets(text: str = ZONE) -> list[dns.rrset.RRset]:
    return zone_rrsets(dns.zone.from_text(text, relativize=False))


def _keys(algorithm: int = ECDSAP256SHA256) -> list[SigningKey]:
    return [generate_key(algorithm, KSK_FLAGS), generate_key(algorithm)]


def _rrset(name: str, rdtype: str, *rdatas: str, ttl: int = 3600) -> dns.rrset.RRset:
    return dns.rrset.from_text(dns.name.from_text(name, ORIGIN), ttl, "IN", rdtype, *rdatas)


def _texts(rrsets: tuple[dns.rrset.RRset, ...] | list[dns.rrset.RRset]) -> set[str]:
    return {line for rrset in rrsets for line in rrset.to_text().splitlines()}


def _name(text: str) -> dns.name.Name:
    return dns.name.from_text(text, ORIGIN)


@pytest.mark.parametrize("nsec", ["nsec", "nsec3"])
def test_adds_and_deletes_of_names_and_delegations_keep_the_zone_valid(
    tmp_path: Path, nsec: str
) -> None:
    zone = SignedZone(_rrsets(), _keys(), NOW, nsec=nsec)  # type: ignore[arg-type]
    assert_valid(write_zone(tmp_path / "0.zone", zone.rrsets()), "example.")
    steps: list[tuple[list[dns.rrset.RRset], list[tuple[dns.name.Name, int]]]] = [
        # A new name under a new empty non-terminal, a changed RRset, a deleted name.
        ([_rrset("new.deep", "A", "192.0.2.99"), _rrset("www", "A", "192.0.2.11", ttl=300)],
         [(_name("a.b.c"), dns.rdatatype.A)]),
        # A new delegation with glue: the names below it leave the chain and go unsigned.
        ([_rrset("deep", "NS", "ns.deep.example."), _rrset("ns.deep", "A", "192.0.2.98")], []),
        # The delegation goes: the names below it are signed and chained again.
        ([], [(_name("deep"), dns.rdatatype.NS), (_name("ns.deep"), dns.rdatatype.A)]),
        # A secure delegation turns insecure, and the last name of a branch goes.
        ([], [(_name("secure"), dns.rdatatype.DS), (_name("*.wild"), dns.rdatatype.TXT)]),
    ]
    for number, (replace, delete) in enumerate(steps, start=1):
        before = zone.rrsets()
        diff = zone.apply(NOW, replace=replace, delete=delete)
        after = zone.rrsets()
        assert_valid(write_zone(tmp_path / f"{number}.zone", after), "example.")
        # The diff carries the old zone to the new one, as an IXFR client would apply it.
        assert (_texts(before) - _texts(diff.removed)) | _texts(diff.added) == _texts(after)
        assert _texts(diff.removed) <= _texts(before)
    names = {rrset.name for rrset in zone.rrsets()}
    assert _name("new.deep") in names and _name("ns.deep") not in names


def test_a_change_re_signs_only_the_rrset_the_soa_and_the_chain_links_it_touches() -> None:
    zone = SignedZone(_rrsets(), _keys(), NOW)
    untouched = zone.rrsig(_name("mail"), dns.rdatatype.A)
    made = zone.signatures_made
    diff = zone.apply(NOW, replace=[_rrset("mail", "A", "192.0.2.4")])
    # The A RRset and the SOA; the NSEC of mail is unchanged (same types, same next name).
    assert zone.signatures_made - made == 2
    assert {(r.name, r.rdtype, r.covers) for r in diff.added} == {
        (ORIGIN, dns.rdatatype.SOA, 0), (ORIGIN, dns.rdatatype.RRSIG, dns.rdatatype.SOA),
        (_name("mail"), dns.rdatatype.A, 0),
        (_name("mail"), dns.rdatatype.RRSIG, dns.rdatatype.A),
    }
    assert zone.rrsig(_name("mail"), dns.rdatatype.A) is not untouched
    assert zone.rrsig(_name("www"), dns.rdatatype.A) is not None

    www = zone.rrsig(_name("www"), dns.rdatatype.AAAA)
    made = zone.signatures_made
    zone.apply(NOW, replace=[_rrset("mail2", "A", "192.0.2.5")])
    # The new RRset, its NSEC, its predecessor's NSEC (mail), and the SOA.
    assert zone.signatures_made - made == 4
    assert zone.rrsig(_name("www"), dns.rdatatype.AAAA) is www


def test_the_diff_is_an_ixfr_sequence_from_serial_to_serial() -> None:
    zone = SignedZone(_rrsets(), _keys(), NOW)
    diff = zone.apply(NOW, delete=[(_name("www"), dns.rdatatype.AAAA)])
    assert isinstance(diff, ZoneDiff)
    assert (diff.from_serial, diff.to_serial, zone.serial) == (100, 101, 101)
    assert diff.removed[0].rdtype == dns.rdatatype.SOA and diff.removed[0][0].serial == 100
    assert diff.added[0].rdtype == dns.rdatatype.SOA and diff.added[0][0].serial == 101
    served = zone.served((diff,))
    assert served.serial == 101 and served.diffs_since(100) == [diff]
    # A new SOA with a greater serial is kept; a smaller one only moves the serial on by one.
    zone.apply(NOW, replace=[_rrset("@", "SOA", "ns1 hostmaster 2026010100 7200 900 1209600 300")])
    assert zone.serial == 2026010100
    zone.apply(NOW, replace=[_rrset("@", "SOA", "ns1 hostmaster 5 7200 900 1209600 300")])
    assert zone.serial == 2026010101


def test_signer_records_and_names_outside_the_zone_are_refused() -> None:
    zone = SignedZone(_rrsets(), _keys(), NOW)
    with pytest.raises(ValueError, match="made by the signer"):
        zone.apply(NOW, replace=[_rrset("www", "NSEC", "example. A")])
    with pytest.raises(ValueError, match="outside"):
        zone.apply(NOW, replace=[dns.rrset.from_text("www.example.net.", 300, "IN", "A",
                                                      "192.0.2.1")])
    with pytest.raises(ValueError, match="SOA"):
        zone.apply(NOW, delete=[(ORIGIN, dns.rdatatype.SOA)])


def _expirations(zone: SignedZone) -> list[int]:
    return [int(rrset[0].expiration) for rrset in zone.rrsets()
            if rrset.rdtype == dns.rdatatype.RRSIG]


def test_expiries_are_jittered_and_refresh_re_signs_them_a_few_at_a_time() -> None:
    text = ZONE + "".join(f"host{i} IN A 192.0.2.{i}\n" for i in range(1, 120))
    lifetime = timedelta(days=14)
    zone = SignedZone(_rrsets(text), _keys(ED25519), NOW, lifetime=lifetime)
    expirations = _expirations(zone)
    latest = int((NOW + lifetime).timestamp())
    span = int(lifetime.total_seconds() * 0.1)
    assert all(latest - span <= value <= latest for value in expirations)
    assert len(set(expirations)) > len(expirations) * 0.9
    assert max(expirations) - min(expirations) > span * 0.8

    # Nothing is due until the earliest expiry enters the refresh window (a quarter lifetime).
    assert zone.refresh(NOW + timedelta(days=5)) is None
    first = datetime.fromtimestamp(min(expirations), UTC) - zone.refresh_window
    diff = zone.refresh(first + timedelta(hours=6))
    assert diff is not None
    refreshed = [r for r in diff.added if r.rdtype == dns.rdatatype.RRSIG
                 and r.covers != dns.rdatatype.SOA]
    assert 0 < len(refreshed) < len(expirations) / 4
    window_end = int((first + timedelta(hours=6) + zone.refresh_window).timestamp())
    assert all(int(r[0].expiration) > window_end for r in refreshed)
    # Refreshing all the way through keeps every signature ahead of the window.
    later = NOW + timedelta(days=13)
    assert zone.refresh(later) is not None
    assert min(_expirations(zone)) > int((later + zone.refresh_window).timestamp())


def _validate_all(zone: SignedZone, when: datetime) -> None:
    rrsets = zone.rrsets()
    index = {(r.name, r.rdtype): r for r in rrsets if r.rdtype != dns.rdatatype.RRSIG}
    keys = {ORIGIN: index[(ORIGIN, dns.rdatatype.DNSKEY)]}
    for rrsigs in (r for r in rrsets if r.rdtype == dns.rdatatype.RRSIG):
        dns.dnssec.validate(index[(rrsigs.name, rrsigs.covers)], rrsigs, keys,  # type: ignore[arg-type]
                            now=when.timestamp())


def test_a_new_zsk_re_signs_everything_and_a_new_ksk_only_the_dnskey_set(tmp_path: Path) -> None:
    ksk, zsk = _keys()
    zone = SignedZone(_rrsets(), [ksk, zsk], NOW, nsec="nsec3")
    www = zone.rrsig(_name("www"), dns.rdatatype.A)

    new_ksk = generate_key(ECDSAP256SHA256, KSK_FLAGS)
    diff = zone.replace_keys([ksk, new_ksk, zsk], NOW)
    assert zone.rrsig(_name("www"), dns.rdatatype.A) is www
    dnskey_sigs = zone.rrsig(ORIGIN, dns.rdatatype.DNSKEY)
    assert dnskey_sigs is not None
    assert {rrsig.key_tag for rrsig in dnskey_sigs} == {ksk.key_tag, new_ksk.key_tag}
    assert {r.rdtype for r in diff.added} == {
        dns.rdatatype.SOA, dns.rdatatype.DNSKEY, dns.rdatatype.RRSIG}

    new_zsk = generate_key(ECDSAP256SHA256)
    zone.replace_keys([new_ksk, new_zsk], NOW)
    for rrset in zone.rrsets():
        if rrset.rdtype == dns.rdatatype.RRSIG:
            expected = new_ksk if rrset.covers == dns.rdatatype.DNSKEY else new_zsk
            assert [rrsig.key_tag for rrsig in rrset] == [expected.key_tag]
    _validate_all(zone, NOW)
    assert_valid(write_zone(tmp_path / "rolled.zone", zone.rrsets()), "example.")


def test_a_pre_published_zsk_is_in_the_dnskey_set_but_signs_nothing_until_it_is_active(
    tmp_path: Path,
) -> None:
    ksk, zsk = _keys()
    next_zsk = generate_key(ECDSAP256SHA256)
    zone = SignedZone(_rrsets(), [ksk, zsk], NOW, publish=[next_zsk.dnskey])
    dnskeys = next(r for r in zone.rrsets() if r.rdtype == dns.rdatatype.DNSKEY)
    assert next_zsk.dnskey in dnskeys
    tags = {rrsig.key_tag for r in zone.rrsets() if r.rdtype == dns.rdatatype.RRSIG for rrsig in r}
    assert next_zsk.key_tag not in tags
    # The rollover: the new ZSK signs, the old one stays published until caches forget it.
    zone.replace_keys([ksk, next_zsk], NOW, publish=[zsk.dnskey])
    dnskeys = next(r for r in zone.rrsets() if r.rdtype == dns.rdatatype.DNSKEY)
    assert {zsk.dnskey, next_zsk.dnskey, ksk.dnskey} == set(dnskeys)
    www = zone.rrsig(_name("www"), dns.rdatatype.A)
    assert www is not None and [rrsig.key_tag for rrsig in www] == [next_zsk.key_tag]
    _validate_all(zone, NOW)
    assert_valid(write_zone(tmp_path / "rolling.zone", zone.rrsets()), "example.")


def test_cds_and_cdnskey_are_signed_by_the_ksk_like_the_dnskey_rrset() -> None:
    keys = _keys()
    ksk = next(key for key in keys if key.is_ksk)
    cds = dns.dnssec.make_cds(ORIGIN, ksk.dnskey, "SHA256")
    rrsets = [*_rrsets(), _rrset("example.", "CDS", cds.to_text()),
              _rrset("example.", "CDNSKEY", ksk.dnskey.to_text())]
    zone = SignedZone(rrsets, keys, NOW)
    for rdtype in (dns.rdatatype.CDS, dns.rdatatype.CDNSKEY):
        rrsigs = zone.rrsig(ORIGIN, rdtype)
        assert rrsigs is not None
        # RFC 7344 section 4.1: signed by a key the parent's DS names, the KSK.
        assert [rrsig.key_tag for rrsig in rrsigs] == [ksk.key_tag]


def test_a_key_change_with_an_edit_is_one_step_and_the_dnskey_rrset_is_what_it_names(
    tmp_path: Path,
) -> None:
    """The publisher's way: the zone first built with a pre-published key given as a DNSKEY
    record, then edits and key changes in one step each. A record given before leaves the
    DNSKEY RRset once a change no longer names it; a new KSK re-signs the CDS and CDNSKEY
    RRsets and the DNSKEY RRset, and nothing else."""
    ksk, zsk = _keys()
    next_zsk = generate_key(ECDSAP256SHA256)
    zone = SignedZone([*_rrsets(), _rrset("example.", "DNSKEY", next_zsk.dnskey.to_text()),
                       *_cds(ksk)], [ksk, zsk], NOW)
    www = zone.rrsig(_name("www"), dns.rdatatype.A)

    # The new ZSK takes over in the same step as an edit: one new serial, everything signed.
    diff = zone.apply(NOW, replace=[_rrset("mail", "A", "192.0.2.77")],
                      keys=[ksk, next_zsk], publish=[zsk.dnskey])
    assert diff.to_serial == diff.from_serial + 1
    assert zone.rrsig(_name("www"), dns.rdatatype.A) is not www
    for rrset in zone.rrsets():
        if rrset.rdtype == dns.rdatatype.RRSIG:
            by_ksk = rrset.covers in KSK_SIGNED_TYPES
            assert [r.key_tag for r in rrset] == [(ksk if by_ksk else next_zsk).key_tag]
    _validate_all(zone, NOW)

    # The old ZSK withdrawn, a new KSK: the DNSKEY RRset is exactly the keys named.
    new_ksk = generate_key(ECDSAP256SHA256, KSK_FLAGS)
    cds = zone.rrsig(ORIGIN, dns.rdatatype.CDS)
    www = zone.rrsig(_name("www"), dns.rdatatype.A)
    zone.replace_keys([new_ksk, next_zsk], NOW)
    dnskeys = next(r for r in zone.rrsets() if r.rdtype == dns.rdatatype.DNSKEY)
    assert set(dnskeys) == {new_ksk.dnskey, next_zsk.dnskey}
    assert zone.rrsig(_name("www"), dns.rdatatype.A) is www
    resigned = zone.rrsig(ORIGIN, dns.rdatatype.CDS)
    assert resigned is not cds and resigned is not None
    assert [r.key_tag for r in resigned] == [new_ksk.key_tag]
    _validate_all(zone, NOW)
    zone.apply(NOW, replace=_cds(new_ksk))  # the parent is asked for the new key's DS
    assert_valid(write_zone(tmp_path / "rekeyed.zone", zone.rrsets()), "example.")


def _cds(ksk: SigningKey) -> list[dns.rrset.RRset]:
    return [_rrset("example.", "CDS", dns.dnssec.make_cds(ORIGIN, ksk.dnskey, "SHA256").to_text()),
            _rrset("example.", "CDNSKEY", ksk.dnskey.to_text())]


def _state(zone: SignedZone) -> dict[str, object]:
    return {name: getattr(zone, name) for name in (
        "_data", "_names", "_modes", "_rrsigs", "_chain", "_denial", "_denial_at", "_hashes",
        "_hashed", "_extra_dnskeys", "origin")}


def _unsigned(rrsets: tuple[dns.rrset.RRset, ...]) -> set[str]:
    return {rrset.to_text() if rrset.rdtype != dns.rdatatype.RRSIG
            else f"{rrset.name} RRSIG {rrset.covers} {len(rrset)}" for rrset in rrsets}


@pytest.mark.parametrize("nsec", ["nsec", "nsec3"])
def test_a_zone_restored_from_what_it_served_signs_nothing_and_changes_as_the_original(
    tmp_path: Path, nsec: str
) -> None:
    keys = _keys()
    original = SignedZone(_rrsets(), keys, NOW, nsec=nsec)  # type: ignore[arg-type]
    original.apply(NOW, replace=[_rrset("new.deep", "A", "192.0.2.99")])

    restored = SignedZone.restore(original.rrsets(), keys, nsec=nsec)  # type: ignore[arg-type]

    assert restored.signatures_made == 0
    assert _state(restored) == _state(original)
    # The next change is the same change, and the zone it leaves validates.
    later = NOW + timedelta(minutes=30)  # within the backdating: valid now
    change = [_rrset("deep", "NS", "ns.deep.example."), _rrset("ns.deep", "A", "192.0.2.98")]
    expected = original.apply(later, replace=change, delete=[(_name("www"), dns.rdatatype.AAAA)])
    diff = restored.apply(later, replace=change, delete=[(_name("www"), dns.rdatatype.AAAA)])
    # (ECDSA signatures differ from one signing to the next: RRSIGs compare by what they sign.)
    assert _unsigned(diff.removed) == _unsigned(expected.removed)
    assert _unsigned(diff.added) == _unsigned(expected.added)
    assert_valid(write_zone(tmp_path / "restored.zone", restored.rrsets()), "example.")
    # Only what is due is signed again.
    assert restored.refresh(later) is None
    assert restored.refresh(NOW + timedelta(days=11)) is not None


def test_a_restore_refuses_records_that_are_not_a_signed_zone() -> None:
    keys = _keys()
    signed = SignedZone(_rrsets(), keys, NOW, nsec="nsec3")
    without_dnskey = [r for r in signed.rrsets() if r.rdtype != dns.rdatatype.DNSKEY]
    with pytest.raises(ValueError, match="no DNSKEY RRset"):
        SignedZone.restore(without_dnskey, keys, nsec="nsec3")
    # NSEC3 records of another zone's names (here: the chain read as NSEC) do not fit.
    with pytest.raises(ValueError, match="lacks"):
        SignedZone.restore(signed.rrsets(), keys, nsec="nsec")
    stray = dns.rrset.from_text(f"{'0' * 32}.example.", 300, "IN", "NSEC3",
                                "1 0 0 - 00000000000000000000000000000000 A")
    with pytest.raises(ValueError, match="no hash of a name"):
        SignedZone.restore([*signed.rrsets(), stray], keys, nsec="nsec3")
