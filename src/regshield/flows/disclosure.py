"""Disclosure requests (Registration Data Policy §10) as flows: filing, acknowledgement,
decision, withdrawal, the reads of requesters and staff, and `disclosed_access`, which RDAP and
WHOIS ask whether a requester's approval opens a domain's contacts.

Anyone may file a request, signed in (as a customer: `self:disclosure:write`) or not; a
signed-in filer becomes the requester the request is tied to, and only such a request can be
approved, because RDAP and WHOIS recognize a requester by their credentials alone. An
anonymous filer gets the request's reference and hears of the acknowledgement and the decision
by email. The rules (deadlines, validation, the states) are rules/disclosure.py; the
requester's name, address and free text and the decision's rationale are sealed under the
request's own data key, and the letters to the requester are queued as `disclosure:letter`
effects that name the request only (notify/disclosure.py opens the address when it sends).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from regshield.clock import as_utc
from regshield.errors import FieldError, NotFound, PermissionDenied, Throttled, ValidationFailed
from regshield.flows.context import Actor, RequestContext
from regshield.flows.runner import Tx, run_flow
from regshield.rules.disclosure import (
    ACK_BUSINESS_DAYS,
    DECISION_CALENDAR_DAYS,
    DEFAULT_APPROVAL,
    FILING_WINDOW,
    FILINGS_ANONYMOUS,
    FILINGS_SIGNED_IN,
    MAX_APPROVAL,
    OPEN_STATES,
    REQUEST_ID_PREFIX,
    WEEKDAYS,
    BusinessCalendar,
    DisclosureEvent,
    DisclosureRecord,
    DisclosureState,
    Purpose,
    acknowledge,
    decide,
    queue_order,
    receive,
    redacted_fields,
    validate_decision,
    validate_request,
    withdraw,
)
from regshield.rules.names import validate_domain_name
from regshield.rules.redaction import ContactRole
from regshield.security.fields import Sealer
from regshield.security.tokens import new_public_id
from regshield.services import Services
from regshield.store.models import DisclosureRequest, Domain, User
from regshield.store.queries.domains import live_domain
from regshield.store.queries.users import throttle_counters

LETTER_KIND = "disclosure:letter"


def requester_binding(public_id: str) -> str:
    return f"disclosure_requests:{public_id}:requester"


def rationale_binding(public_id: str) -> str:
    return f"disclosure_requests:{public_id}:rationale"


def business_calendar(services: Services) -> BusinessCalendar:
    """The calendar acknowledgement deadlines are counted on: weekends and the configured
    holidays (`[disclosure] holidays`) are not business days; days are UTC dates."""
    holidays = services.settings.disclosure_holidays
    return BusinessCalendar(holidays) if holidays else WEEKDAYS


@dataclass(frozen=True)
class DisclosureView:
    """A request as its requester or staff read it. `status` reads `expired` for an approval
    past its expiry; `requester` holds the sealed values, opened."""

    reference: str
    domain: str
    status: str
    purpose: str
    roles: tuple[str, ...]
    fields: tuple[str, ...]
    requester_user: str | None
    requester: Mapping[str, Any]
    received_at: datetime
    ack_due_at: datetime
    decision_due_at: datetime
    ack_overdue: bool
    decision_overdue: bool
    acknowledged_at: datetime | None
    decided_at: datetime | None
    rationale: str | None
    granted_roles: tuple[str, ...]
    granted_fields: tuple[str, ...]
    expires_at: datetime | None


# --- rows <-> rules ------------------------------------------------------------------------


def _record(row: DisclosureRequest, requester_user: str | None) -> DisclosureRecord:
    return DisclosureRecord(
        public_id=row.public_id, state=DisclosureState(row.state),
        roles=frozenset(ContactRole(role) for role in row.roles), received_at=row.received_at,
        ack_due_at=row.ack_due_at, decision_due_at=row.decision_due_at,
        requester_user=requester_user, acknowledged_at=row.acknowledged_at,
        acknowledged_by=row.acknowledged_by, decided_at=row.decided_at,
        decided_by=row.decided_by,
        granted_roles=frozenset(ContactRole(role) for role in row.granted_roles),
        expires_at=row.expires_at, withdrawn_at=row.withdrawn_at,
        withdrawn_by=row.withdrawn_by, fields=frozenset(row.fields),
        granted_fields=frozenset(row.granted_fields or ()))


def _save(row: DisclosureRequest, record: DisclosureRecord) -> None:
    row.state = str(record.state)
    row.acknowledged_at = record.acknowledged_at
    row.acknowledged_by = record.acknowledged_by
    row.decided_at = record.decided_at
    row.decided_by = record.decided_by
    row.granted_roles = sorted(str(role) for role in record.granted_roles)
    row.granted_fields = sorted(record.granted_fields)
    row.expires_at = record.expires_at
    row.withdrawn_at = record.withdrawn_at
    row.withdrawn_by = record.withdrawn_by


async def _user_public_id(session: AsyncSession, user_id: int | None) -> str | None:
    if user_id is None:
        return None
    user = await session.get(User, user_id)
    return user.public_id if user is not None else None


async def _view(session: AsyncSession, sealer: Sealer, row: DisclosureRequest,
                now: datetime, data_key: bytes | None = None) -> DisclosureView:
    key = data_key if data_key is not None else await sealer.data_key(session, row.data_key_id)
    requester = Sealer.open_json(key, row.requester_sealed, requester_binding(row.public_id))
    rationale = None
    if row.rationale_sealed is not None:
        rationale = Sealer.open(key, row.rationale_sealed,
                                rationale_binding(row.public_id)).decode()
    domain = await session.get(Domain, row.domain_id)
    assert domain is not None
    record = _record(row, await _user_public_id(session, row.requester_user_id))
    return DisclosureView(
        reference=row.public_id, domain=domain.name, status=record.status(now),
        purpose=row.purpose, roles=tuple(sorted(row.roles)), fields=tuple(row.fields),
        requester_user=record.requester_user, requester=requester,
        received_at=row.received_at, ack_due_at=row.ack_due_at,
        decision_due_at=row.decision_due_at, ack_overdue=record.ack_overdue(now),
        decision_overdue=record.decision_overdue(now), acknowledged_at=row.acknowledged_at,
        decided_at=row.decided_at, rationale=rationale,
        granted_roles=tuple(sorted(row.granted_roles)),
        granted_fields=tuple(sorted(row.granted_fields or ())), expires_at=row.expires_at)


async def _request_row(session: AsyncSession, reference: str) -> DisclosureRequest | None:
    query = select(DisclosureRequest).where(DisclosureRequest.public_id == reference)
    return (await session.execute(query)).scalar_one_or_none()


def _is_requester(actor: Actor, row: DisclosureRequest) -> bool:
    return actor.user_id is not None and actor.user_id == row.requester_user_id


def _require_requester(actor: Actor) -> None:
    """A signed-in filer or withdrawer needs `self:disclosure:write` (customers): a read-only
    credential, or staff, who read registration data through their role, may not. Anyone
    without a credential may file."""
    if actor.kind == "anonymous" or actor.kind == "system":
        return
    actor.require_self("disclosure:write")


def _letter(tx: Tx, row: DisclosureRequest, letter: str) -> None:
    tx.enqueue(LETTER_KIND, {"request": row.public_id, "letter": letter,
                             "request_id": tx.context.request_id,
                             "occurred_at": tx.now.isoformat()},
               dedupe_key=f"{LETTER_KIND}:{row.public_id}:{letter}")


async def _filing_refused(tx: Tx) -> Throttled | None:
    """Count one filing against its requester's window (the user when signed in, else the
    source address, kept as a keyed hash); a Throttled error when the window is full."""
    if tx.actor.user_public_id is not None:
        key, limit = f"disclosure:user:{tx.actor.user_public_id}", FILINGS_SIGNED_IN
    else:
        address = tx.services.keyring.index("disclosure-address",
                                            tx.context.source_address or "-")
        key, limit = f"disclosure:address:{address}", FILINGS_ANONYMOUS
    counter = (await throttle_counters(tx.session, [key], tx.now))[key]
    if as_utc(counter.window_start) + FILING_WINDOW <= tx.now:
        counter.window_start, counter.failures, counter.blocked_until = tx.now, 0, None
    window_end = as_utc(counter.window_start) + FILING_WINDOW
    if counter.failures >= limit:
        counter.blocked_until = window_end
        return Throttled(int((window_end - tx.now).total_seconds()) + 1,
                         f"at most {limit} disclosure requests an hour; retry later")
    counter.failures += 1
    return None


# --- flows ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class DisclosureRequestCreate:
    """File a request for the non-public data of a domain this registrar sponsors. Anyone may
    file; a signed-in user becomes the requester it is tied to, and needs
    `self:disclosure:write` (customers; not staff, not a read-only token). Raises
    PermissionDenied, ValidationFailed
    (every failing field, an unknown or unsponsored domain among them), Throttled (too many
    filings from one address or user in an hour, recorded)."""

    fields: Mapping[str, Any]

    async def run(self, tx: Tx) -> DisclosureView | None:
        _require_requester(tx.actor)
        errors: list[FieldError] = []
        checked = None
        try:
            checked = validate_request(self.fields)
        except ValidationFailed as failed:
            errors += failed.errors
        name = validate_domain_name(self.fields.get("domain"), "domain", [])
        domain = await live_domain(tx.session, name.ascii) if name is not None else None
        if name is not None and domain is None:
            errors.append(FieldError("domain", "not_sponsored",
                                     "is not a domain this registrar sponsors"))
        if errors:
            raise ValidationFailed(errors)
        assert checked is not None and domain is not None
        throttled = await _filing_refused(tx)
        if throttled is not None:
            tx.record(DisclosureEvent.THROTTLED, domain=domain.name)
            tx.refuse(throttled)
            return None
        public_id = new_public_id(REQUEST_ID_PREFIX)
        requester_user = tx.actor.user_public_id if tx.actor.user_id is not None else None
        record = receive(public_id, checked.roles, now=tx.now, requester_user=requester_user,
                         fields=checked.fields, calendar=business_calendar(tx.services))
        key_id, data_key = await tx.sealer.new_data_key(tx.session, tx.now)
        row = DisclosureRequest(
            public_id=public_id, domain_id=domain.id, requester_user_id=tx.actor.user_id,
            data_key_id=key_id,
            requester_sealed=Sealer.seal_json(data_key, checked.sealed_part(),
                                              requester_binding(public_id)),
            purpose=str(checked.purpose), roles=sorted(str(role) for role in checked.roles),
            fields=list(checked.fields), state=str(record.state), received_at=tx.now,
            ack_due_at=record.ack_due_at, decision_due_at=record.decision_due_at,
            granted_roles=[], granted_fields=[])
        tx.session.add(row)
        await tx.session.flush()
        tx.record(DisclosureEvent.REQUESTED, request=public_id, domain=domain.name,
                  purpose=str(checked.purpose), roles=row.roles, fields=row.fields,
                  signed_in=requester_user is not None,
                  ack_due_at=record.ack_due_at.isoformat())
        return await _view(tx.session, tx.sealer, row, tx.now, data_key)


async def _load_for_staff(tx: Tx, reference: str, action: str) -> DisclosureRequest:
    tx.actor.require("disclosure", action)
    if not tx.actor.can("disclosure", action):
        raise PermissionDenied(f"only registrar staff may take this step (disclosure:{action})")
    row = await _request_row(tx.session, reference)
    if row is None:
        raise NotFound("no such disclosure request")
    return row


async def _domain_name(tx: Tx, row: DisclosureRequest) -> str:
    domain = await tx.session.get(Domain, row.domain_id)
    assert domain is not None
    return domain.name


@dataclass(frozen=True)
class DisclosureAcknowledge:
    """Staff acknowledge receipt; the requester is told by email. Raises PermissionDenied,
    NotFound, DisclosureRefused (not in the received state)."""

    reference: str

    async def run(self, tx: Tx) -> DisclosureView:
        row = await _load_for_staff(tx, self.reference, "write")
        requester = await _user_public_id(tx.session, row.requester_user_id)
        record = acknowledge(_record(row, requester), by=tx.actor.label, now=tx.now)
        _save(row, record)
        tx.record(DisclosureEvent.ACKNOWLEDGED, account=None, request=row.public_id,
                  domain=await _domain_name(tx, row),
                  late=tx.now > row.ack_due_at)
        _letter(tx, row, "acknowledged")
        return await _view(tx.session, tx.sealer, row, tx.now)


@dataclass(frozen=True)
class DisclosureDecide:
    """Staff with `registrar:disclosure:decide` approve or deny, always with a rationale
    (sealed; sent to the requester). An approval covers the roles and fields asked for (or
    those of them the decision names) until `expires_at` (default 30 days). Raises
    PermissionDenied, NotFound, ValidationFailed, DisclosureRefused (already decided or
    withdrawn)."""

    reference: str
    decision: Mapping[str, Any]

    async def run(self, tx: Tx) -> DisclosureView:
        row = await _load_for_staff(tx, self.reference, "decide")
        requester = await _user_public_id(tx.session, row.requester_user_id)
        current = _record(row, requester)
        checked = validate_decision(self.decision, current, now=tx.now)
        record = decide(current, checked, by=tx.actor.label, now=tx.now)
        _save(row, record)
        data_key = await tx.sealer.data_key(tx.session, row.data_key_id)
        row.rationale_sealed = Sealer.seal(data_key, checked.rationale.encode(),
                                           rationale_binding(row.public_id))
        approved = record.state is DisclosureState.APPROVED
        tx.record(DisclosureEvent.APPROVED if approved else DisclosureEvent.DENIED,
                  account=None, request=row.public_id, domain=await _domain_name(tx, row),
                  roles=row.granted_roles, fields=row.granted_fields,
                  expires_at=record.expires_at.isoformat() if record.expires_at else None,
                  late=tx.now > row.decision_due_at)
        _letter(tx, row, str(record.state))
        return await _view(tx.session, tx.sealer, row, tx.now, data_key)


@dataclass(frozen=True)
class DisclosureWithdraw:
    """Its requester withdraws a request, or staff who decide revoke it; an approval ends at
    once. Raises NotFound (also for another requester's request), PermissionDenied (the
    requester's credential lacks `self:disclosure:write`), DisclosureRefused."""

    reference: str

    async def run(self, tx: Tx) -> DisclosureView:
        row = await _request_row(tx.session, self.reference)
        if row is None or not (_is_requester(tx.actor, row)
                               or tx.actor.can("disclosure", "decide")):
            raise NotFound("no such disclosure request")
        if not tx.actor.can("disclosure", "decide"):
            _require_requester(tx.actor)
        requester = await _user_public_id(tx.session, row.requester_user_id)
        record = withdraw(_record(row, requester), by=tx.actor.label, now=tx.now)
        _save(row, record)
        tx.record(DisclosureEvent.WITHDRAWN, account=None, request=row.public_id,
                  domain=await _domain_name(tx, row), by_requester=_is_requester(tx.actor, row))
        return await _view(tx.session, tx.sealer, row, tx.now)


@dataclass(frozen=True)
class DisclosureAccessRecord:
    """Record one use of approved requests to read a domain's contacts (the field names
    opened, never their values). Raises nothing."""

    domain: str
    requests: tuple[str, ...]
    roles: tuple[str, ...]
    via: str
    fields: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    async def run(self, tx: Tx) -> None:
        tx.record(DisclosureEvent.ACCESSED, account=None, domain=self.domain,
                  requests=list(self.requests), roles=list(self.roles), via=self.via,
                  fields={role: list(names) for role, names in self.fields.items()})


# --- reads ---------------------------------------------------------------------------------


async def disclosure_read(services: Services, actor: Actor, reference: str) -> DisclosureView:
    """One request, for its requester or staff who read requests. Raises NotFound (also for
    another requester's request)."""
    async with services.store.read() as session:
        row = await _request_row(session, reference)
        if row is None or not (_is_requester(actor, row) or actor.can("disclosure", "read")):
            raise NotFound("no such disclosure request")
        return await _view(session, services.sealer, row, services.clock.now())


async def disclosure_list(services: Services, actor: Actor, *, overdue: bool = False,
                          limit: int = 100) -> list[DisclosureView]:
    """Staff: the queue, overdue acknowledgements first (`overdue`: only requests whose
    acknowledgement or decision is late). Anyone else signed in: their own requests, newest
    first. Raises PermissionDenied for an actor without a user."""
    if actor.user_id is None and actor.kind != "system":
        raise PermissionDenied("sign in to list disclosure requests")
    now = services.clock.now()
    staff = actor.can("disclosure", "read")
    newest = select(DisclosureRequest).order_by(DisclosureRequest.id.desc()).limit(limit)
    async with services.store.read() as session:
        if not staff:
            rows = list((await session.execute(newest.where(
                DisclosureRequest.requester_user_id == actor.user_id))).scalars())
        else:
            # Every open request is in the queue, however old; closed ones follow, newest first.
            states = [str(state) for state in OPEN_STATES]
            rows = list((await session.execute(select(DisclosureRequest).where(
                DisclosureRequest.state.in_(states)))).scalars())
            if not overdue:
                rows += (await session.execute(newest.where(
                    DisclosureRequest.state.not_in(states)))).scalars()
            users = {row.requester_user_id: await _user_public_id(session,
                                                                  row.requester_user_id)
                     for row in rows}
            by_reference = {row.public_id: row for row in rows}
            ordered = queue_order([_record(row, users[row.requester_user_id])
                                   for row in rows], now)
            if overdue:
                ordered = [r for r in ordered if r.ack_overdue(now) or r.decision_overdue(now)]
            rows = [by_reference[record.public_id] for record in ordered[:limit]]
        keys = await services.sealer.data_keys(session, {row.data_key_id for row in rows})
        return [await _view(session, services.sealer, row, now, keys[row.data_key_id])
                for row in rows]


def policy_description(calendar: BusinessCalendar = WEEKDAYS) -> dict[str, Any]:
    """How to file a request and what happens next: the portal's public description."""
    return {
        "endpoint": "POST /api/v1/disclosure-requests",
        "fields": {
            "domain": "the domain name (A-label or U-label) this registrar sponsors",
            "requester_name": "your name", "requester_email": "where answers are sent",
            "requester_organization": "optional",
            "purpose": [purpose.value for purpose in Purpose],
            "purpose_detail": "required when purpose is other",
            "legal_basis": "the legal basis of the request",
            "roles": [role.value for role in ContactRole],
            "fields": {role.value: list(redacted_fields([role])) for role in ContactRole},
        },
        "timeline": {
            "acknowledgement": f"within {ACK_BUSINESS_DAYS} business days (Monday to Friday,"
                               " UTC) of receipt, by email",
            "decision": f"without undue delay and within {DECISION_CALENDAR_DAYS} calendar "
                        "days of receipt, by email, with the rationale",
            "approval": f"valid {DEFAULT_APPROVAL.days} days unless the decision says "
                        f"otherwise (at most {MAX_APPROVAL.days}); it covers the contact roles"
                        " granted, seen through RDAP and WHOIS with your credentials, each "
                        "lookup recorded",
        },
        "authentication": "file while signed in as a customer user (Authorization: Bearer, "
                          "a credential that may write, not a read-only token) to be eligible "
                          "for approval; an anonymous request gets a reference and answers by "
                          "email, and can only be denied",
        "holidays": sorted(day.isoformat() for day in calendar.holidays),
    }


async def disclosed_access(services: Services, actor: Actor, context: RequestContext,
                           domain: str, channel: str) -> dict[str, frozenset[str]]:
    """What the approved, unexpired disclosure requests of `actor` open of `domain` (A-label):
    for each contact role ("registrant", "technical"), exactly the fields approved. Records
    the access as an event when anything is open. `channel` is "rdap" or "whois"."""
    if actor.user_id is None:
        return {}
    now = services.clock.now()
    async with services.store.read() as session:
        query = (select(DisclosureRequest).join(Domain, Domain.id == DisclosureRequest.domain_id)
                 .where(Domain.name == domain.lower().rstrip("."), Domain.ended_at.is_(None),
                        DisclosureRequest.requester_user_id == actor.user_id,
                        DisclosureRequest.state == str(DisclosureState.APPROVED),
                        DisclosureRequest.expires_at > now))
        rows: Sequence[DisclosureRequest] = (await session.execute(query)).scalars().all()
    covering = [(row.public_id, _record(row, actor.user_public_id).grants(now)) for row in rows]
    opened: dict[str, set[str]] = {}
    for _, granted in covering:
        for role, fields in granted.items():
            opened.setdefault(str(role), set()).update(fields)
    if not opened:
        return {}
    await run_flow(services, actor, context, DisclosureAccessRecord(
        domain.lower().rstrip("."), tuple(sorted(ref for ref, granted in covering if granted)),
        tuple(sorted(opened)), channel,
        {role: tuple(sorted(fields)) for role, fields in sorted(opened.items())}))
    return {role: frozenset(fields) for role, fields in opened.items()}
