"""Dated policy: the version in force at a moment is the newest that has taken effect."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

import pytest

from regshield.policy import in_force
from regshield.policy.security import security_policy


@dataclass(frozen=True)
class Version:
    effective: date
    limit: int


VERSIONS = (Version(date(2025, 8, 21), 60), Version(date(2027, 2, 1), 30))


def test_the_version_in_force_is_the_newest_that_has_taken_effect() -> None:
    assert in_force(VERSIONS, datetime(2026, 11, 27, tzinfo=UTC)).limit == 60
    assert in_force(VERSIONS, datetime(2027, 2, 1, tzinfo=UTC)).limit == 30


def test_a_moment_before_every_version_has_no_policy() -> None:
    with pytest.raises(LookupError, match="2020-01-01"):
        in_force(VERSIONS, datetime(2020, 1, 1, tzinfo=UTC))


def test_the_security_policy_in_force_today_throttles_and_limits_credentials() -> None:
    policy = security_policy(datetime(2026, 11, 27, tzinfo=UTC))
    assert policy.password_min_length >= 12
    assert policy.login_failures_per_user < policy.login_failures_per_address
    assert policy.api_token_default_lifetime <= policy.api_token_max_lifetime
