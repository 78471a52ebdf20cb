"""Account security policy: passwords, login throttling, credential lifetimes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from regshield.policy import in_force


@dataclass(frozen=True)
class SecurityPolicy:
    effective: date
    password_min_length: int
    # Failed logins counted per source address, per user and source, and per user inside a
    # sliding window. A source at its limit is blocked (429) until the block ends; a user at
    # the limit blocks only the sources that failed for them, never the right password from a
    # clean source (flows/auth.py `_block_end`).
    login_failures_per_user: int
    login_failures_per_address: int
    login_window: timedelta
    login_block: timedelta
    login_token_lifetime: timedelta
    api_token_default_lifetime: timedelta
    api_token_max_lifetime: timedelta
    console_session_idle: timedelta
    console_session_absolute: timedelta
    recovery_code_count: int
    # How long the emailed link of an invitation to become a user of an account works.
    invitation_lifetime: timedelta
    # Sensitive changes (nameservers, DS, registrant, transfer codes, unlocking) need a second
    # factor proved this recently, whatever the credential.
    step_up_window: timedelta


VERSIONS: tuple[SecurityPolicy, ...] = (
    SecurityPolicy(
        effective=date(2026, 1, 1),
        password_min_length=12,  # NIST SP 800-63B-4 asks for 15 without MFA, 8 with it
        login_failures_per_user=5,
        login_failures_per_address=20,
        login_window=timedelta(minutes=15),
        login_block=timedelta(minutes=15),
        login_token_lifetime=timedelta(hours=12),
        api_token_default_lifetime=timedelta(days=90),
        api_token_max_lifetime=timedelta(days=366),
        console_session_idle=timedelta(minutes=30),
        console_session_absolute=timedelta(hours=12),
        recovery_code_count=10,
        invitation_lifetime=timedelta(days=7),
        step_up_window=timedelta(minutes=5),
    ),
)


def security_policy(moment: datetime) -> SecurityPolicy:
    return in_force(VERSIONS, moment)
