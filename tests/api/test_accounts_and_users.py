"""Customer accounts and users through the API: who may open them, what they must look like."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from conftest import PASSWORD, Identity, World
from contact_samples import events_tagged, failing_fields, row_counts

from regshield.services import Services

ACCOUNTS = "/api/v1/accounts"
USERS = "/api/v1/users"


@pytest.fixture
async def operator(world: World) -> Identity:
    return await world.user("operator")


def new_user(**changes: Any) -> dict[str, Any]:
    return {"email": "newcomer@example.net", "password": PASSWORD, "role": "member", **changes}


# Accounts


async def test_staff_operator_opens_an_account(
        api: httpx.AsyncClient, services: Services, operator: Identity) -> None:
    response = await api.post(ACCOUNTS, json={"name": "Acme Domains"}, headers=operator.headers)

    assert response.status_code == 201
    account = response.json()
    assert re.fullmatch(r"acc_[0-9a-f]{16}", account["account_id"])
    assert account["name"] == "Acme Domains"
    assert account["created_at"].endswith("Z")
    fetched = await api.get(f"{ACCOUNTS}/{account['account_id']}", headers=operator.headers)
    assert fetched.json() == account
    [event] = await events_tagged(services, "accounts:account:created")
    assert (event.account, event.actor) == (account["account_id"], f"user:{operator.user_id}")


async def test_account_name_must_be_unique(
        api: httpx.AsyncClient, services: Services, operator: Identity) -> None:
    await api.post(ACCOUNTS, json={"name": "Acme Domains"}, headers=operator.headers)
    before = await row_counts(services)

    response = await api.post(ACCOUNTS, json={"name": "Acme Domains"}, headers=operator.headers)

    assert response.status_code == 422
    assert failing_fields(response.json()) == {"name": "taken"}
    assert await row_counts(services) == before


@pytest.mark.parametrize(("name", "code"), [
    ("", "invalid_length"),
    ("   ", "invalid_length"),
    ("x" * 101, "invalid_length"),
    (" Acme", "invalid_characters"),
    ("Acme\nDomains", "invalid_characters"),
    ("acc_0123456789abcdef", "reserved_prefix"),
])
async def test_account_name_rules(
        api: httpx.AsyncClient, operator: Identity, name: str, code: str) -> None:
    response = await api.post(ACCOUNTS, json={"name": name}, headers=operator.headers)

    assert response.status_code == 422
    assert failing_fields(response.json()) == {"name": code}


@pytest.mark.parametrize("role", ["owner", "member"])
async def test_customer_cannot_open_accounts(
        api: httpx.AsyncClient, services: Services, world: World, role: str) -> None:
    customer = await world.user(role, await world.account("Customer"))
    before = await row_counts(services)

    response = await api.post(ACCOUNTS, json={"name": "My Own Tenant"}, headers=customer.headers)

    assert response.status_code == 403
    assert await row_counts(services) == {**before, "events": before["events"] + 1}
    [denial] = await events_tagged(services, "authz:permission:denied")
    assert denial.summary["flow"] == "AccountCreate"


async def test_staff_lists_every_account_and_a_customer_only_its_own(
        api: httpx.AsyncClient, world: World, operator: Identity) -> None:
    names = ["First", "Second", "Third"]
    ids = [await world.account(name) for name in names]
    owner = await world.user("owner", ids[1])

    everything = (await api.get(ACCOUNTS, headers=operator.headers)).json()
    paged = (await api.get(ACCOUNTS, params={"limit": 1, "offset": 1},
                           headers=operator.headers)).json()
    own = (await api.get(ACCOUNTS, headers=owner.headers)).json()

    assert [(a["account_id"], a["name"]) for a in everything] == list(zip(ids, names,
                                                                           strict=True))
    assert [a["account_id"] for a in paged] == [ids[1]]
    assert [a["account_id"] for a in own] == [ids[1]]


async def test_unknown_account_is_not_found(
        api: httpx.AsyncClient, operator: Identity) -> None:
    response = await api.get(f"{ACCOUNTS}/acc_0000000000000000", headers=operator.headers)

    assert response.status_code == 404
    assert response.json()["detail"] == "no such account"


# Users


async def test_owner_adds_a_member_to_own_account_who_can_then_sign_in(
        api: httpx.AsyncClient, services: Services, world: World) -> None:
    account = await world.account("Customer")
    owner = await world.user("owner", account)

    response = await api.post(USERS, json=new_user(email="Newcomer@Example.NET"),
                              headers=owner.headers)

    assert response.status_code == 201
    created = response.json()
    assert re.fullmatch(r"usr_[0-9a-f]{16}", created["user_id"])
    assert (created["email"], created["kind"], created["role"], created["account"],
            created["totp_enabled"]) == ("Newcomer@example.net", "customer", "member", account,
                                         False)
    login = await api.post("/api/v1/auth/login",
                           json={"email": "newcomer@example.net", "password": PASSWORD})
    assert login.status_code == 200
    me = await api.get("/api/v1/me",
                       headers={"Authorization": f"Bearer {login.json()['token']}"})
    assert me.json() == created
    event = (await events_tagged(services, "users:user:created"))[-1]
    assert (event.account, event.actor) == (account, f"user:{owner.user_id}")
    assert event.summary == {"user": created["user_id"], "role": "member"}


async def test_me_shows_the_signed_in_users_own_profile(
        api: httpx.AsyncClient, world: World, operator: Identity) -> None:
    me = (await api.get("/api/v1/me", headers=operator.headers)).json()

    assert (me["user_id"], me["email"], me["kind"], me["role"], me["account"]) == (
        operator.user_id, operator.email, "staff", "operator", None)


async def test_operator_adds_a_customer_user_to_any_account(
        api: httpx.AsyncClient, world: World, operator: Identity) -> None:
    account = await world.account("Customer")

    response = await api.post(USERS, json=new_user(role="owner", account="Customer"),
                              headers=operator.headers)

    assert response.status_code == 201
    assert (response.json()["account"], response.json()["role"]) == (account, "owner")


async def test_admin_creates_staff_users_who_belong_to_no_account(
        api: httpx.AsyncClient, world: World) -> None:
    admin = await world.user("admin")

    response = await api.post(USERS, json=new_user(role="support"), headers=admin.headers)

    assert response.status_code == 201
    assert (response.json()["kind"], response.json()["account"]) == ("staff", None)


async def test_staff_user_naming_an_account_is_refused(
        api: httpx.AsyncClient, world: World) -> None:
    admin = await world.user("admin")
    account = await world.account("Customer")

    response = await api.post(USERS, json=new_user(role="support", account=account),
                              headers=admin.headers)

    assert response.status_code == 422
    assert failing_fields(response.json()) == {"account": "not_allowed"}


async def test_customer_user_created_by_staff_needs_an_account(
        api: httpx.AsyncClient, operator: Identity) -> None:
    response = await api.post(USERS, json=new_user(role="owner"), headers=operator.headers)

    assert response.status_code == 422
    assert failing_fields(response.json()) == {"account": "required"}


async def test_email_is_taken_whatever_its_case(
        api: httpx.AsyncClient, services: Services, world: World, operator: Identity) -> None:
    await world.account("Customer")
    await api.post(USERS, json=new_user(account="Customer"), headers=operator.headers)
    before = await row_counts(services)

    response = await api.post(USERS, json=new_user(email="NEWCOMER@example.net",
                                                   account="Customer"),
                              headers=operator.headers)

    assert response.status_code == 422
    assert failing_fields(response.json()) == {"email": "taken"}
    assert await row_counts(services) == before


async def test_new_user_with_many_bad_fields_hears_every_reason_and_nothing_is_written(
        api: httpx.AsyncClient, services: Services, operator: Identity) -> None:
    before = await row_counts(services)

    response = await api.post(USERS, json={"email": "not-an-address", "password": "short",
                                           "role": "superuser", "account": "No Such Tenant"},
                              headers=operator.headers)

    assert response.status_code == 422
    assert failing_fields(response.json()) == {"email": "invalid_email", "password": "too_short",
                                               "role": "unknown_role", "account": "not_found"}
    assert await row_counts(services) == before


@pytest.mark.parametrize(("password", "code"), [
    ("password1234", "too_common"),
    ("newcomer@example.net", "matches_email"),
])
async def test_weak_password_is_refused(
        api: httpx.AsyncClient, world: World, operator: Identity, password: str,
        code: str) -> None:
    await world.account("Customer")

    response = await api.post(USERS, json=new_user(password=password, account="Customer"),
                              headers=operator.headers)

    assert response.status_code == 422
    assert failing_fields(response.json()) == {"password": code}
