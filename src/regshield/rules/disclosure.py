"""Disclosure requests (ICANN Registration Data Policy §10): what a valid request is, its
deadlines on a business-day calendar, and the states it goes through.

A requester asks for the non-public registration data of a domain, naming a purpose from
`PURPOSES`, a legal basis, the contact roles and the fields wanted. The registrar acknowledges
within `ACK_BUSINESS_DAYS` business days of receipt and decides within
`DECISION_CALENDAR_DAYS` calendar days (refs/icann-obligations.md row 15), with a rationale for
every decision. An approval makes the requester the `disclosed` persona of rules/redaction.py
for exactly the fields it grants (those asked for, or fewer as the decision names) of the
roles it covers, until it expires (`DEFAULT_APPROVAL` unless the decision says
otherwise); an expired approval discloses nothing, so expiry is read from the time and never
needs a write.

States: received -> acknowledged -> approved | denied; received or acknowledged (or approved,
which ends the access) -> withdrawn. A decision may come before the acknowledgement: it
acknowledges as well.

Pure: no I/O, no clock. Functions take the time; bad input raises ValidationFailed naming every
failing field at once, a step the state does not allow raises DisclosureRefused.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import Any, Final

from regshield.errors import Conflict, FieldError, ValidationFailed
from regshield.rules.contacts import normalize_email
from regshield.rules.names import DomainName, validate_domain_name
from regshield.rules.redaction import ContactRole, rules_for
from regshield.rules.text import text_value

ACK_BUSINESS_DAYS: Final = 2
DECISION_CALENDAR_DAYS: Final = 30
DEFAULT_APPROVAL: Final = timedelta(days=30)
MAX_APPROVAL: Final = timedelta(days=365)
MAX_NAME: Final = 255
MAX_LONG_TEXT: Final = 4000
REQUEST_ID_PREFIX: Final = "dsc"
# Filing is open to anyone, so it is limited: requests per source address (anonymous) or per
# user (signed in) in one window.
FILING_WINDOW: Final = timedelta(hours=1)
FILINGS_ANONYMOUS: Final = 5
FILINGS_SIGNED_IN: Final = 30
ALLOWED_KEYS: Final = frozenset({"domain", "requester_name", "requester_email",
                                 "requester_organization", "purpose", "purpose_detail",
                                 "legal_basis", "roles", "fields"})


class Purpose(StrEnum):
    """Why the data is asked for."""

    LAW_ENFORCEMENT = "law_enforcement"
    INTELLECTUAL_PROPERTY = "intellectual_property"
    CYBERSECURITY_INCIDENT = "cybersecurity_incident"
    CONSUMER_PROTECTION = "consumer_protection"
    LEGAL_CLAIM = "legal_claim"
    OTHER = "other"  # needs `purpose_detail`


class DisclosureState(StrEnum):
    RECEIVED = "received"
    ACKNOWLEDGED = "acknowledged"
    APPROVED = "approved"
    DENIED = "denied"
    WITHDRAWN = "withdrawn"


class Decision(StrEnum):
    APPROVED = "approved"
    DENIED = "denied"


OPEN_STATES: Final = frozenset({DisclosureState.RECEIVED, DisclosureState.ACKNOWLEDGED})


class DisclosureEvent(StrEnum):
    """Event tags (`source:subject:action`) the flows record for each step."""

    REQUESTED = "disclosure:request:requested"
    ACKNOWLEDGED = "disclosure:request:acknowledged"
    APPROVED = "disclosure:request:approved"
    DENIED = "disclosure:request:denied"
    WITHDRAWN = "disclosure:request:withdrawn"
    THROTTLED = "disclosure:request:throttled"
    ACCESSED = "disclosure:data:accessed"


class DisclosureRefused(Conflict):
    """The request's state does not allow this step."""

    type_slug = "disclosure-refused"
    title = "Refused by the disclosure-request rules"

    def __init__(self, state: DisclosureState, detail: str) -> None:
        self.state = state
        super().__init__(detail)

    def extra(self) -> dict[str, str]:
        return {"state": str(self.state)}


# --- the calendar --------------------------------------------------------------------------


@dataclass(frozen=True)
class BusinessCalendar:
    """Business days: Monday to Friday, less `holidays`. Days are UTC dates."""

    holidays: frozenset[date] = frozenset()

    def is_business_day(self, day: date) -> bool:
        return day.weekday() < 5 and day not in self.holidays

    def add_business_days(self, start: datetime, days: int) -> datetime:
        """The moment `days` whole business days after `start`. A start outside business
        days counts from the beginning of the next business day, so a request received on a
        Saturday is not given less time than one received first thing on Monday."""
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        if days < 0:
            raise ValueError("days must not be negative")
        moment = start
        if not self.is_business_day(moment.date()):
            day = moment.date()
            while not self.is_business_day(day):
                day += timedelta(days=1)
            moment = datetime.combine(day, time(0), tzinfo=start.tzinfo)
        counted = 0
        while counted < days:
            moment += timedelta(days=1)
            # Each step that lands on a business day completes one business day's time: a
            # Friday-noon request has had one business day on Monday at noon.
            if self.is_business_day(moment.date()):
                counted += 1
        return moment


WEEKDAYS: Final = BusinessCalendar()


def ack_due(received_at: datetime, calendar: BusinessCalendar = WEEKDAYS) -> datetime:
    return calendar.add_business_days(received_at, ACK_BUSINESS_DAYS)


def decision_due(received_at: datetime) -> datetime:
    return received_at + timedelta(days=DECISION_CALENDAR_DAYS)


# --- validation ----------------------------------------------------------------------------


@dataclass(frozen=True)
class RequestInput:
    """A checked request. Name, email, organization, purpose detail and legal basis are the
    requester's free text: personal data, sealed at rest."""

    domain: DomainName
    requester_name: str
    requester_email: str
    requester_organization: str | None
    purpose: Purpose
    purpose_detail: str | None
    legal_basis: str
    roles: frozenset[ContactRole]
    fields: tuple[str, ...]

    def sealed_part(self) -> dict[str, Any]:
        return {"name": self.requester_name, "email": self.requester_email,
                "organization": self.requester_organization,
                "purpose_detail": self.purpose_detail, "legal_basis": self.legal_basis}


def redacted_fields(roles: Iterable[ContactRole]) -> tuple[str, ...]:
    """The fields a disclosure can open for these roles: those redacted for the public."""
    found: dict[str, None] = {}
    for role in sorted(roles):
        for rule in rules_for(role):
            if not rule.public:
                found[rule.field] = None
    return tuple(found)


def validate_request(raw: Mapping[str, Any]) -> RequestInput:
    """Check every field; raise one ValidationFailed naming each failing field."""
    errors: list[FieldError] = [FieldError(str(key), "unknown_field",
                                           "is not a field of a disclosure request")
                                for key in raw if key not in ALLOWED_KEYS]
    domain = validate_domain_name(raw.get("domain"), "domain", errors)
    name = _text(raw.get("requester_name"), "requester_name", errors, limit=MAX_NAME)
    email = normalize_email(raw.get("requester_email"), errors, "requester_email")
    organization = _text(raw.get("requester_organization"), "requester_organization", errors,
                         limit=MAX_NAME, required=False)
    purpose = _purpose(raw.get("purpose"), errors)
    detail = _text(raw.get("purpose_detail"), "purpose_detail", errors, limit=MAX_LONG_TEXT,
                   required=purpose is Purpose.OTHER, multiline=True)
    legal_basis = _text(raw.get("legal_basis"), "legal_basis", errors, limit=MAX_LONG_TEXT,
                        multiline=True)
    roles = parse_roles(raw.get("roles"), "roles", errors)
    fields = _fields(raw.get("fields"), roles, errors)
    if errors:
        raise ValidationFailed(errors)
    assert domain and name and email and purpose and legal_basis and roles and fields
    return RequestInput(domain, name, email, organization, purpose, detail, legal_basis,
                        roles, fields)


def parse_roles(value: Any, field_name: str, errors: list[FieldError]) -> frozenset[ContactRole]:
    """A non-empty list of contact roles, each `registrant` or `technical`."""
    known = ", ".join(role.value for role in ContactRole)
    if not isinstance(value, list) or not value:
        errors.append(FieldError(field_name, "required", f"must list one or more of {known}"))
        return frozenset()
    roles: set[ContactRole] = set()
    for index, item in enumerate(value):
        try:
            roles.add(ContactRole(item))
        except ValueError:
            errors.append(FieldError(f"{field_name}.{index}", "unknown_role",
                                     f"must be one of {known}"))
    return frozenset(roles)


def _fields(value: Any, roles: AbstractSet[ContactRole],
            errors: list[FieldError]) -> tuple[str, ...]:
    openable = redacted_fields(roles) if roles else redacted_fields(ContactRole)
    if not isinstance(value, list) or not value:
        errors.append(FieldError("fields", "required", "must list the fields asked for: "
                                 + ", ".join(openable)))
        return ()
    chosen: dict[str, None] = {}
    for index, item in enumerate(value):
        if isinstance(item, str) and item in openable:
            chosen[item] = None
        else:
            errors.append(FieldError(f"fields.{index}", "not_disclosable",
                                     "must be a redacted field of the roles asked for: "
                                     + ", ".join(openable)))
    return tuple(chosen)


def _purpose(value: Any, errors: list[FieldError]) -> Purpose | None:
    try:
        return Purpose(value)
    except ValueError:
        errors.append(FieldError("purpose", "unknown_purpose", "must be one of "
                                 + ", ".join(purpose.value for purpose in Purpose)))
        return None


def _text(value: Any, field_name: str, errors: list[FieldError], *, limit: int,
          required: bool = True, multiline: bool = False) -> str | None:
    text = text_value(value, field_name, errors, required=required)
    if text is None:
        return None
    allowed = "\n" if multiline else ""
    body = text.replace("\r\n", "\n")
    if any(unicodedata.category(ch).startswith("C") and ch not in allowed for ch in body):
        errors.append(FieldError(field_name, "control_characters",
                                 "must not contain control characters"))
        return None
    cleaned = unicodedata.normalize("NFC", body.strip() if multiline else " ".join(body.split()))
    if len(cleaned) > limit:
        errors.append(FieldError(field_name, "too_long", f"must be at most {limit} characters"))
        return None
    return cleaned


# --- the state machine ---------------------------------------------------------------------


@dataclass(frozen=True)
class DisclosureRecord:
    """A request as the rules see it (the sealed free text stays with the flow)."""

    public_id: str
    state: DisclosureState
    roles: frozenset[ContactRole]
    received_at: datetime
    ack_due_at: datetime
    decision_due_at: datetime
    requester_user: str | None = None
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    decided_at: datetime | None = None
    decided_by: str | None = None
    granted_roles: frozenset[ContactRole] = field(default_factory=frozenset)
    expires_at: datetime | None = None
    withdrawn_at: datetime | None = None
    withdrawn_by: str | None = None
    fields: frozenset[str] = field(default_factory=frozenset)  # asked for
    granted_fields: frozenset[str] = field(default_factory=frozenset)

    def ack_overdue(self, now: datetime) -> bool:
        return self.state is DisclosureState.RECEIVED and now > self.ack_due_at

    def decision_overdue(self, now: datetime) -> bool:
        return self.state in OPEN_STATES and now > self.decision_due_at

    def grants(self, now: datetime) -> Mapping[ContactRole, frozenset[str]]:
        """What this request discloses at `now`: for each approved role, the approved fields
        that the role's contact redacts (until expiry). Nothing else, however the rest of the
        contact reads to staff."""
        if self.state is not DisclosureState.APPROVED or self.expires_at is None \
                or now >= self.expires_at:
            return {}
        opened = {role: self.granted_fields & frozenset(redacted_fields([role]))
                  for role in self.granted_roles}
        return {role: fields for role, fields in opened.items() if fields}

    def status(self, now: datetime) -> str:
        """The state as a reader sees it: an approval past its expiry reads `expired`."""
        if self.state is DisclosureState.APPROVED and not self.grants(now):
            return "expired"
        return str(self.state)


def receive(public_id: str, roles: AbstractSet[ContactRole], *, now: datetime,
            requester_user: str | None, fields: Iterable[str] = (),
            calendar: BusinessCalendar = WEEKDAYS) -> DisclosureRecord:
    return DisclosureRecord(public_id=public_id, state=DisclosureState.RECEIVED,
                            roles=frozenset(roles), received_at=now,
                            ack_due_at=ack_due(now, calendar),
                            decision_due_at=decision_due(now), requester_user=requester_user,
                            fields=frozenset(fields))


def acknowledge(record: DisclosureRecord, *, by: str, now: datetime) -> DisclosureRecord:
    if record.state is not DisclosureState.RECEIVED:
        raise DisclosureRefused(record.state, f"the request is {record.state}, not received")
    return replace(record, state=DisclosureState.ACKNOWLEDGED, acknowledged_at=now,
                   acknowledged_by=by)


@dataclass(frozen=True)
class DecisionInput:
    decision: Decision
    rationale: str
    expires_at: datetime | None
    roles: frozenset[ContactRole] | None
    fields: frozenset[str] | None = None


def validate_decision(raw: Mapping[str, Any], record: DisclosureRecord, *,
                      now: datetime) -> DecisionInput:
    """Check a decision against the request: a rationale always, an approval only for a
    request tied to a user account (RDAP and WHOIS know requesters only by their credentials),
    an expiry in the future and within `MAX_APPROVAL`, roles and fields among those asked
    for."""
    errors: list[FieldError] = [FieldError(str(key), "unknown_field",
                                           "is not a field of a decision")
                                for key in raw if key not in ("decision", "rationale",
                                                              "expires_at", "roles",
                                                              "fields")]
    decision: Decision | None
    try:
        decision = Decision(str(raw.get("decision")))
    except ValueError:
        decision = None
        errors.append(FieldError("decision", "invalid", "must be approved or denied"))
    rationale = _text(raw.get("rationale"), "rationale", errors, limit=MAX_LONG_TEXT,
                      multiline=True)
    expires_at = raw.get("expires_at")
    roles: frozenset[ContactRole] | None = None
    fields: frozenset[str] | None = None
    if decision is Decision.APPROVED:
        if record.requester_user is None:
            errors.append(FieldError("decision", "requester_not_authenticated",
                                     "an approval needs a request filed by a signed-in user; "
                                     "deny it and ask the requester to file again signed in"))
        if expires_at is not None:
            if not isinstance(expires_at, datetime) or expires_at.tzinfo is None:
                errors.append(FieldError("expires_at", "invalid",
                                         "must be a time with a time zone"))
            elif expires_at <= now:
                errors.append(FieldError("expires_at", "in_the_past", "must be in the future"))
            elif expires_at > now + MAX_APPROVAL:
                errors.append(FieldError("expires_at", "too_far",
                                         f"must be within {MAX_APPROVAL.days} days"))
        if raw.get("roles") is not None:
            roles = parse_roles(raw.get("roles"), "roles", errors)
            if roles - record.roles:
                errors.append(FieldError("roles", "not_asked",
                                         "may only name roles the request asked for"))
        if raw.get("fields") is not None:
            fields = _granted_fields(raw.get("fields"), record.fields, errors)
    else:
        for key in ("expires_at", "roles", "fields"):
            if raw.get(key) is not None:
                errors.append(FieldError(key, "not_for_denial", "applies only to an approval"))
    if errors:
        raise ValidationFailed(errors)
    assert decision is not None and rationale is not None
    return DecisionInput(decision, rationale,
                         expires_at if isinstance(expires_at, datetime) else None, roles,
                         fields)


def _granted_fields(value: Any, asked: AbstractSet[str],
                    errors: list[FieldError]) -> frozenset[str] | None:
    """A decision's `fields`: a non-empty list of fields the request asked for."""
    listed = ", ".join(sorted(asked))
    if not isinstance(value, list) or not value:
        errors.append(FieldError("fields", "required", f"must list one or more of {listed}"))
        return None
    chosen: set[str] = set()
    for index, item in enumerate(value):
        if isinstance(item, str) and item in asked:
            chosen.add(item)
        else:
            errors.append(FieldError(f"fields.{index}", "not_asked",
                                     f"may only name fields the request asked for: {listed}"))
    return frozenset(chosen)


def decide(record: DisclosureRecord, decision: DecisionInput, *, by: str,
           now: datetime) -> DisclosureRecord:
    """Approve or deny an open request (acknowledging it too if it was not)."""
    if record.state not in OPEN_STATES:
        raise DisclosureRefused(record.state, f"the request is already {record.state}")
    decided = replace(record, decided_at=now, decided_by=by,
                      acknowledged_at=record.acknowledged_at or now,
                      acknowledged_by=record.acknowledged_by or by)
    if decision.decision is Decision.DENIED:
        return replace(decided, state=DisclosureState.DENIED)
    return replace(decided, state=DisclosureState.APPROVED,
                   granted_roles=decision.roles or record.roles,
                   granted_fields=decision.fields or record.fields,
                   expires_at=decision.expires_at or now + DEFAULT_APPROVAL)


def withdraw(record: DisclosureRecord, *, by: str, now: datetime) -> DisclosureRecord:
    """End a request: its requester withdraws it, or staff revoke an approval."""
    if record.state not in OPEN_STATES and record.state is not DisclosureState.APPROVED:
        raise DisclosureRefused(record.state, f"the request is already {record.state}")
    return replace(record, state=DisclosureState.WITHDRAWN, withdrawn_at=now,
                   withdrawn_by=by)


def queue_order(records: Sequence[DisclosureRecord], now: datetime) -> list[DisclosureRecord]:
    """Staff's work queue: overdue acknowledgements first, then overdue decisions, then open
    requests by their next deadline, then closed ones, newest first."""
    def key(record: DisclosureRecord) -> tuple[int, float]:
        if record.ack_overdue(now):
            return 0, record.ack_due_at.timestamp()
        if record.decision_overdue(now):
            return 1, record.decision_due_at.timestamp()
        if record.state is DisclosureState.RECEIVED:
            return 2, record.ack_due_at.timestamp()
        if record.state is DisclosureState.ACKNOWLEDGED:
            return 2, record.decision_due_at.timestamp()
        return 3, -record.received_at.timestamp()
    return sorted(records, key=key)
