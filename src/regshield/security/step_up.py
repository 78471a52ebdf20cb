"""Step-up authentication: the rule for sensitive changes.

Changing nameservers, DS records or the registrant, revealing or generating a transfer code,
and removing any lock need a second factor proved in the last `step_up_window` minutes (the
security policy's, or `security.step_up_minutes` of the config), even with a valid session or
token: a stolen password or token alone must not move a domain.

Console sessions and login tokens (from a login with a one-time code) may step up. An API
token may only when it was created with the explicit scope `self:step_up:use`; `*` does not
include it, so an automation token made for reading or renewing can never be used to move
a domain, whatever else it holds. The second factor is proved by an `X-OTP` header on the
request (see flows/auth.py `StepUp`) or by a fresh login with a one-time code.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from regshield.errors import StepUpRequired
from regshield.flows.context import Actor

STEP_UP_SCOPE = "self:step_up:use"


def may_step_up(token_kind: str | None, scopes: Sequence[str]) -> bool:
    """Whether a credential may make sensitive changes (given a fresh second factor).
    `token_kind` is None for a console session."""
    return token_kind in (None, "login") or STEP_UP_SCOPE in scopes


def require_step_up(actor: Actor, now: datetime, window: timedelta, action: str) -> None:
    """Refuse (403 step-up-required) unless the actor proved a second factor within `window`
    with a credential that may step up. System actors (the outbox, the CLI) pass."""
    if actor.kind == "system":
        return
    if not actor.step_up_allowed:
        raise StepUpRequired(f"{action} needs an API token created with the scope "
                             f"{STEP_UP_SCOPE}, or a login with a one-time code")
    if actor.second_factor_at is None or actor.second_factor_at + window < now:
        minutes = int(window.total_seconds() // 60)
        raise StepUpRequired(f"{action} needs a one-time code from the last {minutes} "
                             "minutes: send it as the X-OTP header")
