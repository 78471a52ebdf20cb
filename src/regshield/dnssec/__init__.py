"""DNSSEC signing: signing keys (`keys`), the RRset and zone signer (`signer`), the signer of
zone files (`offline`) and zones kept signed through changes (`incremental`).

The signers build the RFC 4034 canonical wire form themselves and call `cryptography` directly;
dnspython supplies the data types (names, rdata, RRsets) and the rarer record types' parsing.
"""

from regshield.dnssec.keys import (
    ECDSAP256SHA256,
    ECDSAP384SHA384,
    ED448,
    ED25519,
    KSK_FLAGS,
    RSASHA256,
    ZSK_FLAGS,
    SigningKey,
    generate_key,
    key_tag,
    load_bind_private_key,
    load_private_key_der,
    private_key_der,
)
from regshield.dnssec.signer import sign_rrset, sign_zone

__all__ = [
    "ECDSAP256SHA256",
    "ECDSAP384SHA384",
    "ED448",
    "ED25519",
    "KSK_FLAGS",
    "RSASHA256",
    "ZSK_FLAGS",
    "SigningKey",
    "generate_key",
    "key_tag",
    "load_bind_private_key",
    "load_private_key_der",
    "private_key_der",
    "sign_rrset",
    "sign_zone",
]
