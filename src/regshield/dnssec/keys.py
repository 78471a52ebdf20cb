"""DNSSEC signing keys: generation, DNSKEY rdata, key tags and PKCS#8 serialization.

Two algorithms are offered, the ones RFC 8624 (and its successor RFC 9904) recommends for
signing: ECDSAP256SHA256 (13, the default, RFC 6605) and ED25519 (15, RFC 8080). A key is held
as a `cryptography` private key object; its bytes leave only through `private_key_der`, as
unencrypted PKCS#8 DER meant to be sealed by the caller before it is stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import dns.rdataclass
import dns.rdatatype
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from dns.rdtypes.ANY.DNSKEY import DNSKEY

ECDSAP256SHA256 = 13
ED25519 = 15
SUPPORTED_ALGORITHMS = (ECDSAP256SHA256, ED25519)

ZSK_FLAGS = 256
"""Zone Key bit only (RFC 4034 §2.1.1)."""
KSK_FLAGS = 257
"""Zone Key bit plus Secure Entry Point (RFC 4034 §2.1.1, RFC 3757)."""
DNSKEY_PROTOCOL = 3
"""The only valid DNSKEY protocol value (RFC 4034 §2.1.2)."""

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


@dataclass(frozen=True)
class SigningKey:
    """A DNSSEC signing key: the private key object, its DNSKEY rdata and key tag.

    The private key is excluded from `repr` so that it never reaches a log line.
    """

    private_key: PrivateKey = field(repr=False)
    flags: int
    algorithm: int
    key_tag: int
    dnskey: DNSKEY = field(repr=False)

    @property
    def is_ksk(self) -> bool:
        """True when the Secure Entry Point bit is set: the key signs the DNSKEY RRset."""
        return bool(self.flags & 0x0001)


def generate_key(algorithm: int = ECDSAP256SHA256, flags: int = ZSK_FLAGS) -> SigningKey:
    """Generate a new signing key of `algorithm` (13 or 15) with DNSKEY `flags` (256 or 257)."""
    _check(algorithm, flags)
    private_key: PrivateKey
    if algorithm == ECDSAP256SHA256:
        private_key = ec.generate_private_key(ec.SECP256R1())
    else:
        private_key = ed25519.Ed25519PrivateKey.generate()
    return _signing_key(private_key, flags, algorithm)


def private_key_der(key: SigningKey) -> bytes:
    """The private key as unencrypted PKCS#8 DER (RFC 5208), for the caller to seal at rest."""
    return key.private_key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_private_key_der(der: bytes, flags: int = ZSK_FLAGS) -> SigningKey:
    """Rebuild a `SigningKey` from PKCS#8 DER written by `private_key_der`."""
    private_key = serialization.load_der_private_key(der, password=None)
    if isinstance(private_key, ec.EllipticCurvePrivateKey) and isinstance(
        private_key.curve, ec.SECP256R1
    ):
        return _signing_key(private_key, flags, ECDSAP256SHA256)
    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        return _signing_key(private_key, flags, ED25519)
    raise ValueError("private key is neither ECDSA P-256 nor Ed25519")


def public_key_wire(private_key: PrivateKey) -> bytes:
    """The DNSKEY public key field.

    ECDSA P-256 is the uncompressed point x || y without the 0x04 prefix (RFC 6605 §4);
    Ed25519 is the 32-byte public key (RFC 8080 §3).
    """
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        point = private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return point[1:]
    return private_key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )


def key_tag(dnskey: DNSKEY) -> int:
    """The key tag of a DNSKEY: the ones'-complement-style sum of RFC 4034 Appendix B.

    Algorithm 1 (RSAMD5) uses a different rule and is never generated here.
    """
    wire = dnskey.to_digestable()
    total = 0
    for index, octet in enumerate(wire):
        total += octet << 8 if index % 2 == 0 else octet
    total += (total >> 16) & 0xFFFF
    return total & 0xFFFF


def _signing_key(private_key: PrivateKey, flags: int, algorithm: int) -> SigningKey:
    _check(algorithm, flags)
    dnskey = DNSKEY(  # type: ignore[no-untyped-call]
        dns.rdataclass.IN,
        dns.rdatatype.DNSKEY,
        flags,
        DNSKEY_PROTOCOL,
        algorithm,
        public_key_wire(private_key),
    )
    return SigningKey(
        private_key=private_key,
        flags=flags,
        algorithm=algorithm,
        key_tag=key_tag(dnskey),
        dnskey=dnskey,
    )


def _check(algorithm: int, flags: int) -> None:
    if algorithm not in SUPPORTED_ALGORITHMS:
        raise ValueError(f"algorithm must be 13 (ECDSAP256SHA256) or 15 (ED25519), not {algorithm}")
    if flags not in (ZSK_FLAGS, KSK_FLAGS):
        raise ValueError(f"flags must be 256 (ZSK) or 257 (KSK), not {flags}")
