"""Envelope encryption of personal fields: AES-256-GCM under a per-record data key.

Each record that holds personal data owns one `DataKey` row; its key is random, wrapped by the
master key ring and never stored in clear. Ciphertexts are bound to their record through the
associated data (`contacts:RS-XXXX`), so a sealed value copied onto another row does not open.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from regshield.security.keyring import KEY_BYTES, NONCE_BYTES, KeyRing
from regshield.store.models import DataKey

FORMAT_VERSION = b"\x01"
# Each row's id is matched to its key by the wrapped key (random, so unique): RETURNING's
# order is not the VALUES' order on SQLite, and asking for it costs a statement per row there.
_NEW_DATA_KEYS = insert(DataKey).returning(DataKey.id, DataKey.wrapped)


class Sealer:
    def __init__(self, keyring: KeyRing) -> None:
        self.keyring = keyring

    async def new_data_key(self, session: AsyncSession, now: datetime) -> tuple[int, bytes]:
        """A fresh data key: its row's id and the key. The row is written at once, by one
        statement on the transaction's connection (no object: only its id is ever used)."""
        return (await self.new_data_keys(session, [now]))[0]

    async def new_data_keys(self, session: AsyncSession,
                            created: Sequence[datetime]) -> list[tuple[int, bytes]]:
        """A fresh data key for each time in `created`, in that order, written by one
        statement (the creates of a group commit, flows/runner.py)."""
        keys, rows = [], []
        for now in created:
            data_key = secrets.token_bytes(KEY_BYTES)
            master_key_id, wrapped = self.keyring.wrap(data_key)
            keys.append((wrapped, data_key))
            rows.append({"master_key_id": master_key_id, "wrapped": wrapped, "created_at": now})
        connection = await session.connection()
        ids = {bytes(wrapped): int(row_id)
               for row_id, wrapped in await connection.execute(_NEW_DATA_KEYS, rows)}
        return [(ids[wrapped], data_key) for wrapped, data_key in keys]

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
