"""The numbers of the registrant notices: the WHOIS Data Reminder Policy (WDRP) and the Expired
Registration Recovery Policy (ERRP), refs/icann-obligations.md rows 19 and 20.

- WDRP: at least annually, show the registrant its current data and remind it that false data
  can lead to cancellation;
- ERRP (as updated on 21 Feb 2024 for the Registration Data Policy): a notice about one month
  (26 to 35 days) and one about one week (4 to 10 days) before expiry, and one within five days
  after expiry when the name was neither renewed nor deleted.

Offsets count from the exact moment of expiry (or of the registration anniversary) on the UTC
timeline, so leap days and month lengths never move a window.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from regshield.policy import in_force


@dataclass(frozen=True)
class ExpiryNoticeWindow:
    """One ERRP notice, as offsets from the expiry (negative: before it). The policy's window
    is [opens, closes]; the notice may still go out late until `stops` (exclusive)."""

    kind: str
    opens: timedelta
    closes: timedelta
    stops: timedelta


@dataclass(frozen=True)
class NoticePolicy:
    effective: date
    expiry_notices: tuple[ExpiryNoticeWindow, ...]
    # WDRP: a reminder on each anniversary of the registration; `reminder_window` is how long
    # after the anniversary it counts as on time (it may go out later within the cycle year).
    reminder_window: timedelta


ERRP_2024 = NoticePolicy(
    effective=date(2024, 2, 21),
    expiry_notices=(
        # A pre-expiry notice missed by the sweep (an outage) still goes out late, until the
        # next notice's window opens: a registrant told late is better off than one not told.
        ExpiryNoticeWindow("errp-30", -timedelta(days=35), -timedelta(days=26),
                           -timedelta(days=10)),
        ExpiryNoticeWindow("errp-7", -timedelta(days=10), -timedelta(days=4), timedelta(0)),
        # After expiry the policy's five days are the limit: later, the name is on its way to
        # deletion and other notices (the registrar's deletion process) take over.
        ExpiryNoticeWindow("errp-post", timedelta(0), timedelta(days=5), timedelta(days=5)),
    ),
    reminder_window=timedelta(days=30),
)

VERSIONS: tuple[NoticePolicy, ...] = (ERRP_2024,)


def notice_policy(moment: datetime) -> NoticePolicy:
    """The notice policy in force at `moment` (timezone-aware)."""
    return in_force(VERSIONS, moment)
