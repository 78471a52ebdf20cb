"""Zone private keys at rest: PKCS#8 DER sealed like personal data (security/fields.py).

Each key's DER is encrypted with AES-256-GCM under the data key of its own record, and bound to
that key's public id (`zone_key:<id>`), so a sealed key copied onto another key's row does not
open. Only a DER that loads as a signing key is sealed, so a bad value fails at generation time,
not at the first signing.
"""

from __future__ import annotations

from regshield.dnssec.keys import SigningKey, load_private_key_der
from regshield.security.fields import Sealer


def private_key_binding(key_public_id: str) -> str:
    """The associated data that ties a sealed private key to its `ZoneKey` row."""
    return f"zone_key:{key_public_id}"


def seal_private_key(data_key: bytes, der: bytes, key_public_id: str) -> bytes:
    """Seal the PKCS#8 `der` of the key `key_public_id` under its record's `data_key`."""
    load_private_key_der(der)  # raises ValueError for anything but a usable signing key
    return Sealer.seal(data_key, der, private_key_binding(key_public_id))


def open_private_key(data_key: bytes, sealed: bytes, key_public_id: str,
                     flags: int) -> SigningKey:
    """The signing key sealed by `seal_private_key`; raises InvalidTag for another key's data."""
    return load_private_key_der(Sealer.open(data_key, sealed, private_key_binding(key_public_id)),
                                flags)
