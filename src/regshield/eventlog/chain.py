"""Appending to the hash chain and verifying it.

Each event's hash is SHA-256 over a canonical JSON form of its fields and the previous event's
hash; the first event links to 64 zeros. Changing, removing or reordering any stored event
breaks every later link, and `verify` names the first event that does not verify.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from regshield.clock import as_utc
from regshield.store.models import Event, EventChainHead

GENESIS_HASH = "0" * 64
# Core statements on the transaction's connection: the ORM's session execution and bulk
# insert path cost more than the statements themselves, and a chain row is never an object.
_LOCK_HEAD = (select(EventChainHead.last_seq, EventChainHead.last_hash)
              .where(EventChainHead.id == 1).with_for_update())
_INSERT_EVENTS = insert(Event)
_MOVE_HEAD = update(EventChainHead).where(EventChainHead.id == 1).values(
    last_seq=bindparam("new_seq"), last_hash=bindparam("new_hash"))
VERIFY_BATCH = 2000
CHANNELS = ("api", "cli", "console", "system")


@dataclass(frozen=True)
class EventDraft:
    """An event as a flow records it; sequence number and hashes are assigned on append."""

    tag: str  # source:subject:action
    actor: str
    channel: str
    occurred_at: datetime
    account: str | None = None
    source_address: str | None = None
    request_id: str | None = None
    summary: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.tag.split(":")) != 3:
            raise ValueError(f"event tag {self.tag!r} must read source:subject:action")
        if self.channel not in CHANNELS:
            raise ValueError(f"unknown channel {self.channel!r}")


def event_hash(seq: int, prev_hash: str, fields: dict[str, Any]) -> str:
    canonical = json.dumps(
        {"seq": seq, "prev_hash": prev_hash, **fields},
        sort_keys=True, separators=(",", ":"), ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _hashed_fields(tag: str, actor: str, account: str | None, channel: str,
                   source_address: str | None, request_id: str | None,
                   occurred_at: datetime, summary: dict[str, Any]) -> dict[str, Any]:
    return {
        "tag": tag, "actor": actor, "account": account, "channel": channel,
        "source_address": source_address, "request_id": request_id,
        "occurred_at": as_utc(occurred_at).isoformat(timespec="microseconds"),
        "summary": summary,
    }


def _fields_of(event: Event) -> dict[str, Any]:
    return _hashed_fields(event.tag, event.actor, event.account, event.channel,
                          event.source_address, event.request_id, event.occurred_at,
                          event.summary)


async def append(session: AsyncSession, drafts: Sequence[EventDraft]) -> None:
    """Append in order inside the caller's transaction. The head row lock serializes writers.

    Three statements whatever the number of events (lock and read the head, insert the
    events, move the head), sent on the transaction's connection rather than through the
    ORM's session, which costs more than the hashing: every change of record comes this
    way.
    """
    if not drafts:
        return
    # The flow's own changes first: the head's row lock is then held for the chain alone.
    if session.new or session.deleted or session.dirty:
        await session.flush()
    connection = await session.connection()
    head = (await connection.execute(_LOCK_HEAD)).one()
    seq, prev_hash = head.last_seq, head.last_hash
    rows = []
    for draft in drafts:
        seq += 1
        occurred_at = as_utc(draft.occurred_at)
        fields = _hashed_fields(draft.tag, draft.actor, draft.account, draft.channel,
                                draft.source_address, draft.request_id, occurred_at,
                                draft.summary)
        digest = event_hash(seq, prev_hash, fields)
        rows.append({
            "seq": seq, "tag": draft.tag, "actor": draft.actor, "account": draft.account,
            "channel": draft.channel, "source_address": draft.source_address,
            "request_id": draft.request_id, "occurred_at": occurred_at,
            "summary": draft.summary, "prev_hash": prev_hash, "hash": digest,
        })
        prev_hash = digest
    await connection.execute(_INSERT_EVENTS, rows)
    await connection.execute(_MOVE_HEAD, {"new_seq": seq, "new_hash": prev_hash})


@dataclass(frozen=True)
class ChainReport:
    verified: int
    head_hash: str
    first_bad_seq: int | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.first_bad_seq is None


async def verify(session: AsyncSession) -> ChainReport:
    """Walk the whole chain in order; stop at the first event that does not verify.

    The head and the events are read by several statements: `session` must see one snapshot
    (`Store.snapshot`), or events appended meanwhile would look like events past the head."""
    head_query = select(EventChainHead).where(EventChainHead.id == 1)
    head = (await session.execute(head_query)).scalar_one()
    expected_seq, prev_hash, verified = 1, GENESIS_HASH, 0
    at_head = GENESIS_HASH  # the hash of the event the head names, once walked past
    while True:
        batch = (
            await session.execute(
                select(Event).where(Event.seq >= expected_seq).order_by(Event.seq)
                .limit(VERIFY_BATCH)
            )
        ).scalars().all()
        for event in batch:
            problem = None
            if event.seq != expected_seq:
                problem = f"event {expected_seq} is missing (next stored is {event.seq})"
                bad = expected_seq
            elif event.prev_hash != prev_hash:
                problem = "its link to the previous event does not match"
                bad = event.seq
            elif event_hash(event.seq, event.prev_hash, _fields_of(event)) != event.hash:
                problem = "its content does not match its hash"
                bad = event.seq
            if problem:
                return ChainReport(verified, prev_hash, bad, problem)
            prev_hash, expected_seq, verified = event.hash, expected_seq + 1, verified + 1
            if verified == head.last_seq:
                at_head = prev_hash
        if len(batch) < VERIFY_BATCH:
            break
    if head.last_seq > verified or (head.last_seq == verified
                                     and head.last_hash != prev_hash):
        missing_from = verified + 1
        return ChainReport(verified, prev_hash, missing_from,
                           f"the chain head records {head.last_seq} events; "
                           f"events from {missing_from} on are missing")
    if head.last_seq < verified:
        return ChainReport(head.last_seq, at_head, head.last_seq + 1,
                           f"the chain head records {head.last_seq} events, and {verified} "
                           f"are stored: events from {head.last_seq + 1} on were added "
                           "without moving the head")
    return ChainReport(verified, prev_hash)
