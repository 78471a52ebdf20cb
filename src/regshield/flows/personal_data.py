"""Staff reads of personal data leave an event (`contacts:contact:read`).

A customer reading its own account's contacts is the data's owner reading it; registrar staff
reading any account's contacts (the API, RDAP as staff, an RDAP search) are not, so each such
read is recorded with the actor, the contacts by handle, the domains by name and the channel:
never the data itself. Reads run outside a write transaction, so the record is one small flow
of its own after the read (the pattern of `DisclosureAccessRecord`): one event, no other row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from regshield.flows.context import Actor, RequestContext
from regshield.flows.runner import Tx, run_flow
from regshield.services import Services

READ_TAG = "contacts:contact:read"


@dataclass(frozen=True)
class ContactReadRecord:
    """Record one staff read of contacts' personal data. Raises nothing."""

    contacts: tuple[str, ...]
    via: str  # api | rdap | rdap-search
    account: str | None = None
    domains: tuple[str, ...] = ()

    async def run(self, tx: Tx) -> None:
        summary: dict[str, Any] = {"contacts": list(self.contacts), "via": self.via}
        if self.domains:
            summary["domains"] = list(self.domains)
        tx.record(READ_TAG, account=self.account, **summary)


async def record_staff_read(services: Services, actor: Actor | None,
                            context: RequestContext | None, contacts: Sequence[str], *,
                            via: str, account: str | None = None,
                            domains: Sequence[str] = ()) -> None:
    """Record the read when `actor` is a staff user and it read any contact."""
    if actor is None or actor.kind != "staff" or not contacts:
        return
    await run_flow(services, actor, context or RequestContext("api"), ContactReadRecord(
        tuple(contacts), via, account, tuple(domains)))
