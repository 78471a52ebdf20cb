"""Master keys: kept outside the database, they wrap the per-record data keys.

The ring lives in `<home>/keys/master.json` (mode 0600) or, for deployments that inject
secrets, in the `REGSHIELD_MASTER_KEY` environment variable (the same JSON document). It holds:
- `primary`: the id of the key that wraps new data keys;
- `keys`: id -> base64 AES-256 key, the primary and any still being rotated away from;
- `index_key`: the HMAC key of equality indexes (never rotated with the master keys);
- `retired`: ids (and dates) of master keys that no longer wrap anything.

A running process re-reads the file when it changes, so `keys rotate` needs no restart.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from regshield.errors import ConfigurationError

NONCE_BYTES = 12
KEY_BYTES = 32
RELOAD_INTERVAL_SECONDS = 1.0


@dataclass(frozen=True)
class KeyRingDocument:
    primary: str
    keys: dict[str, bytes]
    index_key: bytes
    retired: list[dict[str, str]] = field(default_factory=list)

    @classmethod
    def generate(cls, now: datetime) -> KeyRingDocument:
        key_id = new_master_key_id(now)
        return cls(primary=key_id, keys={key_id: AESGCM.generate_key(256)},
                   index_key=secrets.token_bytes(KEY_BYTES))

    @classmethod
    def parse(cls, text: str, origin: str) -> KeyRingDocument:
        try:
            raw = json.loads(text)
            keys = {str(k): base64.b64decode(v, validate=True) for k, v in raw["keys"].items()}
            document = cls(
                primary=str(raw["primary"]),
                keys=keys,
                index_key=base64.b64decode(raw["index_key"], validate=True),
                retired=list(raw.get("retired", [])),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigurationError(f"{origin}: not a regshield master key ring") from exc
        if document.primary not in keys:
            raise ConfigurationError(f"{origin}: the primary key {document.primary} is missing")
        if any(len(k) != KEY_BYTES for k in keys.values()) or len(document.index_key) < KEY_BYTES:
            raise ConfigurationError(f"{origin}: keys must be 256 bits")
        return document

    def dumps(self) -> str:
        return json.dumps(
            {
                "version": 1,
                "primary": self.primary,
                "keys": {k: base64.b64encode(v).decode() for k, v in self.keys.items()},
                "index_key": base64.b64encode(self.index_key).decode(),
                "retired": self.retired,
            },
            indent=2,
        )


def new_master_key_id(now: datetime) -> str:
    return f"mk-{now:%Y%m%d}-{secrets.token_hex(4)}"


class KeyRing:
    """Wraps and unwraps data keys; computes keyed-hash equality indexes."""

    def __init__(self, document: KeyRingDocument, path: Path | None = None) -> None:
        self._document = document
        self._path = path
        self._mtime = path.stat().st_mtime_ns if path else 0
        self._checked = time.monotonic()

    @classmethod
    def from_file(cls, path: Path) -> KeyRing:
        if not path.exists():
            raise ConfigurationError(f"{path}: no master key ring; run `regshield init`")
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            raise ConfigurationError(f"{path}: mode {mode:o} lets others read the master keys; "
                                     "it must be 0600")
        return cls(KeyRingDocument.parse(path.read_text(), str(path)), path)

    @classmethod
    def from_env(cls, value: str) -> KeyRing:
        return cls(KeyRingDocument.parse(value, "REGSHIELD_MASTER_KEY"))

    @property
    def document(self) -> KeyRingDocument:
        self._reload_if_changed()
        return self._document

    @property
    def primary_id(self) -> str:
        return self.document.primary

    @property
    def file_backed(self) -> bool:
        return self._path is not None

    def wrap(self, data_key: bytes) -> tuple[str, bytes]:
        document = self.document
        nonce = secrets.token_bytes(NONCE_BYTES)
        master = AESGCM(document.keys[document.primary])
        return document.primary, nonce + master.encrypt(nonce, data_key, document.primary.encode())

    def unwrap(self, master_key_id: str, wrapped: bytes) -> bytes:
        key = self.document.keys.get(master_key_id)
        if key is None:
            self._reload_if_changed(force=True)
            key = self._document.keys.get(master_key_id)
        if key is None:
            raise ConfigurationError(f"master key {master_key_id} is not in the key ring")
        nonce, sealed = wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:]
        return AESGCM(key).decrypt(nonce, sealed, master_key_id.encode())

    def index(self, purpose: str, value: str) -> str:
        """Keyed hash for equality lookups (`purpose` keeps indexes of different kinds apart)."""
        message = purpose.encode() + b"\x00" + value.encode()
        return hmac.new(self.document.index_key, message, hashlib.sha256).hexdigest()

    def replace(self, document: KeyRingDocument) -> None:
        """Persist a new ring (rotation) and use it from now on."""
        if self._path is None:
            raise ConfigurationError(
                "the master key ring comes from REGSHIELD_MASTER_KEY; rotate it where it is kept"
            )
        write_private_file(self._path, document.dumps())
        self._document = document
        self._mtime = self._path.stat().st_mtime_ns

    def _reload_if_changed(self, force: bool = False) -> None:
        if self._path is None:
            return
        now = time.monotonic()
        if not force and now - self._checked < RELOAD_INTERVAL_SECONDS:
            return
        self._checked = now
        mtime = self._path.stat().st_mtime_ns
        if mtime != self._mtime:
            self._document = KeyRingDocument.parse(self._path.read_text(), str(self._path))
            self._mtime = mtime


def write_private_file(path: Path, text: str) -> None:
    """Write a secret file atomically, readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def load_keyring(key_file: Path, env_value: str | None) -> KeyRing:
    return KeyRing.from_env(env_value) if env_value else KeyRing.from_file(key_file)


def describe(document: KeyRingDocument) -> dict[str, Any]:
    """What may be shown about a ring: ids, never key material."""
    return {"primary": document.primary, "keys": sorted(document.keys),
            "retired": [r.get("id") for r in document.retired]}
