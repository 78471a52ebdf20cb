"""Who is acting, through which channel, from where: the inputs every flow and query receive."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from regshield.errors import NotFound, PermissionDenied

ActorKind = Literal["staff", "customer", "system", "anonymous"]
Channel = Literal["api", "cli", "console", "system"]


@dataclass(frozen=True)
class Actor:
    kind: ActorKind
    permissions: frozenset[str] = frozenset()
    user_id: int | None = None
    user_public_id: str | None = None
    role: str | None = None
    account_id: int | None = None
    account_public_id: str | None = None
    token_id: int | None = None
    second_factor_at: datetime | None = None
    # Whether this credential may make sensitive changes at all (see security/step_up.py).
    step_up_allowed: bool = False
    # For system actors: which component acts (`cli`, `outbox`, ...).
    component: str | None = None

    @property
    def label(self) -> str:
        """How the event log names this actor (an identifier, never an email address)."""
        if self.user_public_id:
            return f"user:{self.user_public_id}"
        if self.kind == "system":
            return f"system:{self.component or 'regshield'}"
        return "anonymous"

    @property
    def is_staff(self) -> bool:
        return self.kind in ("staff", "system")

    def can(self, resource: str, action: str, account_id: int | None = None) -> bool:
        """True if allowed on every account, or on `account_id` when it is the actor's own."""
        if self.kind == "system":
            return True
        if f"registrar:{resource}:{action}" in self.permissions:
            return True
        return (
            account_id is not None
            and account_id == self.account_id
            and f"account:{resource}:{action}" in self.permissions
        )

    def can_any(self, resource: str, action: str) -> bool:
        """True if the actor may act on this resource for at least some account."""
        return self.kind == "system" or any(
            f"{scope}:{resource}:{action}" in self.permissions for scope in ("registrar", "account")
        )

    def require(self, resource: str, action: str) -> None:
        """Refuse (403) an actor whose role never allows this action on this resource."""
        if not self.can_any(resource, action):
            raise PermissionDenied(f"your role does not allow {resource}:{action}")

    def require_object(self, resource: str, action: str, account_id: int | None) -> None:
        """Refuse access to one object. Another tenant's object is reported as not found."""
        self.require(resource, action)
        if not self.can(resource, action, account_id):
            raise NotFound(f"no such {resource.rstrip('s')}")

    def require_self(self, permission: str) -> None:
        if self.kind == "system":
            return
        if self.user_id is None or f"self:{permission}" not in self.permissions:
            raise PermissionDenied(f"your credential does not allow self:{permission}")


SYSTEM = Actor(kind="system", component="regshield")
ANONYMOUS = Actor(kind="anonymous")


def system_actor(component: str) -> Actor:
    return Actor(kind="system", component=component)


@dataclass(frozen=True)
class RequestContext:
    channel: Channel
    source_address: str | None = None
    request_id: str = field(default_factory=lambda: new_request_id())


# An X-Request-ID a caller may choose (else the request gets `new_request_id()`).
REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def new_request_id() -> str:
    return "req_" + secrets.token_hex(8)
