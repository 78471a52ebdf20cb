"""Dated policy: every number that ICANN, the law or our own security policy sets lives in a
versioned table with an effective date. Code asks for the version in force at a moment."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Protocol, TypeVar


class Dated(Protocol):
    @property
    def effective(self) -> date: ...


P = TypeVar("P", bound=Dated)


def in_force(versions: Sequence[P], moment: datetime) -> P:
    """The newest version whose effective date is not after `moment` (a UTC datetime)."""
    chosen = [v for v in versions if v.effective <= moment.date()]
    if not chosen:
        raise LookupError(f"no policy version in force on {moment.date()}")
    return max(chosen, key=lambda v: v.effective)
