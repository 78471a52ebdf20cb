"""The notification ledger of a domain (WDRP reminders, ERRP expiry notices): compliance
evidence for staff who may read the event log, and for the account that holds the domain."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel

from regshield.api.deps import ActorDep, ServicesDep
from regshield.flows.notices import MAX_LIST, NoticeView, notices_list

router = APIRouter(tags=["notices"])


class NoticeRecipientOut(BaseModel):
    role: str
    recipient: str


class NoticeOut(BaseModel):
    id: int
    domain: str
    kind: str
    cycle: str
    about: datetime
    recipients: list[NoticeRecipientOut]
    late: bool
    queued_at: datetime
    bounced_at: datetime | None
    delivery: str
    outbox_id: int | None

    @classmethod
    def of(cls, view: NoticeView) -> NoticeOut:
        return cls.model_validate(view.as_dict())


class NoticeListOut(BaseModel):
    items: list[NoticeOut]


@router.get("/domains/{name}/notices", response_model=NoticeListOut)
async def list_(actor: ActorDep, services: ServicesDep,
                name: Annotated[str, Path(max_length=1024)],
                limit: Annotated[int, Query(ge=1, le=MAX_LIST)] = 100) -> NoticeListOut:
    notices = await notices_list(services, actor, name, limit=limit)
    return NoticeListOut(items=[NoticeOut.of(n) for n in notices])
