"""Roles and permissions. A permission reads `scope:resource:action`:

- `registrar:*` permissions act on every account (staff);
- `account:*` permissions act on the holder's own account only (customers);
- `self:*` permissions act on the holder's own user (every signed-in user).

Flows check them (see flows/authorization.py); routes only authenticate.
"""

from __future__ import annotations

from typing import Final

STAFF_ROLES: Final = ("admin", "operator", "support", "compliance", "auditor")
CUSTOMER_ROLES: Final = ("owner", "member")

RESOURCES: Final = ("registrar", "accounts", "users", "tokens", "contacts", "events", "domains",
                    "registry_lock", "zones", "disclosure", "accuracy")
SELF: Final = frozenset({"self:mfa:write", "self:tokens:write", "self:profile:read"})
# Filing and withdrawing one's own disclosure request (RDP §10). Customers only: staff read
# registration data through their role, and would otherwise decide their own requests.
REQUESTER: Final = frozenset({"self:disclosure:write"})


def _registrar(*pairs: str) -> frozenset[str]:
    return frozenset(f"registrar:{pair}" for pair in pairs)


def _every(action: str) -> list[str]:
    return [f"{resource}:{action}" for resource in RESOURCES]


ROLE_PERMISSIONS: Final[dict[str, frozenset[str]]] = {
    "admin": _registrar(*_every("read"), *_every("write"), "disclosure:decide") | SELF,
    "operator": _registrar(
        "registrar:read", "accounts:read", "accounts:write", "users:read", "users:write",
        "contacts:read", "contacts:write", "events:read", "domains:read", "domains:write",
        "zones:read", "zones:write",
    ) | SELF,
    # accuracy:write: record an inaccuracy complaint or a bounce, which starts a verification
    # that suspends the domain after 15 days (WAPS 4): a change, never a read.
    "support": _registrar("registrar:read", "accounts:read", "users:read", "contacts:read",
                          "domains:read", "zones:read", "disclosure:read",
                          "disclosure:write", "accuracy:read", "accuracy:write") | SELF,
    "compliance": _registrar(
        "registrar:read", "accounts:read", "contacts:read", "events:read", "domains:read",
        "zones:read", "disclosure:read", "disclosure:write", "disclosure:decide",
        "accuracy:read", "accuracy:write",
    ) | SELF,
    "auditor": _registrar(*_every("read")) | SELF,
    "owner": frozenset({
        "account:contacts:read", "account:contacts:write", "account:users:read",
        "account:users:write", "account:events:read", "account:domains:read",
        "account:domains:write", "account:registry_lock:write", "account:zones:read",
        "account:zones:write",
    }) | SELF | REQUESTER,
    "member": frozenset({"account:contacts:read", "account:contacts:write",
                         "account:domains:read", "account:domains:write",
                         "account:zones:read", "account:zones:write"}) | SELF | REQUESTER,
}


def permissions_for(role: str, token_scopes: list[str] | None = None) -> frozenset[str]:
    """The role's permissions, narrowed to a token's scopes (a scope never widens a role)."""
    granted = ROLE_PERMISSIONS.get(role, frozenset())
    # An empty scope list is the narrowest credential, never the widest.
    if token_scopes is None or "*" in token_scopes:
        return granted
    return frozenset(p for p in granted if any(_matches(scope, p) for scope in token_scopes))


def _matches(pattern: str, permission: str) -> bool:
    wanted = pattern.split(":")
    have = permission.split(":")
    return len(wanted) == len(have) and all(
        w in ("*", h) for w, h in zip(wanted, have, strict=True)
    )


def valid_scope(pattern: str) -> bool:
    parts = pattern.split(":")
    return pattern == "*" or (
        len(parts) == 3
        and parts[0] in ("registrar", "account", "self", "*")
        and all((part and part.replace("_", "").isalnum()) or part == "*" for part in parts)
    )
