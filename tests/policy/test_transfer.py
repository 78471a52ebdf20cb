"""Transfer Policy versions (policy/transfer.py): the 2016 policy as updated is in force; the
TPR rules apply only from an effective date an installation configures (refs rows 16-18)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from regshield.errors import ConfigurationError
from regshield.policy import in_force
from regshield.policy.transfer import (
    POLICY_2016,
    TPR_EFFECTIVE,
    VERSIONS,
    TransferRules,
    change_of_registrant_lock_end,
    transfer_policy,
    transfer_restriction_end,
    versions,
)

TODAY = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
TPR_DAY = date(2027, 6, 1)


def test_the_2016_policy_as_updated_for_the_rdp_is_in_force_today() -> None:
    policy = transfer_policy(TODAY, None)
    assert policy.rules is TransferRules.POLICY_2016
    assert policy.effective == date(2025, 8, 21)


def test_there_is_no_transfer_policy_before_the_rdp_update_took_effect() -> None:
    with pytest.raises(LookupError):
        transfer_policy(datetime(2025, 8, 20, 23, 59, tzinfo=UTC), None)


def test_tpr_rules_are_not_in_force_until_an_effective_date_is_configured() -> None:
    assert TPR_EFFECTIVE is None
    assert all(v.rules is TransferRules.POLICY_2016 for v in VERSIONS)
    far_future = datetime(9999, 12, 31, tzinfo=UTC)
    assert in_force(VERSIONS, far_future).rules is TransferRules.POLICY_2016
    assert transfer_policy(far_future, TPR_EFFECTIVE).rules is TransferRules.POLICY_2016


def test_once_configured_the_tpr_rules_apply_from_their_effective_date() -> None:
    eve = datetime(2027, 5, 31, 23, 59, 59, tzinfo=UTC)
    day = datetime(2027, 6, 1, tzinfo=UTC)
    assert transfer_policy(eve, TPR_DAY).rules is TransferRules.POLICY_2016
    policy = transfer_policy(day, TPR_DAY)
    assert policy.rules is TransferRules.TPR
    assert policy.effective == TPR_DAY


def test_the_effective_date_is_read_in_utc() -> None:
    # 1 June 2027 00:30 in UTC+2 is still 31 May in UTC.
    east = datetime(2027, 6, 1, 0, 30, tzinfo=timezone(timedelta(hours=2)))
    assert transfer_policy(east, TPR_DAY).rules is TransferRules.POLICY_2016


def test_a_tpr_date_that_does_not_follow_the_2016_update_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="2025-08-21"):
        versions(date(2025, 8, 21))


def test_a_naive_moment_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        transfer_policy(datetime(2026, 11, 27), None)


def test_the_2016_policy_numbers() -> None:
    policy = POLICY_2016
    assert policy.transfer_code_delivery == timedelta(days=5)
    assert policy.registry_auto_approve == timedelta(days=5)
    assert policy.gaining_foa_validity == timedelta(days=60)
    assert policy.losing_foa
    assert policy.after_registration_restriction == timedelta(days=60)
    assert policy.after_transfer_restriction == timedelta(days=60)
    assert not policy.restriction_mandatory  # the registrar may deny
    assert policy.change_of_registrant_processing == timedelta(days=1)
    assert policy.change_of_registrant_lock == timedelta(days=60)
    assert policy.change_of_registrant_lock_opt_out
    assert not policy.transfer_code_on_request_only


def test_the_tpr_numbers() -> None:
    policy = transfer_policy(datetime(2027, 6, 1, tzinfo=UTC), TPR_DAY)
    assert policy.transfer_code_on_request_only
    assert policy.transfer_code_ttl == timedelta(hours=336)
    assert policy.transfer_code_single_use
    assert policy.gaining_foa_validity is None
    assert not policy.losing_foa
    assert policy.transfer_confirmation == timedelta(hours=120)
    assert policy.after_registration_restriction == timedelta(days=30)
    assert policy.after_transfer_restriction == timedelta(days=30)
    assert policy.restriction_mandatory  # the registrar must restrict
    assert policy.change_of_registrant_lock is None
    assert policy.change_of_registrant_notice
    assert policy.transfer_code_issued_notice == timedelta(minutes=10)
    assert policy.transfer_completed_notice == timedelta(hours=24)


@pytest.mark.parametrize("tpr", [None, TPR_DAY])
def test_transfer_codes_live_14_days_and_work_once_under_either_version(
        tpr: date | None) -> None:
    policy = transfer_policy(datetime(2027, 7, 1, tzinfo=UTC), tpr)
    assert policy.transfer_code_ttl == timedelta(days=14)
    assert policy.transfer_code_single_use


def test_a_new_registration_may_be_refused_a_transfer_for_60_days_under_the_2016_policy() -> None:
    created = datetime(2026, 1, 10, 9, 30, tzinfo=UTC)
    end = transfer_restriction_end(POLICY_2016, created_at=created)
    assert end == datetime(2026, 3, 11, 9, 30, tzinfo=UTC)


def test_a_new_registration_must_be_restricted_for_30_days_under_tpr() -> None:
    policy = transfer_policy(datetime(2027, 6, 1, tzinfo=UTC), TPR_DAY)
    created = datetime(2027, 6, 2, tzinfo=UTC)
    assert transfer_restriction_end(policy, created_at=created) == datetime(2027, 7, 2,
                                                                            tzinfo=UTC)


def test_the_later_of_creation_and_last_transfer_ends_the_restriction() -> None:
    created = datetime(2026, 1, 1, tzinfo=UTC)
    transferred = datetime(2026, 5, 1, tzinfo=UTC)
    end = transfer_restriction_end(POLICY_2016, created_at=created, transferred_at=transferred)
    assert end == transferred + timedelta(days=60)
    old_transfer = datetime(2025, 12, 1, tzinfo=UTC)
    end = transfer_restriction_end(POLICY_2016, created_at=created, transferred_at=old_transfer)
    assert end == created + timedelta(days=60)


def test_a_change_of_registrant_locks_transfers_for_60_days_without_an_opt_out() -> None:
    changed = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
    end = change_of_registrant_lock_end(POLICY_2016, changed_at=changed, opted_out=False)
    assert end == datetime(2027, 1, 26, 8, 0, tzinfo=UTC)


def test_a_prior_registrant_who_opted_out_gets_no_change_of_registrant_lock() -> None:
    changed = datetime(2026, 11, 27, tzinfo=UTC)
    assert change_of_registrant_lock_end(POLICY_2016, changed_at=changed, opted_out=True) is None


def test_an_opt_out_does_not_lift_a_lock_the_policy_allows_no_opt_out_from() -> None:
    strict = replace(POLICY_2016, change_of_registrant_lock_opt_out=False)
    changed = datetime(2026, 11, 27, tzinfo=UTC)
    assert change_of_registrant_lock_end(strict, changed_at=changed, opted_out=True) == (
        changed + timedelta(days=60))


def test_tpr_replaces_the_change_of_registrant_lock_with_a_notice() -> None:
    policy = transfer_policy(datetime(2027, 6, 1, tzinfo=UTC), TPR_DAY)
    changed = datetime(2027, 6, 2, tzinfo=UTC)
    assert change_of_registrant_lock_end(policy, changed_at=changed, opted_out=False) is None
    assert policy.change_of_registrant_notice
