"""Master key rotation: a new master key wraps every data key; the old one is retired.

Runs alongside live traffic. The new ring is written first (running processes pick it up within
a second), then data keys are re-wrapped in batches, each batch its own short transaction. A
second pass, one grace period later, catches data keys that a process wrapped under the old key
before it noticed the new ring (or in a transaction that was still open). The old keys are
dropped from the ring only when no data key still needs them.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import func, select

from regshield.flows.context import Actor, RequestContext
from regshield.flows.runner import Tx, run_flow
from regshield.security.keyring import RELOAD_INTERVAL_SECONDS, KeyRingDocument, new_master_key_id
from regshield.services import Services
from regshield.store.models import DataKey

BATCH = 500


@dataclass(frozen=True)
class RotationReport:
    new_key: str
    retired: list[str]
    rewrapped: int


async def rotate_master_key(services: Services, actor: Actor, context: RequestContext,
                            *, grace_seconds: float = 2 * RELOAD_INTERVAL_SECONDS,
                            ) -> RotationReport:
    keyring = services.keyring
    old = keyring.document
    new_id = new_master_key_id(services.clock.now())
    keyring.replace(KeyRingDocument(
        primary=new_id, keys={**old.keys, new_id: AESGCM.generate_key(256)},
        index_key=old.index_key, retired=old.retired,
    ))
    rewrapped = 0
    for _ in range(2):
        # Let other processes notice the new primary, and open transactions finish.
        await asyncio.sleep(grace_seconds)
        rewrapped += await _rewrap_all(services, new_id)
    async with services.store.read() as session:
        left = (await session.execute(
            select(func.count()).select_from(DataKey).where(DataKey.master_key_id != new_id)
        )).scalar_one()
    retired_ids = sorted(k for k in old.keys if k != new_id)
    if left == 0:
        now = services.clock.now().isoformat()
        current = keyring.document
        keyring.replace(KeyRingDocument(
            primary=new_id, keys={new_id: current.keys[new_id]}, index_key=current.index_key,
            retired=[*current.retired, *({"id": k, "retired_at": now} for k in retired_ids)],
        ))
    else:  # written concurrently under an old key by a process that had not reloaded yet
        retired_ids = []
    await run_flow(services, actor, context,
                   _RecordRotation(new_id, retired_ids, rewrapped, left))
    return RotationReport(new_id, retired_ids, rewrapped)


async def _rewrap_all(services: Services, new_id: str) -> int:
    keyring = services.keyring
    rewrapped = 0
    while True:
        async with services.store.write() as session:
            rows = (await session.execute(
                select(DataKey).where(DataKey.master_key_id != new_id).limit(BATCH)
            )).scalars().all()
            for row in rows:
                plain = keyring.unwrap(row.master_key_id, row.wrapped)
                row.master_key_id, row.wrapped = keyring.wrap(plain)
            rewrapped += len(rows)
        if len(rows) < BATCH:
            return rewrapped


@dataclass(frozen=True)
class _RecordRotation:
    new_key: str
    retired: list[str]
    rewrapped: int
    left: int

    async def run(self, tx: Tx) -> None:
        tx.record("keys:master:rotated", account=None, new_key=self.new_key,
                  retired=self.retired, rewrapped=self.rewrapped, still_old=self.left)
