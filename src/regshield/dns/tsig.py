"""TSIG keys for zone transfers and NOTIFY (RFC 8945): new secrets, and keys built from them.

Transfers accept one algorithm, hmac-sha256: every secondary we publish to (Knot DNS, NSD, BIND)
supports it, and a single algorithm leaves no weaker one for a peer to pick.
"""

from __future__ import annotations

import base64
import binascii
import secrets

import dns.name
import dns.tsig

ALGORITHM = dns.tsig.HMAC_SHA256
SECRET_BYTES = 32  # the SHA-256 output size; shorter HMAC keys are discouraged (RFC 2104 §3)


def generate_secret() -> str:
    """A new random secret in base64, the form Knot DNS, NSD and BIND configurations take."""
    return base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def make_key(name: dns.name.Name | str, secret: str) -> dns.tsig.Key:
    """The hmac-sha256 key called `name` with the base64 `secret`."""
    try:
        raw = base64.b64decode(secret, validate=True)
    except binascii.Error as exc:
        raise ValueError(f"the TSIG secret of {name} is not valid base64") from exc
    if len(raw) < SECRET_BYTES:
        raise ValueError(
            f"the TSIG secret of {name} has {len(raw)} bytes; at least {SECRET_BYTES} are needed"
        )
    key_name = dns.name.from_text(name) if isinstance(name, str) else name
    return dns.tsig.Key(key_name, raw, ALGORITHM)


def is_accepted(key: dns.tsig.Key) -> bool:
    """Whether transfers and NOTIFY accept a key of this algorithm."""
    return bool(key.algorithm == ALGORITHM)
