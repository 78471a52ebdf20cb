"""Signing keys: DNSKEY wire form, key tags, PKCS#8 round trip, no key material in repr."""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dns.dnssec
import dns.name
import dns.rdata
import dns.rrset
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from regshield.dnssec.keys import (
    ECDSAP256SHA256,
    ECDSAP384SHA384,
    ED448,
    ED25519,
    KSK_FLAGS,
    RSASHA256,
    ZSK_FLAGS,
    SigningKey,
    ecdsa_raw,
    generate_key,
    load_bind_private_key,
    load_private_key_der,
    private_key_der,
)
from regshield.dnssec.signer import sign_rrset


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
        generate_key(5)
    with pytest.raises(ValueError, match="flags"):
        generate_key(flags=385)



def test_rsasha256_keys_are_2048_bit_by_default_and_refuse_short_moduli() -> None:
    key = generate_key(RSASHA256, KSK_FLAGS)
    assert isinstance(key.private_key, rsa.RSAPrivateKey)
    assert key.private_key.key_size == 2048
    assert key.key_tag == dns.dnssec.key_id(key.dnskey)
    with pytest.raises(ValueError, match="2048"):
        generate_key(RSASHA256, bits=1024)


def _der(private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed448.Ed448PrivateKey
         ) -> bytes:
    return private_key.private_bytes(serialization.Encoding.DER,
                                     serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption())


def _loaded(algorithm: int) -> SigningKey:
    if algorithm == ECDSAP384SHA384:
        return load_private_key_der(_der(ec.generate_private_key(ec.SECP384R1())))
    if algorithm == ED448:
        return load_private_key_der(_der(ed448.Ed448PrivateKey.generate()))
    return load_private_key_der(private_key_der(generate_key(algorithm)))


@pytest.mark.parametrize("algorithm", [RSASHA256, ECDSAP384SHA384, ED448])
def test_loaded_keys_of_every_algorithm_sign_rrsets_dnspython_validates(algorithm: int) -> None:
    key = _loaded(algorithm)
    assert key.algorithm == algorithm
    assert key.key_tag == dns.dnssec.key_id(key.dnskey)
    origin = dns.name.from_text("example.")
    rrset = dns.rrset.from_text("www.example.", 300, "IN", "A", "192.0.2.1")
    now = datetime.now(UTC)
    rrsig = sign_rrset(rrset, key, now - timedelta(hours=1), now + timedelta(days=1), origin)
    keys = {origin: dns.rrset.from_rdata(origin, 300, key.dnskey)}
    dns.dnssec.validate_rrsig(rrset, rrsig, keys)  # type: ignore[arg-type]
    assert load_private_key_der(private_key_der(key)).dnskey == key.dnskey


def test_p384_and_ed448_are_loaded_but_not_generated() -> None:
    for algorithm in (ECDSAP384SHA384, ED448):
        with pytest.raises(ValueError, match="algorithm"):
            generate_key(algorithm)


@pytest.mark.parametrize("algorithm", ["ECDSAP256SHA256", "ED25519", "RSASHA256"])
def test_bind_key_files_load_with_the_dnskey_bind_published(
    tmp_path: Path, algorithm: str
) -> None:
    keygen = shutil.which("dnssec-keygen")
    if keygen is None:
        pytest.fail("dnssec-keygen is not installed (scripts/test-services installs it)")
    base = subprocess.run(
        [keygen, "-q", "-a", algorithm, "-f", "KSK", "-K", str(tmp_path), "example"],
        capture_output=True, text=True, check=True).stdout.strip()
    published = next(line for line in (tmp_path / f"{base}.key").read_text().splitlines()
                     if not line.startswith(";"))
    dnskey = dns.rdata.from_text("IN", "DNSKEY", published.split("DNSKEY", 1)[1])
    key = load_bind_private_key((tmp_path / f"{base}.private").read_text(), KSK_FLAGS)
    assert key.dnskey == dnskey
    assert key.key_tag == int(base.rsplit("+", 1)[1])


def test_a_file_that_is_not_a_bind_private_key_is_refused() -> None:
    with pytest.raises(ValueError, match="not a BIND private key"):
        load_bind_private_key("PrivateKey: AAAA\n")
    with pytest.raises(ValueError, match="incomplete"):
        load_bind_private_key("Private-key-format: v1.3\nAlgorithm: 13 (ECDSAP256SHA256)\n")


@pytest.mark.parametrize(("size", "r", "s"), [
    (32, 1, 2),  # far shorter than the curve's size
    (32, 2**255 + 5, 2**254 + 7),  # the high bit set: DER adds a leading zero octet
    (32, 2**200 + 3, 2**255 - 1),
    (48, 1, 2**383 + 1),
    (48, 2**383 + 1, 2**376 + 9),
])
def test_ecdsa_signatures_are_taken_from_der_to_rfc6605_form(size: int, r: int, s: int) -> None:
    der = encode_dss_signature(r, s)
    assert ecdsa_raw(der, size) == r.to_bytes(size, "big") + s.to_bytes(size, "big")


def test_an_ecdsa_der_that_is_not_one_is_refused() -> None:
    der = encode_dss_signature(2**255 + 5, 7)
    for damaged in (b"\x31" + der[1:], der[:-1], der + b"\x00", der[:2] + b"\x03" + der[3:],
                    der[:5], b""):
        with pytest.raises(ValueError):
            ecdsa_raw(damaged, 32)
    with pytest.raises(ValueError):
        ecdsa_raw(encode_dss_signature(2**383 + 1, 1), 32)  # too long for P-256
