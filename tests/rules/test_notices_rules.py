"""When WDRP reminders and ERRP notices fall due (rules/notices.py): windows around the expiry,
late notices after a missed sweep, cycles that a renewal restarts, anniversaries of 29
February."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest

from regshield.policy.notices import ERRP_2024, notice_policy
from regshield.rules.notices import (
    SHORTEST_YEAR,
    NoticeSubject,
    anniversaries_passed,
    anniversary,
    due_notices,
    expiry_range,
)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


DAY = timedelta(days=1)
# Registered long enough ago that ERRP windows never open before sponsorship, on an anniversary
# far from the expiries below (no WDRP interferes): 15 July.
LONG_AGO = at("2020-07-15T12:00:00")


def due(expires: str | None, now: str, *, since: datetime = LONG_AGO, active: bool = True,
        sent: tuple[tuple[str, str], ...] = ()) -> list[tuple[str, str, bool]]:
    subject = NoticeSubject(since, at(expires) if expires else None, active)
    moment = at(now)
    return [(str(n.kind), n.cycle, n.late)
            for n in due_notices(subject, moment, notice_policy(moment), sent)
            if str(n.kind) != "wdrp"]


# Expiry 1 March 2028: the month before holds 29 February, so 35 days before is 26 January.
LEAP = "2028-03-01T00:00:00"
# Expiry 1 March 2027: 35 days before is 25 January.
COMMON = "2027-03-01T00:00:00"


@pytest.mark.parametrize(("expires", "now", "expected"), [
    (LEAP, "2028-01-25T23:59:59", []),
    (LEAP, "2028-01-26T00:00:00", [("errp-30", "2028-03-01", False)]),
    (COMMON, "2027-01-25T00:00:00", [("errp-30", "2027-03-01", False)]),
    (COMMON, "2027-01-24T23:59:59", []),
    (LEAP, "2028-02-04T00:00:00", [("errp-30", "2028-03-01", False)]),  # 26 days before
    # A sweep that missed the window sends the month notice late, until the week one opens.
    (LEAP, "2028-02-04T00:00:01", [("errp-30", "2028-03-01", True)]),
    (LEAP, "2028-02-19T23:59:59", [("errp-30", "2028-03-01", True)]),
    (LEAP, "2028-02-20T00:00:00", [("errp-7", "2028-03-01", False)]),  # 10 days before
    (LEAP, "2028-02-26T00:00:00", [("errp-7", "2028-03-01", False)]),  # 4 days before
    (LEAP, "2028-02-29T12:00:00", [("errp-7", "2028-03-01", True)]),
    (LEAP, "2028-03-01T00:00:00", [("errp-post", "2028-03-01", False)]),
    (LEAP, "2028-03-05T23:59:59", [("errp-post", "2028-03-01", False)]),
    # The post-expiry notice is never sent after its five days.
    (LEAP, "2028-03-06T00:00:00", []),
    (LEAP, "2028-04-01T00:00:00", []),
    (None, "2028-02-26T00:00:00", []),
])
def test_expiry_notices_fall_in_their_windows(expires: str | None, now: str,
                                              expected: list[tuple[str, str, bool]]) -> None:
    assert due(expires, now) == expected


def test_a_notice_already_sent_for_this_expiry_is_not_due_again() -> None:
    sent = (("errp-30", "2028-03-01"),)
    assert due(LEAP, "2028-01-30T00:00:00", sent=sent) == []
    assert due(LEAP, "2028-02-22T00:00:00", sent=sent) == [("errp-7", "2028-03-01", False)]


def test_a_renewal_between_the_month_and_week_notices_starts_a_new_cycle() -> None:
    sent = (("errp-30", "2028-03-01"),)
    renewed = "2029-03-01T00:00:00"
    # Renewed 25 days before the old expiry: nothing is due for the old date any more.
    assert due(renewed, "2028-02-22T00:00:00", sent=sent) == []
    assert due(renewed, "2028-03-02T00:00:00", sent=sent) == []
    # A year on, the month notice for the new expiry is due although the old one was sent.
    assert due(renewed, "2029-01-30T00:00:00", sent=sent) == [("errp-30", "2029-03-01", False)]


def test_a_renewal_after_expiry_ends_the_post_expiry_notice() -> None:
    assert due(LEAP, "2028-03-02T00:00:00") == [("errp-post", "2028-03-01", False)]
    assert due("2029-03-01T00:00:00", "2028-03-02T00:00:00") == []


def test_a_window_opened_before_sponsorship_was_the_previous_registrars() -> None:
    transferred_in = at("2028-02-10T00:00:00")  # 20 days before expiry
    assert due(LEAP, "2028-02-12T00:00:00", since=transferred_in) == []
    assert due(LEAP, "2028-02-21T00:00:00", since=transferred_in) == [
        ("errp-7", "2028-03-01", False)]


def test_an_inactive_domain_gets_no_notice() -> None:
    assert due(LEAP, "2028-01-30T00:00:00", active=False) == []
    subject = NoticeSubject(at("2024-01-01T00:00:00"), None, active=False)
    assert due_notices(subject, at("2026-01-02T00:00:00"), ERRP_2024) == []


def reminders(since: str, now: str, sent: tuple[tuple[str, str], ...] = ()
              ) -> list[tuple[str, bool]]:
    moment = at(now)
    return [(n.cycle, n.late) for n in due_notices(
        NoticeSubject(at(since), None), moment, ERRP_2024, sent) if str(n.kind) == "wdrp"]


@pytest.mark.parametrize(("since", "now", "expected"), [
    ("2025-06-01T08:00:00", "2026-06-01T07:59:59", []),  # not a year yet
    ("2025-06-01T08:00:00", "2026-06-01T08:00:00", [("2026-06-01", False)]),
    ("2025-06-01T08:00:00", "2026-07-01T08:00:00", [("2026-06-01", False)]),  # 30 days on
    ("2025-06-01T08:00:00", "2026-09-01T00:00:00", [("2026-06-01", True)]),  # late, still due
    ("2025-06-01T08:00:00", "2027-06-01T07:59:59", [("2026-06-01", True)]),
    ("2025-06-01T08:00:00", "2027-06-01T08:00:00", [("2027-06-01", False)]),
    # Registered on 29 February: the anniversary is 28 February in common years.
    ("2024-02-29T10:00:00", "2025-02-28T09:59:59", []),
    ("2024-02-29T10:00:00", "2025-02-28T10:00:00", [("2025-02-28", False)]),
    ("2024-02-29T10:00:00", "2027-03-10T00:00:00", [("2027-02-28", False)]),
    ("2024-02-29T10:00:00", "2028-02-28T12:00:00", [("2027-02-28", True)]),
    ("2024-02-29T10:00:00", "2028-02-29T10:00:00", [("2028-02-29", False)]),
])
def test_the_registration_data_reminder_follows_each_anniversary(
        since: str, now: str, expected: list[tuple[str, bool]]) -> None:
    assert reminders(since, now) == expected


def test_one_reminder_per_anniversary_cycle() -> None:
    assert reminders("2025-06-01T08:00:00", "2026-08-01T00:00:00",
                     sent=(("wdrp", "2026-06-01"),)) == []
    assert reminders("2025-06-01T08:00:00", "2027-06-02T00:00:00",
                     sent=(("wdrp", "2026-06-01"),)) == [("2027-06-01", False)]


def test_no_cycle_is_longer_than_a_year_or_shorter_than_the_shortest_year() -> None:
    start = at("2024-02-29T10:00:00")
    moments = [anniversary(start, years) for years in range(0, 13)]
    gaps = {later - earlier for earlier, later in pairwise(moments)}
    assert gaps == {SHORTEST_YEAR, SHORTEST_YEAR + DAY}
    assert [anniversaries_passed(start, m) for m in moments] == list(range(13))


def test_a_sweep_every_six_hours_sends_each_notice_once_over_two_years() -> None:
    since, expires = at("2026-11-27T09:30:00"), at("2028-11-27T09:30:00")
    sent: dict[tuple[str, str], datetime] = {}
    moment = since
    while moment < expires + 40 * DAY:
        for notice in due_notices(NoticeSubject(since, expires), moment, ERRP_2024, sent):
            sent[(str(notice.kind), notice.cycle)] = moment
        moment += timedelta(hours=6)
    assert sorted(sent) == [("errp-30", "2028-11-27"), ("errp-7", "2028-11-27"),
                            ("errp-post", "2028-11-27"), ("wdrp", "2027-11-27"),
                            ("wdrp", "2028-11-27")]
    assert expires - sent[("errp-30", "2028-11-27")] <= 35 * DAY
    assert expires - sent[("errp-7", "2028-11-27")] <= 10 * DAY
    assert sent[("errp-post", "2028-11-27")] - expires <= 5 * DAY


@pytest.mark.parametrize("hours", range(-40 * 24, 10 * 24, 7))
def test_the_store_filter_range_holds_every_due_expiry(hours: int) -> None:
    """What the sweep's SQL range selects is exactly what the rule can find due."""
    expires = at("2028-03-01T00:00:00")
    now = expires + timedelta(hours=hours)
    kinds = {str(n.kind) for n in due_notices(NoticeSubject(LONG_AGO, expires), now, ERRP_2024)}
    in_range = {window.kind for window in ERRP_2024.expiry_notices
                if expiry_range(window, now)[0] < expires <= expiry_range(window, now)[1]}
    assert kinds - {"wdrp"} == in_range
