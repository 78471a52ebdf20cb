"""The flow runner: the one path by which anything changes.

For every flow it opens one transaction, hands the flow a `Tx` (actor, context, time, session,
event and outbox recorders), then appends the recorded events to the hash chain and writes the
queued side effects, and commits, all or nothing. A flow that must refuse *and* keep a record
(a failed login counts towards throttling and leaves an event) calls `tx.refuse(error)`: the
transaction commits and the error is raised afterwards. A permission refusal is recorded as an
event of its own. A flow may define `async def prepare(self, services, context, actor)` for
slow, read-only work done before the transaction opens; its result reaches `run` as
`tx.prepared`. A `prepare` that asks the outside world (a registry, DNS servers) or does heavy
work for a named object first checks that the actor may act on it (`actor_may_change` in
flows/domains.py, `actor_may_edit_zone` in flows/zones.py), so that nobody makes the
registrar query or work for another's object; `run` checks again and refuses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol, TypeVar

import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from regshield.errors import Conflict, PermissionDenied, RegshieldError
from regshield.eventlog.chain import EventDraft, append
from regshield.flows.context import Actor, RequestContext
from regshield.outbox.queue import SideEffect, write_effects
from regshield.policy.security import SecurityPolicy, security_policy
from regshield.security.fields import Sealer
from regshield.services import Services

R = TypeVar("R", covariant=True)
log = structlog.get_logger("regshield.flows")


@dataclass
class Tx:
    """What a flow sees while it runs."""

    session: AsyncSession
    actor: Actor
    context: RequestContext
    services: Services
    now: datetime
    events: list[EventDraft] = field(default_factory=list)
    effects: list[SideEffect] = field(default_factory=list)
    refusal: RegshieldError | None = None
    # What the flow's optional `prepare` step found before the transaction opened.
    prepared: Any = None

    @property
    def sealer(self) -> Sealer:
        return self.services.sealer

    @property
    def security(self) -> SecurityPolicy:
        return security_policy(self.now)

    def record(self, tag: str, *, account: str | Literal["actor's"] | None = "actor's",
               actor: Actor | None = None, **summary: Any) -> None:
        """Record an event. The summary holds identifiers and outcomes, never personal data.

        `account` defaults to the actor's own; None marks a registrar-wide event.
        """
        who = actor or self.actor
        self.events.append(EventDraft(
            tag=tag, actor=who.label, channel=self.context.channel, occurred_at=self.now,
            account=who.account_public_id if account == "actor's" else account,
            source_address=self.context.source_address, request_id=self.context.request_id,
            summary=summary,
        ))

    def enqueue(self, kind: str, payload: dict[str, Any], dedupe_key: str | None = None,
                delay: timedelta = timedelta(0)) -> None:
        self.effects.append(SideEffect(kind, payload, dedupe_key, delay))

    def refuse(self, error: RegshieldError) -> None:
        """Commit what was recorded so far, then raise `error` to the caller."""
        self.refusal = error


class Flow(Protocol[R]):
    async def run(self, tx: Tx) -> R: ...


T = TypeVar("T")


async def run_flow(services: Services, actor: Actor, context: RequestContext,
                   flow: Flow[T]) -> T:
    now = services.clock.now()
    # Slow, read-only work (a password hash check) runs before the write transaction, so that
    # it never holds the write lock: on SQLite every writer would wait behind it.
    prepare = getattr(flow, "prepare", None)
    prepared = await prepare(services, context, actor) if prepare is not None else None
    try:
        async with services.store.write() as session:
            tx = Tx(session=session, actor=actor, context=context, services=services, now=now,
                    prepared=prepared)
            result = await flow.run(tx)
            await append(session, tx.events)
            await write_effects(session, tx.effects, now)
    except PermissionDenied as denied:
        await _record_denial(services, actor, context, type(flow).__name__, denied)
        raise
    except IntegrityError as exc:
        # Two concurrent changes raced for the same unique value; the flow's own check lost.
        raise Conflict("a concurrent change conflicts with this one; retry") from exc
    log.info("flow.done", flow=type(flow).__name__, actor=actor.label,
             request_id=context.request_id, events=len(tx.events))
    if tx.refusal is not None:
        raise tx.refusal
    return result


async def _record_denial(services: Services, actor: Actor, context: RequestContext,
                         flow_name: str, denied: PermissionDenied) -> None:
    async with services.store.write() as session:
        await append(session, [EventDraft(
            tag="authz:permission:denied", actor=actor.label, channel=context.channel,
            occurred_at=services.clock.now(), account=actor.account_public_id,
            source_address=context.source_address, request_id=context.request_id,
            summary={"flow": flow_name, "reason": denied.detail},
        )])
