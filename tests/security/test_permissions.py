"""Roles, token scopes and the permissions they give."""

from __future__ import annotations

import pytest

from regshield.security.permissions import (
    CUSTOMER_ROLES,
    ROLE_PERMISSIONS,
    STAFF_ROLES,
    permissions_for,
    valid_scope,
)

ALL_ROLES = STAFF_ROLES + CUSTOMER_ROLES


@pytest.mark.parametrize("role", ALL_ROLES)
def test_unscoped_credential_gets_exactly_its_roles_permissions(role: str) -> None:
    assert permissions_for(role) == ROLE_PERMISSIONS[role]
    assert permissions_for(role, ["*"]) == ROLE_PERMISSIONS[role]


@pytest.mark.parametrize("role", ALL_ROLES)
@pytest.mark.parametrize("scopes", [
    ["account:contacts:read"],
    ["registrar:*:*"],
    ["*:*:*"],
    ["*:*:write", "self:mfa:write"],
    ["registrar:users:write", "account:users:write", "self:*:*"],
])
def test_scopes_never_widen_a_role(role: str, scopes: list[str]) -> None:
    assert permissions_for(role, scopes) <= ROLE_PERMISSIONS[role]


def test_scope_narrows_to_the_matching_permissions() -> None:
    assert permissions_for("owner", ["account:contacts:read"]) == \
        frozenset({"account:contacts:read"})
    assert permissions_for("admin", ["registrar:*:read"]) == frozenset(
        p for p in ROLE_PERMISSIONS["admin"] if p.startswith("registrar:") and p.endswith(":read")
    )


def test_customer_scoped_to_registrar_permissions_gets_nothing() -> None:
    assert permissions_for("owner", ["registrar:contacts:read", "registrar:*:*"]) == frozenset()


def test_member_cannot_gain_user_management_from_a_scope() -> None:
    assert "account:users:write" not in permissions_for("member", ["account:users:write"])


def test_wildcard_scope_of_every_part_equals_the_whole_role() -> None:
    assert permissions_for("operator", ["*:*:*"]) == ROLE_PERMISSIONS["operator"]


def test_scope_of_another_shape_matches_nothing() -> None:
    assert permissions_for("admin", ["registrar:contacts"]) == frozenset()
    assert permissions_for("admin", ["registrar:contacts:read:extra"]) == frozenset()


def test_empty_scope_list_grants_nothing() -> None:
    # "No scopes" on a credential is the narrowest credential, not the widest.
    assert permissions_for("admin", []) == frozenset()


def test_unknown_role_has_no_permissions() -> None:
    assert permissions_for("root") == frozenset()
    assert permissions_for("root", ["*"]) == frozenset()


def test_auditor_reads_everything_and_writes_nothing() -> None:
    granted = permissions_for("auditor")
    assert "registrar:events:read" in granted
    assert not {p for p in granted if p.endswith(":write") and not p.startswith("self:")}


def test_every_role_can_manage_its_own_second_factor_and_tokens() -> None:
    for role in ALL_ROLES:
        assert {"self:mfa:write", "self:tokens:write"} <= permissions_for(role)


def test_customers_never_hold_registrar_wide_permissions() -> None:
    for role in CUSTOMER_ROLES:
        assert not [p for p in permissions_for(role) if p.startswith("registrar:")]


@pytest.mark.parametrize("scope", [
    "*", "account:contacts:read", "registrar:*:read", "self:mfa:write", "*:*:*",
    "account:contact_roles:read",
])
def test_valid_scopes(scope: str) -> None:
    assert valid_scope(scope)


@pytest.mark.parametrize("scope", [
    "", "**", "account", "account:contacts", "account:contacts:read:all", "root:contacts:read",
    "account::read", "account:contacts:", "account:con tacts:read", "account:contacts:read\n",
    "account:contacts:re-ad", "Account:contacts:read", "account:*contacts:read",
])
def test_invalid_scopes(scope: str) -> None:
    assert not valid_scope(scope)
