"""The WHOIS Accuracy Program (RAA WAPS) as pure rules: the verification clock, what a
verification link answers, and the normalized form of contact data whose keyed hash tells an
identical, already verified contact apart from a new one.

A verification of a registrant starts after a registration, an inbound transfer or a change of
registrant, and again after a bounced notice or an inaccuracy complaint. Reminders go out on
days 7 and 14; 15 days after the start without an affirmative answer the registrant's domains
are suspended (clientHold and clientTransferProhibited, `HoldReason.ACCURACY_SUSPENSION`) until
the registrant verifies. The account holder's own data is only ever validated and verified by
hand: nothing here suspends for it.

No I/O, no clock: callers pass the times.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from regshield.rules.contacts import ContactData


@dataclass(frozen=True)
class AccuracyPolicy:
    """The numbers WAPS sets (RAA WHOIS Accuracy Program Specification, sections 1 and 4)."""

    # No affirmative answer within this many days: suspend (WAPS 4).
    verification_period: timedelta = timedelta(days=15)
    # How long one emailed link works; each reminder carries a fresh link.
    link_lifetime: timedelta = timedelta(days=15)
    # When reminders go out, counted from the start.
    reminders: tuple[timedelta, ...] = (timedelta(days=7), timedelta(days=14))


POLICY = AccuracyPolicy()
TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_-]{32,64}")


class Cause(StrEnum):
    """Why a verification started."""

    REGISTRATION = "registration"
    TRANSFER_IN = "transfer_in"
    REGISTRANT_CHANGE = "registrant_change"
    CONTACT_UPDATE = "contact_update"  # the registrant's own data was edited (WAPS 1f)
    COMPLAINT = "complaint"  # an inaccuracy complaint about a domain (WAPS 4)
    BOUNCE = "bounce"  # a WDRP/ERRP or other notice to the registrant bounced


# Re-verification ignores an earlier verification of identical data: the complaint or the
# bounce is the contrary evidence WAPS speaks of.
FORCED_CAUSES: frozenset[Cause] = frozenset({Cause.COMPLAINT, Cause.BOUNCE})


class State(StrEnum):
    """Where a verification stands."""

    PENDING = "pending"  # mail sent (or queued), no answer yet
    VERIFIED = "verified"  # the registrant followed a link
    EXEMPT = "exempt"  # identical data was verified before: no new verification
    SUPERSEDED = "superseded"  # a newer verification of the same contact replaced it


class Verdict(StrEnum):
    """What following a verification link did."""

    VERIFIED = "verified"
    ALREADY_USED = "already_used"
    EXPIRED = "expired"
    UNKNOWN = "unknown"


def deadline(started_at: datetime, policy: AccuracyPolicy = POLICY) -> datetime:
    """When the domains of an unverified registrant are suspended."""
    return started_at + policy.verification_period


def overdue(started_at: datetime, now: datetime, policy: AccuracyPolicy = POLICY) -> bool:
    """True once the verification period has run out (day 15 plus any moment)."""
    return now > deadline(started_at, policy)


def reminder_due(started_at: datetime, sent: int, now: datetime,
                 policy: AccuracyPolicy = POLICY) -> int | None:
    """The number of reminders that should have gone out by `now`, when more than `sent`;
    None when no reminder is due. A sweep that missed a reminder sends one, the latest:
    two reminders in one moment would say nothing more than one."""
    due = sum(1 for offset in policy.reminders if started_at + offset <= now)
    if due <= sent or overdue(started_at, now, policy):
        return None
    return due


def link_expiry(issued_at: datetime, policy: AccuracyPolicy = POLICY) -> datetime:
    return issued_at + policy.link_lifetime


def plausible_token(value: str) -> bool:
    """A verification token has the shape of 32 random bytes, URL-safe base64 (43 symbols);
    anything else is unknown without asking the store."""
    return TOKEN_PATTERN.fullmatch(value) is not None


def verdict(*, found: bool, used: bool, expires_at: datetime | None, state: str | None,
            now: datetime) -> Verdict:
    """What a link answers: unknown (no such token), already used (this token, or the
    verification it belongs to, was answered), expired (its time ran out, or a newer
    verification replaced its own), else verified."""
    if not found or expires_at is None or state is None:
        return Verdict.UNKNOWN
    if used or state in (State.VERIFIED, State.EXEMPT):
        return Verdict.ALREADY_USED
    if state == State.SUPERSEDED or now >= expires_at:
        return Verdict.EXPIRED
    return Verdict.VERIFIED


def fingerprint_input(data: ContactData) -> str:
    """Contact data in one canonical text, for a keyed hash: two contacts with the same data
    written differently (case, spacing, Unicode composition) give the same text. Only its
    keyed hash is ever stored."""

    def norm(value: str | None) -> str:
        if value is None:
            return ""
        return unicodedata.normalize("NFC", " ".join(value.split())).casefold()

    values = {
        "name": norm(data.name), "organization": norm(data.organization),
        "street": [norm(line) for line in data.street], "city": norm(data.city),
        "state": norm(data.state), "postal_code": norm(data.postal_code).replace(" ", ""),
        "country": data.country.upper(), "phone": data.phone, "fax": data.fax or "",
        "email": norm(data.email),
    }
    return json.dumps(values, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


FINGERPRINT_PURPOSE = "accuracy:contact"
