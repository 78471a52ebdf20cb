"""TOTP second factor (RFC 6238) with replay protection, and single-use recovery codes."""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import Enum

import pyotp

STEP_SECONDS = 30
DIGITS = 6
# Accept the previous and next step too: phones drift and people type slowly.
ALLOWED_DRIFT_STEPS = 1
RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i look-alikes
RECOVERY_GROUPS = 4
RECOVERY_GROUP_LENGTH = 4  # 16 symbols of a 31-letter alphabet: about 79 bits


class TotpOutcome(Enum):
    ACCEPTED = "accepted"
    INVALID = "invalid"
    REPLAYED = "replayed"


@dataclass(frozen=True)
class TotpCheck:
    outcome: TotpOutcome
    counter: int | None = None


def new_secret() -> str:
    return pyotp.random_base32(length=32)


def provisioning_uri(secret: str, account_label: str, issuer: str) -> str:
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).provisioning_uri(
        name=account_label, issuer_name=issuer
    )


def code_at(secret: str, moment: datetime) -> str:
    """The code an authenticator app shows at `moment` (used by tests and enrollment checks)."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).at(moment)


def check_code(secret: str, code: str, now: datetime, last_counter: int | None) -> TotpCheck:
    """Accept each code once: a code whose time step is not after the last accepted is a replay."""
    code = code.strip().replace(" ", "")
    # isdigit() also admits non-ASCII digits, which compare_digest cannot compare.
    if len(code) != DIGITS or not (code.isascii() and code.isdigit()):
        return TotpCheck(TotpOutcome.INVALID)
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS)
    current = int(now.timestamp()) // STEP_SECONDS
    for counter in range(current - ALLOWED_DRIFT_STEPS, current + ALLOWED_DRIFT_STEPS + 1):
        if hmac.compare_digest(totp.generate_otp(counter), code):
            if last_counter is not None and counter <= last_counter:
                return TotpCheck(TotpOutcome.REPLAYED, counter)
            return TotpCheck(TotpOutcome.ACCEPTED, counter)
    return TotpCheck(TotpOutcome.INVALID)


def new_recovery_code() -> str:
    groups = (
        "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(RECOVERY_GROUP_LENGTH))
        for _ in range(RECOVERY_GROUPS)
    )
    return "-".join(groups)


def normalize_recovery_code(code: str) -> str:
    return "".join(ch for ch in code.lower() if ch in RECOVERY_ALPHABET)


def looks_like_recovery_code(code: str) -> bool:
    return len(normalize_recovery_code(code)) == RECOVERY_GROUPS * RECOVERY_GROUP_LENGTH
