"""Password hashing (argon2id) and the rules a new password must meet."""

from __future__ import annotations

import gzip
from functools import lru_cache
from importlib import resources

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from regshield.errors import FieldError

MAX_PASSWORD_LENGTH = 1024  # argon2 hashes anything, but unbounded input is a cheap DoS

# argon2id at OWASP's first recommended setting (19 MiB, 2 passes, 1 lane): about 60 ms on one
# core, so a burst of logins cannot exhaust a small server. Stored hashes carry their parameters;
# raising them here rehashes each password at its next successful login.
TIME_COST, MEMORY_COST_KIB, PARALLELISM = 2, 19_456, 1
_hasher = PasswordHasher(time_cost=TIME_COST, memory_cost=MEMORY_COST_KIB,
                         parallelism=PARALLELISM)
# Verified against when the user does not exist, so that both paths cost the same time.
_DUMMY_HASH = _hasher.hash("regshield-timing-equalizer")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Constant work whether or not a user (and so a hash) exists."""
    if len(password) > MAX_PASSWORD_LENGTH:
        return False
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    data = resources.files("regshield.security").joinpath("data/common-passwords.txt.gz")
    with data.open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8") as lines:
        return frozenset(line.strip().lower() for line in lines if line.strip())


def password_problems(
    password: str, *, min_length: int, email: str | None = None, field: str = "password"
) -> list[FieldError]:
    """Every reason a new password is refused (empty when it is acceptable)."""
    problems: list[FieldError] = []
    if len(password) < min_length:
        problems.append(FieldError(field, "too_short",
                                   f"must be at least {min_length} characters long"))
    if len(password) > MAX_PASSWORD_LENGTH:
        problems.append(FieldError(field, "too_long",
                                   f"must be at most {MAX_PASSWORD_LENGTH} characters long"))
    lowered = password.lower()
    if lowered in common_passwords():
        problems.append(FieldError(field, "too_common", "is in a list of common passwords"))
    if email and lowered in {email.lower(), email.split("@", 1)[0].lower()}:
        problems.append(FieldError(field, "matches_email", "must not be the email address"))
    return problems
