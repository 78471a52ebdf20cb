"""Anchors: copies of the chain head kept outside the database.

The hash chain shows that stored events were not altered, but someone with raw database access
could cut events off the end and rewrite the head row to match. Each anchor line records a
sequence number and the hash the event there had, in a file beside (or, better, away from) the
database; `events verify` checks that every anchored event is still there, unchanged.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from regshield.store.models import Event, EventChainHead


@dataclass(frozen=True)
class Anchor:
    seq: int
    hash: str
    recorded_at: str


def read_anchors(path: Path) -> list[Anchor]:
    if not path.exists():
        return []
    anchors = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        parts = line.split()
        if len(parts) != 3 or not parts[0].isdigit() or len(parts[1]) != 64:
            raise ValueError(f"{path}:{number}: not an anchor line")
        anchors.append(Anchor(int(parts[0]), parts[1], parts[2]))
    return anchors


async def check_anchors(session: AsyncSession, anchors: list[Anchor]) -> tuple[int, str] | None:
    """The first anchored event that is missing or changed, with the reason; None if all hold."""
    for anchor in anchors:
        event = await session.get(Event, anchor.seq)
        if event is None:
            return anchor.seq, f"event {anchor.seq}, anchored at {anchor.recorded_at}, is missing"
        if event.hash != anchor.hash:
            return anchor.seq, f"event {anchor.seq} differs from its anchor of {anchor.recorded_at}"
    return None


async def anchor_head(session: AsyncSession, path: Path, now: datetime) -> Anchor | None:
    """Append the current head to the anchor file unless it is already the last anchor."""
    query = select(EventChainHead).where(EventChainHead.id == 1)
    head = (await session.execute(query)).scalar_one()
    if head.last_seq == 0:
        return None
    existing = read_anchors(path)
    if existing and existing[-1].seq == head.last_seq:
        return None
    anchor = Anchor(head.last_seq, head.last_hash, now.strftime("%Y-%m-%dT%H:%M:%SZ"))
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(descriptor, "a") as handle:
        handle.write(f"{anchor.seq} {anchor.hash} {anchor.recorded_at}\n")
        handle.flush()
        os.fsync(handle.fileno())
    return anchor
