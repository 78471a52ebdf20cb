"""DNSSEC signing keys: generation, DNSKEY rdata, key tags, signatures and PKCS#8 serialization.

Three algorithms are generated: ECDSAP256SHA256 (13, the default, RFC 6605), ED25519 (15,
RFC 8080) and RSASHA256 (8, RFC 5702, 2048-bit by default), the ones RFC 8624 (and its
successor RFC 9904) recommends for signing or keeps for compatibility. Keys of ECDSAP384SHA384
(14) and ED448 (16) can be loaded and sign, for zones whose keys come from elsewhere. A key is
held as a `cryptography` private key object; its bytes leave only through `private_key_der`, as
unencrypted PKCS#8 DER meant to be sealed by the caller before it is stored.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import dns.rdataclass
import dns.rdatatype
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from dns.rdtypes.ANY.DNSKEY import DNSKEY

RSASHA256 = 8
ECDSAP256SHA256 = 13
ECDSAP384SHA384 = 14
ED25519 = 15
ED448 = 16
GENERATED_ALGORITHMS = (ECDSAP256SHA256, ED25519, RSASHA256)
SUPPORTED_ALGORITHMS = (ECDSAP256SHA256, ED25519, RSASHA256, ECDSAP384SHA384, ED448)
ALGORITHM_NAMES = {
    RSASHA256: "RSASHA256",
    ECDSAP256SHA256: "ECDSAP256SHA256",
    ECDSAP384SHA384: "ECDSAP384SHA384",
    ED25519: "ED25519",
    ED448: "ED448",
}
RSA_DEFAULT_BITS = 2048
_RSA_EXPONENT = 65537

ZSK_FLAGS = 256
"""Zone Key bit only (RFC 4034 §2.1.1)."""
KSK_FLAGS = 257
"""Zone Key bit plus Secure Entry Point (RFC 4034 §2.1.1, RFC 3757)."""
DNSKEY_PROTOCOL = 3
"""The only valid DNSKEY protocol value (RFC 4034 §2.1.2)."""

PrivateKey = (
    ec.EllipticCurvePrivateKey
    | ed25519.Ed25519PrivateKey
    | ed448.Ed448PrivateKey
    | rsa.RSAPrivateKey
)
_ECDSA = {
    ECDSAP256SHA256: (ec.ECDSA(hashes.SHA256()), 32),
    ECDSAP384SHA384: (ec.ECDSA(hashes.SHA384()), 48),
}
_PKCS1 = padding.PKCS1v15()
_SHA256 = hashes.SHA256()


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


class HeldKey(Protocol):
    """A key whose private half is held elsewhere (an HSM, `regshield.dnssec.hsm`): it has a
    `SigningKey`'s public attributes and makes each signature itself, in the RRSIG form."""

    @property
    def flags(self) -> int: ...
    @property
    def algorithm(self) -> int: ...
    @property
    def key_tag(self) -> int: ...
    @property
    def dnskey(self) -> DNSKEY: ...
    @property
    def is_ksk(self) -> bool: ...
    def sign(self, data: bytes) -> bytes: ...


AnyKey = SigningKey | HeldKey
"""What the signers sign with."""


def generate_key(
    algorithm: int = ECDSAP256SHA256, flags: int = ZSK_FLAGS, bits: int = RSA_DEFAULT_BITS
) -> SigningKey:
    """Generate a new signing key of `algorithm` (13, 15 or 8) with DNSKEY `flags` (256 or 257).

    `bits` is the RSA modulus size; RFC 8624 §3.1 asks for at least 2048.
    """
    if algorithm not in GENERATED_ALGORITHMS:
        raise ValueError(
            "algorithm must be 13 (ECDSAP256SHA256), 15 (ED25519) or 8 (RSASHA256), "
            f"not {algorithm}"
        )
    _check(algorithm, flags)
    private_key: PrivateKey
    if algorithm == ECDSAP256SHA256:
        private_key = ec.generate_private_key(ec.SECP256R1())
    elif algorithm == ED25519:
        private_key = ed25519.Ed25519PrivateKey.generate()
    else:
        if not 2048 <= bits <= 4096:
            raise ValueError(f"an RSA key has 2048 to 4096 bits, not {bits}")
        private_key = rsa.generate_private_key(_RSA_EXPONENT, bits)
    return _signing_key(private_key, flags, algorithm)


def private_key_der(key: SigningKey) -> bytes:
    """The private key as unencrypted PKCS#8 DER (RFC 5208), for the caller to seal at rest."""
    return key.private_key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_private_key_der(der: bytes, flags: int = ZSK_FLAGS) -> SigningKey:
    """Rebuild a `SigningKey` from PKCS#8 DER written by `private_key_der` (or by OpenSSL)."""
    private_key = serialization.load_der_private_key(der, password=None)
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        if isinstance(private_key.curve, ec.SECP256R1):
            return _signing_key(private_key, flags, ECDSAP256SHA256)
        if isinstance(private_key.curve, ec.SECP384R1):
            return _signing_key(private_key, flags, ECDSAP384SHA384)
    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        return _signing_key(private_key, flags, ED25519)
    if isinstance(private_key, ed448.Ed448PrivateKey):
        return _signing_key(private_key, flags, ED448)
    if isinstance(private_key, rsa.RSAPrivateKey):
        return _signing_key(private_key, flags, RSASHA256)
    raise ValueError("private key is not ECDSA P-256 or P-384, Ed25519, Ed448 or RSA")


def load_bind_private_key(text: str, flags: int = ZSK_FLAGS) -> SigningKey:
    """Rebuild a `SigningKey` from the `.private` file that BIND's dnssec-keygen (and
    ldns-keygen) write: "Private-key-format: v1.x" followed by base64 fields.

    `flags` comes from the matching `.key` file's DNSKEY record (256 or 257).
    """
    fields: dict[str, str] = {}
    for line in text.splitlines():
        name, _, value = line.partition(":")
        fields[name.strip()] = value.strip()
    if not fields.get("Private-key-format", "").startswith("v1."):
        raise ValueError("not a BIND private key file (no Private-key-format: v1.x)")
    try:
        algorithm = int(fields["Algorithm"].split()[0])
        private_key: PrivateKey
        if algorithm in (ECDSAP256SHA256, ECDSAP384SHA384):
            curve = ec.SECP256R1() if algorithm == ECDSAP256SHA256 else ec.SECP384R1()
            secret = int.from_bytes(base64.b64decode(fields["PrivateKey"]), "big")
            private_key = ec.derive_private_key(secret, curve)
        elif algorithm == ED25519:
            private_key = ed25519.Ed25519PrivateKey.from_private_bytes(
                base64.b64decode(fields["PrivateKey"]))
        elif algorithm == ED448:
            private_key = ed448.Ed448PrivateKey.from_private_bytes(
                base64.b64decode(fields["PrivateKey"]))
        elif algorithm == RSASHA256:
            def number(name: str) -> int:
                return int.from_bytes(base64.b64decode(fields[name]), "big")

            public = rsa.RSAPublicNumbers(number("PublicExponent"), number("Modulus"))
            private_key = rsa.RSAPrivateNumbers(
                number("Prime1"), number("Prime2"), number("PrivateExponent"),
                number("Exponent1"), number("Exponent2"), number("Coefficient"), public,
            ).private_key()
        else:
            raise ValueError(f"algorithm {algorithm} is not one regshield signs with")
    except (KeyError, IndexError, binascii.Error) as exc:
        raise ValueError(f"incomplete or damaged BIND private key file: {exc}") from None
    return _signing_key(private_key, flags, algorithm)


def sign_data(key: AnyKey, data: bytes) -> bytes:
    """The RRSIG signature field over `data` (the RRSIG prefix and the RRset, RFC 4034 §3.1.8.1).

    ECDSA is r || s at the curve's size, not the DER OpenSSL returns (RFC 6605 §4); EdDSA is
    the raw signature (RFC 8080 §4); RSA is the PKCS #1 v1.5 signature (RFC 5702 §3).
    """
    return signer(key)(data)


def signer(key: AnyKey) -> Callable[[bytes], bytes]:
    """`sign_data` for one key, with the algorithm's choices made once, for signing in bulk."""
    if not isinstance(key, SigningKey):
        return key.sign
    private_key = key.private_key
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        algorithm, size = _ECDSA[key.algorithm]
        sign_ecdsa = private_key.sign

        def ecdsa(data: bytes) -> bytes:
            return ecdsa_raw(sign_ecdsa(data, algorithm), size)

        return ecdsa
    if isinstance(private_key, rsa.RSAPrivateKey):
        sign_rsa = private_key.sign
        return lambda data: sign_rsa(data, _PKCS1, _SHA256)
    return private_key.sign


def ecdsa_raw(der: bytes, size: int) -> bytes:
    """The DNSSEC form of an ECDSA signature (RFC 6605 §4: r || s, each `size` octets) from
    the DER that OpenSSL makes: SEQUENCE { INTEGER r, INTEGER s }, which for P-256 and P-384
    (at most 2 x 51 octets inside) has one-octet lengths. A third of `decode_dss_signature`'s
    cost, which counts when a zone's 100,000 signatures are made."""
    if len(der) < 8 or len(der) < 6 + der[3]:
        raise ValueError("not an ECDSA signature of this curve's size")
    r_end = 4 + der[3]
    r = der[4:r_end]
    s = der[r_end + 2:]
    if (der[0] != 0x30 or der[1] != len(der) - 2 or der[2] != 2 or der[r_end] != 2
            or der[r_end + 1] != len(s) or len(r) > size + 1 or len(s) > size + 1):
        raise ValueError("not an ECDSA signature of this curve's size")
    return r[-size:].rjust(size, b"\0") + s[-size:].rjust(size, b"\0")


def public_key_wire(private_key: PrivateKey) -> bytes:
    """The DNSKEY public key field.

    ECDSA is the uncompressed point x || y without the 0x04 prefix (RFC 6605 §4); EdDSA the raw
    public key (RFC 8080 §3); RSA the exponent length, exponent and modulus (RFC 3110 §2).
    """
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        point = private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return point[1:]
    if isinstance(private_key, rsa.RSAPrivateKey):
        numbers = private_key.public_key().public_numbers()
        exponent = numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")
        modulus = numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")
        if len(exponent) < 256:
            length = bytes((len(exponent),))
        else:
            length = b"\x00" + len(exponent).to_bytes(2, "big")
        return length + exponent + modulus
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
        raise ValueError(f"algorithm must be one of {SUPPORTED_ALGORITHMS}, not {algorithm}")
    if flags not in (ZSK_FLAGS, KSK_FLAGS):
        raise ValueError(f"flags must be 256 (ZSK) or 257 (KSK), not {flags}")
