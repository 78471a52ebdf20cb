"""The event log, for staff allowed to read it (and account owners, for their own account)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from regshield.api.deps import ActorDep, ServicesDep
from regshield.api.schemas import MAX_SEQUENCE, EventListOut, EventOut
from regshield.flows.events import event_list

router = APIRouter(prefix="/events", tags=["events"])


@router.get("", response_model=EventListOut)
async def list_(actor: ActorDep, services: ServicesDep,
                account: Annotated[str | None, Query(max_length=32)] = None,
                tag: Annotated[str | None, Query(max_length=96,
                                                 description="tag prefix, e.g. auth:login")] = None,
                since: datetime | None = None,
                after: Annotated[int, Query(ge=0, le=MAX_SEQUENCE,
                                            description="the last sequence number seen")] = 0,
                limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> EventListOut:
    events = await event_list(services, actor, account=account, tag_prefix=tag, since=since,
                              after_seq=after, limit=limit)
    return EventListOut(items=[EventOut.of(e) for e in events],
                        next_after=events[-1].seq if len(events) == limit else None)
