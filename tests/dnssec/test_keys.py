"""Signing keys: DNSKEY wire form, key tags, PKCS#8 round trip, no key material in repr."""

from __future__ import annotations

import dns.dnssec
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from regshield.dnssec.keys import (
    ECDSAP256SHA256,
    ED25519,
    KSK_FLAGS,
    ZSK_FLAGS,
    generate_key,
    load_private_key_der,
    private_key_der,
)


@pytest.mark.parametrize("algorithm", [ECDSAP256SHA256, ED25519])
@pytest.mark.parametrize("flags", [ZSK_FLAGS, KSK_FLAGS])
def test_key_tag_matches_dnspython(algorithm: int, flags: int) -> None:
    key = generate_key(algorithm, flags)
    assert key.key_tag == dns.dnssec.key_id(key.dnskey)
    assert (key.dnskey.flags, key.dnskey.protocol, key.dnskey.algorithm) == (flags, 3, algorithm)


def test_ecdsa_public_key_is_the_64_byte_point_without_prefix() -> None:
    key = generate_key(ECDSAP256SHA256)
    assert isinstance(key.private_key, ec.EllipticCurvePrivateKey)
    numbers = key.private_key.public_key().public_numbers()
    assert key.dnskey.key == numbers.x.to_bytes(32, "big") + numbers.y.to_bytes(32, "big")


def test_ed25519_public_key_is_32_bytes() -> None:
    assert len(generate_key(ED25519).dnskey.key) == 32


def test_ecdsa_is_the_default_algorithm_and_zsk_the_default_role() -> None:
    key = generate_key()
    assert (key.algorithm, key.flags, key.is_ksk) == (ECDSAP256SHA256, ZSK_FLAGS, False)
    assert generate_key(flags=KSK_FLAGS).is_ksk


@pytest.mark.parametrize("algorithm", [ECDSAP256SHA256, ED25519])
def test_pkcs8_der_round_trip_keeps_the_dnskey(algorithm: int) -> None:
    key = generate_key(algorithm, KSK_FLAGS)
    der = private_key_der(key)
    assert der[:1] == b"\x30"  # a DER SEQUENCE
    loaded = load_private_key_der(der, KSK_FLAGS)
    assert (loaded.dnskey, loaded.key_tag, loaded.algorithm) == (
        key.dnskey, key.key_tag, key.algorithm)


def test_repr_shows_no_key_material() -> None:
    key = generate_key()
    text = repr(key)
    assert "private_key" not in text and "dnskey" not in text
    assert str(key.key_tag) in text


def test_unsupported_algorithm_and_flags_are_refused() -> None:
    with pytest.raises(ValueError, match="algorithm"):
        generate_key(8)
    with pytest.raises(ValueError, match="flags"):
        generate_key(flags=385)
