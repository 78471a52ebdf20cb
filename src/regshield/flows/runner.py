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

Group commit: a flow that also defines `admit(actor)` (checks that need no store, raising as
`run` would) and `write_group(members)` (a class method writing many of its kind) shares its
transaction with the flows of its kind waiting at the same moment (`WriteGroup`): one BEGIN,
one chain append and one COMMIT for all of them, each flow still all or nothing. A group that
fails on a constraint or a refusal is rolled back whole and each of its flows runs alone, as
any other flow runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol, TypeVar, cast

import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeout
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


class GroupedFlow(Flow[R], Protocol):
    """A flow whose checks need no store and whose rows many flows of its kind can write
    together (group commit). A flow that also has a `prepare` step always runs alone."""

    def admit(self, actor: Actor) -> Any:
        """What `write_group` needs, or None when the checks need the store (this flow then
        runs alone). Raises what `run` raises for the same refusals."""
        ...

    @classmethod
    async def write_group(cls, members: Sequence[tuple[Tx, Any]]) -> Sequence[R]:
        """Write every member (a `Tx` of one shared transaction and what `admit` found), in
        order; the results in the same order."""
        ...


# At most this many flows share a transaction; the rest wait for the next one.
GROUP_LIMIT = 64
# Past this many waiting, a flow is refused at once as busy (503 at the API), as it is when
# every database connection is taken, rather than queued behind a flood.
WAITING_LIMIT = 4 * GROUP_LIMIT


async def run_flow(services: Services, actor: Actor, context: RequestContext,
                   flow: Flow[T]) -> T:
    if hasattr(flow, "admit") and not hasattr(flow, "prepare"):
        grouped = cast(GroupedFlow[T], flow)
        try:
            admitted = grouped.admit(actor)
        except PermissionDenied as denied:
            await _record_denial(services, actor, context, type(flow).__name__, denied)
            raise
        if admitted is not None:
            try:
                return cast(T, await _write_group(services, type(grouped)).submit(
                    actor, context, services.clock.now(), admitted))
            except _RunAlone:
                pass  # the group failed on a constraint or a refusal: this flow runs alone
    return await _run_alone(services, actor, context, flow)


async def _run_alone(services: Services, actor: Actor, context: RequestContext,
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


class _RunAlone(Exception):
    """The group this flow was in was rolled back; run it on its own."""


@dataclass(eq=False)
class _Member:
    actor: Actor
    context: RequestContext
    now: datetime
    admitted: Any
    answer: asyncio.Future[Any]


def _write_group(services: Services, kind: type[GroupedFlow[Any]]) -> WriteGroup:
    group = services.write_groups.get(kind)
    if group is None:
        group = services.write_groups[kind] = WriteGroup(services, kind)
    return cast(WriteGroup, group)


class WriteGroup:
    """The flows of one kind waiting for a transaction, and the task that writes them: while
    one group's transaction is open, the flows that arrive wait and form the next group, so
    a group is as large as the load makes it (one flow when nothing else is waiting)."""

    def __init__(self, services: Services, kind: type[GroupedFlow[Any]]) -> None:
        self.services = services
        self.kind = kind
        self._waiting: list[_Member] = []
        self._writer: asyncio.Task[None] | None = None

    async def submit(self, actor: Actor, context: RequestContext, now: datetime,
                     admitted: Any) -> Any:
        if len(self._waiting) >= WAITING_LIMIT:
            raise PoolTimeout(f"{len(self._waiting)} {self.kind.__name__} flows are waiting")
        loop = asyncio.get_running_loop()
        member = _Member(actor, context, now, admitted, loop.create_future())
        self._waiting.append(member)
        if self._writer is None:
            self._writer = loop.create_task(self._write_waiting())
        return await member.answer

    async def _write_waiting(self) -> None:
        try:
            while self._waiting:
                batch = self._waiting[:GROUP_LIMIT]
                del self._waiting[:GROUP_LIMIT]
                # A request given up on (its client left) before its group began is not written.
                batch = [member for member in batch if not member.answer.done()]
                if batch:
                    await self._write(batch)
        finally:
            self._writer = None
            for member in self._waiting:  # only when this task itself was cancelled
                member.answer.cancel()
            self._waiting.clear()

    async def _write(self, batch: list[_Member]) -> None:
        try:
            async with self.services.store.write() as session:
                txs = [Tx(session=session, actor=member.actor, context=member.context,
                          services=self.services, now=member.now) for member in batch]
                results = await self.kind.write_group(
                    [(tx, member.admitted) for tx, member in zip(txs, batch, strict=True)])
                if len(results) != len(batch):
                    raise RuntimeError(f"{self.kind.__name__}.write_group answered "
                                       f"{len(results)} of {len(batch)} flows")
                await append(session, [event for tx in txs for event in tx.events])
                for tx in txs:
                    await write_effects(session, tx.effects, tx.now)
        except (IntegrityError, RegshieldError):
            for member in batch:
                _answer(member, error=_RunAlone())
            return
        except BaseException as error:
            for member in batch:
                _answer(member, error=error)
            if not isinstance(error, Exception):
                raise
            return
        for member, tx, result in zip(batch, txs, results, strict=True):
            log.info("flow.done", flow=self.kind.__name__, actor=member.actor.label,
                     request_id=member.context.request_id, events=len(tx.events),
                     group=len(batch))
            _answer(member, result=result, error=tx.refusal)


def _answer(member: _Member, result: Any = None, error: BaseException | None = None) -> None:
    if member.answer.done():  # its request was given up on meanwhile
        return
    if isinstance(error, asyncio.CancelledError):
        member.answer.cancel()
    elif error is not None:
        member.answer.set_exception(error)
    else:
        member.answer.set_result(result)


async def _record_denial(services: Services, actor: Actor, context: RequestContext,
                         flow_name: str, denied: PermissionDenied) -> None:
    async with services.store.write() as session:
        await append(session, [EventDraft(
            tag="authz:permission:denied", actor=actor.label, channel=context.channel,
            occurred_at=services.clock.now(), account=actor.account_public_id,
            source_address=context.source_address, request_id=context.request_id,
            summary={"flow": flow_name, "reason": denied.detail},
        )])
