"""Keys in a PKCS#11 token (dnssec/hsm.py), against a real SoftHSM token made for the test."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dns.dnssec
import dns.exception
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pkcs11
import pytest
from conftest import SoftHsm
from dns.rdtypes.ANY.RRSIG import RRSIG
from pkcs11 import Attribute, KeyType, ObjectClass

from regshield.dnssec.hsm import (
    SOFTHSM_MODULE,
    HsmSession,
    HsmSigningKey,
    HsmUnavailable,
    open_token,
)
from regshield.dnssec.keys import ECDSAP256SHA256, ED25519, KSK_FLAGS, ZSK_FLAGS

LABEL = "regshield"
PIN = "271828"
SO_PIN = "314159"
ORIGIN = dns.name.from_text("example.com.")
NOW = datetime(2026, 11, 27, tzinfo=UTC)


@pytest.fixture
def token(softhsm: SoftHsm) -> Path:
    assert (softhsm.label, softhsm.pin) == (LABEL, PIN)
    return softhsm.config


@pytest.fixture
def session(token: Path) -> Iterator[HsmSession]:
    with open_token(LABEL, PIN) as opened:
        yield opened


def rrsig_over(rrset: dns.rrset.RRset, key: HsmSigningKey) -> RRSIG:
    """Sign `rrset` the way RFC 4034 section 3.1.8.1 lays out the signed data."""
    inception, expiration = NOW - timedelta(hours=1), NOW + timedelta(days=14)
    labels = len(rrset.name) - 1
    prefix = struct.pack("!HBBIIIH", rrset.rdtype, key.algorithm, labels, rrset.ttl,
                         int(expiration.timestamp()), int(inception.timestamp()), key.key_tag)
    head = rrset.name.to_digestable() + struct.pack("!HHI", rrset.rdtype, rrset.rdclass,
                                                     rrset.ttl)
    records = sorted(rdata.to_digestable(ORIGIN) for rdata in rrset)
    body = b"".join(head + struct.pack("!H", len(record)) + record for record in records)
    signature = key.sign(prefix + ORIGIN.to_digestable() + body)
    return RRSIG(dns.rdataclass.IN, dns.rdatatype.RRSIG,  # type: ignore[no-untyped-call]
                 rrset.rdtype, key.algorithm, labels, rrset.ttl, int(expiration.timestamp()),
                 int(inception.timestamp()), key.key_tag, ORIGIN, signature)


def assert_validates(rrset: dns.rrset.RRset, rrsig: RRSIG, key: HsmSigningKey) -> None:
    dnskeys = dns.rrset.from_rdata(ORIGIN, 3600, key.dnskey)
    dns.dnssec.validate_rrsig(rrset, rrsig, {ORIGIN: dnskeys}, now=NOW.timestamp())


@pytest.mark.parametrize("algorithm", [ECDSAP256SHA256, ED25519])
def test_a_key_made_in_the_token_signs_rrsets_that_validate_against_its_dnskey(
        session: HsmSession, algorithm: int) -> None:
    key = session.generate_key(bytes([algorithm, 1]), algorithm=algorithm, label="zsk-test")
    assert (key.algorithm, key.flags, key.is_ksk) == (algorithm, ZSK_FLAGS, False)
    assert key.key_tag == dns.dnssec.key_id(key.dnskey)
    rrset = dns.rrset.from_text("www.example.com.", 300, "IN", "A", "192.0.2.1", "192.0.2.2")
    rrsig = rrsig_over(rrset, key)
    assert len(rrsig.signature) == 64
    assert_validates(rrset, rrsig, key)
    tampered = dns.rrset.from_text("www.example.com.", 300, "IN", "A", "192.0.2.9")
    with pytest.raises(dns.exception.ValidationFailure):
        assert_validates(tampered, rrsig, key)


def test_a_ksk_signs_the_dnskey_rrset(session: HsmSession) -> None:
    ksk = session.generate_key(b"ksk-1", flags=KSK_FLAGS)
    zsk = session.generate_key(b"zsk-1")
    assert ksk.is_ksk and ksk.dnskey.flags == KSK_FLAGS
    dnskeys = dns.rrset.from_rdata(ORIGIN, 3600, ksk.dnskey, zsk.dnskey)
    assert_validates(dnskeys, rrsig_over(dnskeys, ksk), ksk)


def test_the_private_key_cannot_leave_the_token(session: HsmSession, token: Path) -> None:
    key = session.generate_key(b"secret-1")
    library = pkcs11.lib(SOFTHSM_MODULE)
    # Login is per process, not per session: this session shares the one `session` made.
    with library.get_token(token_label=LABEL).open(rw=True) as raw:
        private = raw.get_key(object_class=ObjectClass.PRIVATE_KEY, id=key.key_id)
        assert private[Attribute.SENSITIVE] is True
        assert private[Attribute.EXTRACTABLE] is False
        with pytest.raises(pkcs11.AttributeSensitive):
            private[Attribute.VALUE]
        wrapping: Any = raw.generate_key(KeyType.AES, 256, template={Attribute.WRAP: True})
        with pytest.raises(pkcs11.KeyUnextractable):
            wrapping.wrap_key(private)


def test_a_key_is_found_again_by_its_id_in_a_new_session(token: Path) -> None:
    with open_token(LABEL, PIN) as first:
        made = first.generate_key(b"again-1", algorithm=ED25519, flags=KSK_FLAGS, label="ksk")
    with open_token(LABEL, PIN) as second:
        loaded = second.load_key(b"again-1", flags=KSK_FLAGS)
        assert (loaded.dnskey, loaded.key_tag, loaded.algorithm, loaded.label) == (
            made.dnskey, made.key_tag, ED25519, "ksk")
        rrset = dns.rrset.from_text("example.com.", 300, "IN", "TXT", '"v=1"')
        assert_validates(rrset, rrsig_over(rrset, loaded), made)
        assert second.load_key_by_label("ksk", flags=KSK_FLAGS).dnskey == made.dnskey
        with pytest.raises(LookupError):
            second.load_key(b"never-made")
        with pytest.raises(LookupError):
            second.load_key_by_label("never-made")


def test_a_second_key_under_the_same_id_is_refused(session: HsmSession) -> None:
    session.generate_key(b"twice")
    with pytest.raises(ValueError, match="already holds"):
        session.generate_key(b"twice")


def test_a_wrong_pin_or_label_is_refused_clearly(token: Path) -> None:
    with pytest.raises(HsmUnavailable, match="cannot log in"):
        open_token(LABEL, "000000")
    with pytest.raises(HsmUnavailable, match="no PKCS#11 token"):
        open_token("elsewhere", PIN)
