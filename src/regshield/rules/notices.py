"""Which registrant notices a domain is due at a moment: the annual registration data reminder
(WDRP) and the expiry notices (ERRP). Pure: the caller passes the time, the policy in force and
the notices already sent; the numbers are in policy/notices.py.

Every notice belongs to a cycle and is sent once per cycle:
- an ERRP notice is keyed by the date of the expiry it is about. A renewal moves the expiry,
  which starts a new cycle: a renewal between the month and the week notices means no week
  notice for the old date, and the next notices count towards the new one;
- a WDRP reminder is keyed by the anniversary of the registration it follows (cycle n starts on
  the n-th anniversary; a registration of 29 February has its anniversary on 28 February in
  common years, so no cycle is longer than a year).

When a notice goes out:
- on time, within its policy window;
- late, after a sweep missed its window (an outage): a pre-expiry notice until the next one's
  window opens (the registrant is better told late than not, and the later notice supersedes
  it); a WDRP reminder until the next anniversary (the duty is one reminder a year); the
  post-expiry notice never after its five days;
- never when its window opened before the registrar sponsored the domain (a transfer in shortly
  before expiry): that notice was the previous registrar's to send;
- only for an active domain: a deleted one, or one pending deletion, gets none.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from regshield.policy.notices import ExpiryNoticeWindow, NoticePolicy

# The shortest WDRP cycle: from 28 February to 28 February in common years.
SHORTEST_YEAR = timedelta(days=365)


class NoticeKind(StrEnum):
    WDRP = "wdrp"
    ERRP_MONTH = "errp-30"
    ERRP_WEEK = "errp-7"
    ERRP_EXPIRED = "errp-post"


@dataclass(frozen=True)
class NoticeSubject:
    """A domain as the notices see it."""

    sponsored_since: datetime
    expires_at: datetime | None
    active: bool = True


@dataclass(frozen=True)
class DueNotice:
    """A notice to send now. `about` is the expiry or the anniversary it concerns; the policy
    window is [opens, closes]; `late` when it goes out after that."""

    kind: NoticeKind
    cycle: str
    about: datetime
    opens: datetime
    closes: datetime
    late: bool


def anniversary(start: datetime, years: int) -> datetime:
    """`start` moved on by whole calendar years; 29 February falls on 28 February in common
    years."""
    try:
        return start.replace(year=start.year + years)
    except ValueError:
        return start.replace(year=start.year + years, day=28)


def anniversaries_passed(start: datetime, now: datetime) -> int:
    """How many anniversaries of `start` are at or before `now` (0 in the first year)."""
    years = now.year - start.year
    while years > 0 and anniversary(start, years) > now:
        years -= 1
    return max(years, 0)


def expiry_cycle(expires_at: datetime) -> str:
    return expires_at.date().isoformat()


def expiry_range(window: ExpiryNoticeWindow, now: datetime) -> tuple[datetime, datetime]:
    """The expiries (after, up to and including) for which `window`'s notice can be due at
    `now`: what a store query filters on before the rule decides."""
    return now - window.stops, now - window.opens


def due_notices(subject: NoticeSubject, now: datetime, policy: NoticePolicy,
                sent: Collection[tuple[str, str]] = ()) -> list[DueNotice]:
    """The notices `subject` is due at `now` that are not in `sent` ((kind, cycle) pairs)."""
    if not subject.active:
        return []
    due = [_reminder(subject, now, policy)]
    if subject.expires_at is not None:
        due += [_expiry_notice(subject, subject.expires_at, window, now)
                for window in policy.expiry_notices]
    return [n for n in due if n is not None and (str(n.kind), n.cycle) not in sent]


def _reminder(subject: NoticeSubject, now: datetime, policy: NoticePolicy) -> DueNotice | None:
    years = anniversaries_passed(subject.sponsored_since, now)
    if years < 1:
        return None
    opens = anniversary(subject.sponsored_since, years)
    closes = opens + policy.reminder_window
    return DueNotice(NoticeKind.WDRP, opens.date().isoformat(), opens, opens, closes,
                     late=now > closes)


def _expiry_notice(subject: NoticeSubject, expires_at: datetime, window: ExpiryNoticeWindow,
                   now: datetime) -> DueNotice | None:
    opens, closes, stops = (expires_at + window.opens, expires_at + window.closes,
                            expires_at + window.stops)
    if not opens <= now < stops or opens < subject.sponsored_since:
        return None
    return DueNotice(NoticeKind(window.kind), expiry_cycle(expires_at), expires_at, opens,
                     closes, late=now > closes)
