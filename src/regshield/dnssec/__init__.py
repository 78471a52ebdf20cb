"""DNSSEC signing: signing keys (`keys`) and a fast zone signer (`signer`).

The signer builds the RFC 4034 canonical wire form itself and calls `cryptography` directly;
dnspython supplies only the data types (names, rdata, RRsets).
"""

from regshield.dnssec.keys import (
    ECDSAP256SHA256,
    ED25519,
    KSK_FLAGS,
    ZSK_FLAGS,
    SigningKey,
    generate_key,
    key_tag,
    load_private_key_der,
    private_key_der,
)
from regshield.dnssec.signer import sign_rrset, sign_zone

__all__ = [
    "ECDSAP256SHA256",
    "ED25519",
    "KSK_FLAGS",
    "ZSK_FLAGS",
    "SigningKey",
    "generate_key",
    "key_tag",
    "load_private_key_der",
    "private_key_der",
    "sign_rrset",
    "sign_zone",
]
