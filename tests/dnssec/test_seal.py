"""Zone private keys sealed at rest (dnssec/seal.py)."""

from __future__ import annotations

import secrets

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from regshield.dnssec.keys import ED25519, KSK_FLAGS, generate_key, private_key_der, sign_data
from regshield.dnssec.seal import open_private_key, private_key_binding, seal_private_key
from regshield.security.fields import Sealer


def test_a_sealed_key_opens_to_the_same_signing_key_and_shows_nothing_in_clear() -> None:
    data_key = secrets.token_bytes(32)
    key = generate_key(ED25519, KSK_FLAGS)
    der = private_key_der(key)
    sealed = seal_private_key(data_key, der, "key_abc")
    assert isinstance(key.private_key, Ed25519PrivateKey)
    raw = key.private_key.private_bytes_raw()
    assert der not in sealed and raw not in sealed
    opened = open_private_key(data_key, sealed, "key_abc", KSK_FLAGS)
    assert (opened.dnskey, opened.key_tag, opened.is_ksk) == (key.dnskey, key.key_tag, True)
    key.private_key.public_key().verify(sign_data(opened, b"data"), b"data")  # raises if not


def test_a_sealed_key_does_not_open_for_another_key_or_another_data_key() -> None:
    data_key = secrets.token_bytes(32)
    sealed = seal_private_key(data_key, private_key_der(generate_key()), "key_one")
    with pytest.raises(InvalidTag):
        open_private_key(data_key, sealed, "key_two", 256)
    with pytest.raises(InvalidTag):
        open_private_key(secrets.token_bytes(32), sealed, "key_one", 256)
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(InvalidTag):
        open_private_key(data_key, tampered, "key_one", 256)


def test_only_a_usable_private_key_is_sealed() -> None:
    with pytest.raises(ValueError):
        seal_private_key(secrets.token_bytes(32), b"not a key", "key_one")


def test_keys_sealed_by_the_zone_flow_open_here() -> None:
    data_key = secrets.token_bytes(32)
    key = generate_key()
    sealed = Sealer.seal(data_key, private_key_der(key), "zone_key:key_xyz")
    assert private_key_binding("key_xyz") == "zone_key:key_xyz"
    assert open_private_key(data_key, sealed, "key_xyz", 256).dnskey == key.dnskey
