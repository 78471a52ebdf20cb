"""Bearer credentials: API tokens (`rs_...`) and console sessions (`rss_...`).

Shown once, stored only as SHA-256 digests (the values carry 256 random bits, so a fast hash
is safe), looked up by digest.
"""

from __future__ import annotations

import hashlib
import secrets

API_TOKEN_PREFIX = "rs_"  # noqa: S105 (a prefix, not a secret)
SESSION_PREFIX = "rss_"


def new_credential(prefix: str) -> tuple[str, str]:
    """A fresh secret and its digest."""
    value = prefix + secrets.token_urlsafe(32)
    return value, digest(value)


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def new_public_id(prefix: str) -> str:
    """Non-secret, non-sequential identifiers for objects shown to users."""
    return f"{prefix}_{secrets.token_hex(8)}"
