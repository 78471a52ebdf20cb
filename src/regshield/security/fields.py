"""Envelope encryption of personal fields: AES-256-GCM under a per-record data key.

Each record that holds personal data owns one `DataKey` row; its key is random, wrapped by the
master key ring and never stored in clear. Ciphertexts are bound to their record through the
associated data (`contacts:RS-XXXX`), so a sealed value copied onto another row does not open.
"""

from __future__ import annotations

import json
import secrets
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from regshield.security.keyring import KEY_BYTES, NONCE_BYTES, KeyRing
from regshield.store.models import DataKey

FORMAT_VERSION = b"\x01"
_NEW_DATA_KEY = insert(DataKey).returning(DataKey.id)


class Sealer:
    def __init__(self, keyring: KeyRing) -> None:
        self.keyring = keyring

    async def new_data_key(self, session: AsyncSession, now: datetime) -> tuple[int, bytes]:
        """A fresh data key: its row's id and the key. The row is written at once, by one
        statement on the transaction's connection (no object: only its id is ever used)."""
        data_key = secrets.token_bytes(KEY_BYTES)
        master_key_id, wrapped = self.keyring.wrap(data_key)
        connection = await session.connection()
        row_id = (await connection.execute(_NEW_DATA_KEY, {
            "master_key_id": master_key_id, "wrapped": wrapped, "created_at": now})).scalar_one()
        return int(row_id), data_key

    async def data_key(self, session: AsyncSession, data_key_id: int) -> bytes:
        row = await session.get(DataKey, data_key_id)
        if row is None:
            raise LookupError(f"data key {data_key_id} is missing")
        return self.keyring.unwrap(row.master_key_id, row.wrapped)

    async def data_keys(self, session: AsyncSession, ids: set[int]) -> dict[int, bytes]:
        """Unwrap many data keys with one query (listing pages)."""
        if not ids:
            return {}
        rows = (await session.execute(select(DataKey).where(DataKey.id.in_(ids)))).scalars()
        return {row.id: self.keyring.unwrap(row.master_key_id, row.wrapped) for row in rows}

    @staticmethod
    def seal(data_key: bytes, plaintext: bytes, binding: str) -> bytes:
        nonce = secrets.token_bytes(NONCE_BYTES)
        aad = FORMAT_VERSION + binding.encode()
        return FORMAT_VERSION + nonce + AESGCM(data_key).encrypt(nonce, plaintext, aad)

    @staticmethod
    def open(data_key: bytes, sealed: bytes, binding: str) -> bytes:
        version, nonce, body = sealed[:1], sealed[1:1 + NONCE_BYTES], sealed[1 + NONCE_BYTES:]
        if version != FORMAT_VERSION:
            raise ValueError("unknown sealed-field format")
        return AESGCM(data_key).decrypt(nonce, body, version + binding.encode())

    @classmethod
    def seal_json(cls, data_key: bytes, value: Any, binding: str) -> bytes:
        text = json.dumps(value, separators=(",", ":"), sort_keys=True)
        return cls.seal(data_key, text.encode(), binding)

    @classmethod
    def open_json(cls, data_key: bytes, sealed: bytes, binding: str) -> Any:
        return json.loads(cls.open(data_key, sealed, binding))
