"""Password hashing and the rules a new password must meet."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher

from regshield.security import passwords
from regshield.security.passwords import (
    MAX_PASSWORD_LENGTH,
    hash_password,
    needs_rehash,
    password_problems,
    verify_password,
)

GOOD = "a long unguessable passphrase 42"


@pytest.fixture(autouse=True)
def real_cost(monkeypatch: pytest.MonkeyPatch) -> None:
    """The hasher `serve` uses, not the quick one the other tests use (tests/conftest.py)."""
    real = PasswordHasher(time_cost=passwords.TIME_COST, memory_cost=passwords.MEMORY_COST_KIB,
                          parallelism=passwords.PARALLELISM)
    monkeypatch.setattr(passwords, "_hasher", real)
    monkeypatch.setattr(passwords, "_DUMMY_HASH", real.hash("regshield-timing-equalizer"))


def test_passwords_are_hashed_at_owasps_first_argon2id_setting() -> None:
    """19 MiB, 2 passes, 1 lane (OWASP Password Storage Cheat Sheet): a stored hash says so."""
    assert (passwords.TIME_COST, passwords.MEMORY_COST_KIB, passwords.PARALLELISM) == (
        2, 19_456, 1)
    assert hash_password(GOOD).startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert verify_password(passwords._DUMMY_HASH, "regshield-timing-equalizer")
    assert passwords._DUMMY_HASH.startswith("$argon2id$v=19$m=19456,t=2,p=1$")


def codes(problems: list) -> set[str]:  # type: ignore[type-arg]
    return {p.code for p in problems}


def test_password_is_stored_as_an_argon2id_hash_that_verifies() -> None:
    stored = hash_password(GOOD)
    assert stored.startswith("$argon2id$")
    assert GOOD not in stored
    assert verify_password(stored, GOOD)


def test_password_hashes_are_salted() -> None:
    assert hash_password(GOOD) != hash_password(GOOD)


def test_wrong_password_does_not_verify() -> None:
    assert not verify_password(hash_password(GOOD), GOOD + "!")


def test_missing_user_never_verifies_even_with_the_timing_equalizer_password() -> None:
    # Unknown users are checked against a built-in hash; its own password must not sign in.
    assert not verify_password(None, "regshield-timing-equalizer")
    assert not verify_password(None, GOOD)


def test_garbage_stored_hash_does_not_verify() -> None:
    assert not verify_password("not-a-hash", GOOD)


def test_overlong_password_is_refused_without_hashing() -> None:
    long = "x" * (MAX_PASSWORD_LENGTH + 1)
    assert not verify_password(hash_password(long), long)


def test_hash_made_with_weaker_parameters_is_rehashed_at_next_login() -> None:
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(GOOD)
    assert needs_rehash(weak)
    assert not needs_rehash(hash_password(GOOD))


def test_acceptable_password_has_no_problems() -> None:
    assert password_problems(GOOD, min_length=12, email="someone@example.net") == []


def test_short_password_is_refused_naming_the_minimum() -> None:
    problems = password_problems("Xq7!vB2#", min_length=12)
    assert codes(problems) == {"too_short"}
    assert "12" in problems[0].message
    assert problems[0].field == "password"


def test_common_password_is_refused_whatever_its_case() -> None:
    assert codes(password_problems("password123456", min_length=12)) == {"too_common"}
    assert codes(password_problems("PassWord123456", min_length=12)) == {"too_common"}


def test_password_equal_to_the_email_or_its_local_part_is_refused() -> None:
    email = "Grace.Hopper.Cobol@example.net"
    assert codes(password_problems(email.lower(), min_length=12, email=email)) == \
        {"matches_email"}
    assert codes(password_problems("grace.hopper.cobol", min_length=12, email=email)) == \
        {"matches_email"}


def test_every_reason_is_reported_at_once() -> None:
    problems = password_problems("password", min_length=12, email="password@example.net")
    assert codes(problems) == {"too_short", "too_common", "matches_email"}


def test_overlong_new_password_is_refused() -> None:
    problems = password_problems("y" * (MAX_PASSWORD_LENGTH + 1), min_length=12)
    assert codes(problems) == {"too_long"}


def test_problems_name_the_field_they_were_asked_about() -> None:
    problems = password_problems("short", min_length=12, field="new_password")
    assert {p.field for p in problems} == {"new_password"}
