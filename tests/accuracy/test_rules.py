"""The accuracy program's pure rules: the 15-day clock, the reminders, what a link answers,
and the normalized data whose keyed hash finds an identical contact."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from regshield.rules.accuracy import (
    Verdict,
    deadline,
    fingerprint_input,
    link_expiry,
    overdue,
    plausible_token,
    reminder_due,
    verdict,
)
from regshield.rules.contacts import ContactData
from regshield.rules.statuses import Hold, HoldReason, client_statuses, place, release

START = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
JANE = ContactData(name="Jane Example", organization="Example GmbH",
                   street=("Invalidenstrasse 116",), city="Berlin", state=None,
                   postal_code="10115", country="DE", phone="+493012345678", fax=None,
                   email="jane@example.net")


def test_the_deadline_is_day_15_and_only_a_moment_later_is_overdue() -> None:
    assert deadline(START) == START + 15 * DAY
    assert not overdue(START, START + 15 * DAY)
    assert overdue(START, START + 15 * DAY + timedelta(seconds=1))
    assert link_expiry(START) == START + 15 * DAY


@pytest.mark.parametrize(("elapsed", "sent", "due"), [
    (6 * DAY, 0, None),
    (7 * DAY, 0, 1),
    (7 * DAY, 1, None),
    (14 * DAY, 1, 2),
    (14 * DAY, 0, 2),  # a missed reminder: only the latest goes out
    (14 * DAY, 2, None),
    (16 * DAY, 1, None),  # overdue: suspension, not reminders
])
def test_reminders_go_out_on_days_7_and_14(elapsed: timedelta, sent: int,
                                          due: int | None) -> None:
    assert reminder_due(START, sent, START + elapsed) == due


@pytest.mark.parametrize(("found", "used", "state", "at", "answer"), [
    (False, False, None, START, Verdict.UNKNOWN),
    (True, False, "pending", START + DAY, Verdict.VERIFIED),
    (True, True, "pending", START + DAY, Verdict.ALREADY_USED),
    (True, False, "verified", START + DAY, Verdict.ALREADY_USED),
    (True, False, "pending", START + 15 * DAY, Verdict.EXPIRED),
    (True, False, "superseded", START + DAY, Verdict.EXPIRED),
])
def test_a_link_works_once_and_until_it_expires(found: bool, used: bool, state: str | None,
                                               at: datetime, answer: Verdict) -> None:
    assert verdict(found=found, used=used, expires_at=link_expiry(START) if found else None,
                   state=state, now=at) is answer


def test_token_shape_is_checked_before_any_lookup() -> None:
    assert plausible_token("A" * 43)
    assert not plausible_token("short")
    assert not plausible_token("A" * 42 + "/")
    assert not plausible_token("A" * 65)


def test_identical_data_written_differently_reads_the_same() -> None:
    written_otherwise = replace(JANE, name="  jane   EXAMPLE", email="Jane@Example.NET",
                                organization="example gmbh", postal_code="10115 ")
    assert fingerprint_input(written_otherwise) == fingerprint_input(JANE)
    assert fingerprint_input(replace(JANE, phone="+493012345679")) != fingerprint_input(JANE)
    assert fingerprint_input(replace(JANE, street=("Other 1",))) != fingerprint_input(JANE)


def test_the_accuracy_hold_adds_client_hold_and_lifting_it_keeps_the_registrar_lock() -> None:
    lock = Hold.of(HoldReason.REGISTRAR_LOCK)
    suspension = Hold.of(HoldReason.ACCURACY_SUSPENSION, reference="contact:RS-AAAAAAAAAA")
    held = place({lock}, suspension)
    assert client_statuses(held) == {"clientHold", "clientTransferProhibited",
                                     "clientDeleteProhibited"}
    lifted = release(held, HoldReason.ACCURACY_SUSPENSION, "contact:RS-AAAAAAAAAA")
    assert client_statuses(lifted) == {"clientTransferProhibited", "clientDeleteProhibited"}
