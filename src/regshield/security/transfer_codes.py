"""Transfer codes (EPP AuthInfo, the TPR's "TAC"): generation, storage and lifetime, per
RFC 9154 (secure authorization information for transfer) and Transfer Policy row 18.

A code is drawn from `secrets`, shown to the registrant once, and only its salted SHA-256 is
kept. It lives `policy.transfer_code_ttl` from issue and is cleared once a transfer completes.

Alphabet and length. RFC 9154 §4.1 sizes a code as L = ceil(H / log2 N) for H bits of
entropy over N symbols, and works its example at H = 128. Registries differ in what they
accept: Identity Digital (about 300 gTLDs) and .it take 8 to 32 characters and want at least
one letter, one digit and one special character; other registries ask for upper and lower
case letters. So a code is 24 characters over A-Z, a-z, 0-9 and eight punctuation marks that
need no escaping in EPP XML, HTML, JSON, email or a shell (no quotes, no <, >, &, backslash,
$, %, space or slash), with at least one of each of the four kinds. Every draw that lacks a
kind is thrown away and drawn again, so codes are uniform over the accepted set, whose size
gives TRANSFER_CODE_ENTROPY_BITS (about 147 bits).

Hashing. RFC 9154 §4.3 has the registry store the code under a 256-bit hash with a random
salt of at least 128 bits; regshield's sandbox registry and any copy the registrar keeps for
its own checks use the same format. A slow password hash (argon2id) buys nothing here: it
protects low-entropy secrets from guessing, and 2^128 guesses are out of reach whatever the
cost of one. SHA-256 keeps verification cheap.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import string
from datetime import datetime
from itertools import combinations

from regshield.policy.transfer import TransferPolicy

UPPER = string.ascii_uppercase
LOWER = string.ascii_lowercase
DIGITS = string.digits
PUNCTUATION = "!#+-.=@_"
CHARACTER_CLASSES: tuple[str, ...] = (UPPER, LOWER, DIGITS, PUNCTUATION)
TRANSFER_CODE_ALPHABET = "".join(CHARACTER_CLASSES)
TRANSFER_CODE_LENGTH = 24  # inside the 8-32 characters the strictest registries accept
MINIMUM_ENTROPY_BITS = 128  # RFC 9154 §4.1; row 18

HASH_SCHEME = "sha256"
SALT_BYTES = 16  # 128 bits, the RFC 9154 §4.3 minimum
DIGEST_BYTES = hashlib.sha256().digest_size


def entropy_bits(alphabet_size: int, length: int) -> float:
    """Bits of entropy of `length` symbols drawn uniformly and independently from an alphabet
    of `alphabet_size` (RFC 9154 §4.1: H = L * log2 N)."""
    if alphabet_size < 1 or length < 0:
        raise ValueError("the alphabet needs at least one symbol and the length cannot be negative")
    return length * math.log2(alphabet_size)


def codes_with_every_class(classes: tuple[str, ...], length: int) -> int:
    """How many strings of `length` over the union of `classes` contain at least one symbol
    of every class (inclusion-exclusion over the classes left out)."""
    total = 0
    for left_out in range(len(classes) + 1):
        for excluded in combinations(classes, left_out):
            remaining = len("".join(classes)) - len("".join(excluded))
            total += (-1) ** left_out * remaining**length
    return total


TRANSFER_CODE_ENTROPY_BITS = math.log2(codes_with_every_class(CHARACTER_CLASSES,
                                                              TRANSFER_CODE_LENGTH))
if TRANSFER_CODE_ENTROPY_BITS < MINIMUM_ENTROPY_BITS:  # a change of alphabet or length
    raise RuntimeError(f"transfer codes carry only {TRANSFER_CODE_ENTROPY_BITS:.1f} bits")


def new_transfer_code() -> str:
    """A fresh transfer code: shown once, never stored or logged in plaintext."""
    while True:
        code = "".join(secrets.choice(TRANSFER_CODE_ALPHABET)
                       for _ in range(TRANSFER_CODE_LENGTH))
        if all(any(ch in kind for ch in code) for kind in CHARACTER_CLASSES):
            return code


def transfer_code_hash(code: str) -> str:
    """`sha256$<salt>$<digest>` (hex) of the code, with a fresh 128-bit salt."""
    salt = secrets.token_bytes(SALT_BYTES)
    return f"{HASH_SCHEME}${salt.hex()}${_digest(salt, code).hex()}"


def verify_transfer_code(code: str, stored_hash: str) -> bool:
    """Whether `code` is the one `stored_hash` was made from, compared in constant time.
    Surrounding whitespace from a copy and paste is ignored (no code contains any)."""
    salt, digest = _parse(stored_hash)
    return hmac.compare_digest(_digest(salt, code), digest)


def transfer_code_expiry(issued_at: datetime, policy: TransferPolicy) -> datetime:
    """When a code issued at `issued_at` stops working, under the policy in force at issue."""
    if issued_at.tzinfo is None or issued_at.utcoffset() is None:
        raise ValueError("issued_at must be a timezone-aware datetime")
    return issued_at + policy.transfer_code_ttl


def _digest(salt: bytes, code: str) -> bytes:
    return hashlib.sha256(salt + code.strip().encode()).digest()


def _parse(stored_hash: str) -> tuple[bytes, bytes]:
    """(salt, digest) of a stored hash; ValueError when it is not one (a corrupt row must
    not read as a mere wrong code)."""
    try:
        scheme, salt_hex, digest_hex = stored_hash.split("$")
        salt, digest = bytes.fromhex(salt_hex), bytes.fromhex(digest_hex)
    except ValueError:
        raise ValueError("not a transfer code hash") from None
    if scheme != HASH_SCHEME or len(salt) != SALT_BYTES or len(digest) != DIGEST_BYTES:
        raise ValueError("not a transfer code hash")
    return salt, digest
