"""Queueing side effects inside a flow's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from regshield.store.models import OutboxItem


@dataclass(frozen=True)
class SideEffect:
    kind: str
    payload: dict[str, Any]
    # Two effects with the same key are one effect: the second is dropped.
    dedupe_key: str | None = None
    # Not before this long after the commit: a safety net for work the request does itself.
    delay: timedelta = timedelta(0)


async def write_effects(session: AsyncSession, effects: Sequence[SideEffect],
                        now: datetime) -> None:
    """Add the effects to the outbox; one whose dedupe key is already queued is dropped."""
    rows, keys = [], set()
    for effect in effects:
        if effect.dedupe_key is not None:
            if effect.dedupe_key in keys:
                continue
            keys.add(effect.dedupe_key)
        rows.append({"kind": effect.kind, "payload": effect.payload,
                     "dedupe_key": effect.dedupe_key, "created_at": now,
                     "available_at": now + effect.delay,
                     "attempts": 0, "failed": False})
    if not rows:
        return
    insert = sqlite.insert if session.get_bind().dialect.name == "sqlite" else postgresql.insert
    statement = insert(OutboxItem).on_conflict_do_nothing(index_elements=["dedupe_key"])
    await session.execute(statement, rows)
