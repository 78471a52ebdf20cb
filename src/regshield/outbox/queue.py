"""Queueing side effects inside a flow's transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from regshield.store.models import OutboxItem


@dataclass(frozen=True)
class SideEffect:
    kind: str
    payload: dict[str, Any]
    # Two effects with the same key are one effect: the second is dropped.
    dedupe_key: str | None = None


def outbox_row(effect: SideEffect, now: datetime) -> OutboxItem:
    return OutboxItem(kind=effect.kind, payload=effect.payload, dedupe_key=effect.dedupe_key,
                      created_at=now, available_at=now, attempts=0, failed=False)
