"""A hosted zone's new DNSSEC keys as the store keeps them: DNSKEY text, key tag, private key
DER (sealed by dnssec/seal.py)."""

from __future__ import annotations

from dataclasses import dataclass

from regshield.dnssec import KSK_FLAGS, ZSK_FLAGS, generate_key
from regshield.dnssec import private_key_der as der_of

ROLE_FLAGS = {"ksk": KSK_FLAGS, "zsk": ZSK_FLAGS, "csk": KSK_FLAGS}


@dataclass(frozen=True)
class NewZoneKey:
    role: str
    algorithm: int
    flags: int
    key_tag: int
    dnskey: str
    private_der: bytes


def new_zone_key(role: str, algorithm: int) -> NewZoneKey:
    """A new key pair for `role` (ksk, zsk or csk): a KSK or CSK has the SEP bit (flags 257)."""
    key = generate_key(algorithm, ROLE_FLAGS[role])
    return NewZoneKey(role, key.algorithm, key.flags, key.key_tag, key.dnskey.to_text(),
                      der_of(key))
