"""Reading the event log (writing happens only through the flow runner)."""

from __future__ import annotations

from datetime import datetime

from regshield.flows.context import Actor
from regshield.services import Services
from regshield.store.models import Event
from regshield.store.queries.events import list_events


async def event_list(services: Services, actor: Actor, *, account: str | None = None,
                     tag_prefix: str | None = None, since: datetime | None = None,
                     after_seq: int = 0, limit: int = 100) -> list[Event]:
    """Events the actor may read: all for staff with events:read, else the own account's.

    Raises PermissionDenied.
    """
    actor.require("events", "read")
    if not actor.can("events", "read"):
        account = actor.account_public_id
    async with services.store.read() as session:
        rows = await list_events(session, account=account, tag_prefix=tag_prefix, since=since,
                                 after_seq=after_seq, limit=limit)
        return list(rows)
