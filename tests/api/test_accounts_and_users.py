"""Customer accounts and users through the API: who may open them, what they must look like."""

from __future__ import annotations

import email
import email.policy
import re
from email.message import EmailMessage
from typing import Any

import httpx
import pytest
from conftest import PASSWORD, Identity, World
from contact_samples import events_tagged, failing_fields, row_counts

from api.test_auth import stored_text
from regshield.clock import FakeClock
from regshield.notify.delivery import MAIL_DIRECTORY
from regshield.notify.handler import handlers
from regshield.outbox.worker import OutboxWorker
from regshield.policy.security import security_policy
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


def invitation(email: str = "Newcomer@Example.NET", **changes: Any) -> dict[str, Any]:
    return {"email": email, "role": "member", **changes}


async def mails_to(services: Services, address: str) -> list[EmailMessage]:
    """Send what the outbox holds (to the mail directory); the messages sent to `address`."""
    await OutboxWorker(services, handlers()).run_once()
    directory = services.settings.home / MAIL_DIRECTORY
    messages = [email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
                for path in sorted(directory.glob("*.eml"))]
    return [m for m in messages  # type: ignore[misc]
            if str(m["To"]).casefold() == address.casefold()]


def token_in(message: EmailMessage) -> str | None:
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    found = re.search(r'"token": "([^"]+)"', str(body.get_content()))
    return found.group(1) if found else None


async def test_owner_invites_a_member_who_accepts_once_and_can_then_sign_in(
        api: httpx.AsyncClient, services: Services, world: World) -> None:
    account = await world.account("Customer")
    owner = await world.user("owner", account)

    response = await api.post(USERS, json=invitation(), headers=owner.headers)

    assert response.status_code == 202, response.text
    invited = response.json()
    assert re.fullmatch(r"inv_[0-9a-f]{16}", invited["invitation_id"])
    assert (invited["email"], invited["role"], invited["account"]) == (
        "Newcomer@example.net", "member", account)
    [mail] = await mails_to(services, "Newcomer@example.net")
    token = token_in(mail)
    assert token is not None
    assert token not in await stored_text(services)
    accepted = await api.post("/api/v1/invitations/accept",
                              json={"token": token, "password": PASSWORD})
    assert accepted.status_code == 201, accepted.text
    created = accepted.json()
    assert (created["email"], created["kind"], created["role"], created["account"]) == (
        "Newcomer@example.net", "customer", "member", account)
    again = await api.post("/api/v1/invitations/accept",
                           json={"token": token, "password": PASSWORD + " again"})
    assert again.status_code == 404
    login = await api.post("/api/v1/auth/login",
                           json={"email": "newcomer@example.net", "password": PASSWORD})
    assert login.status_code == 200
    me = await api.get("/api/v1/me",
                       headers={"Authorization": f"Bearer {login.json()['token']}"})
    assert me.json() == created
    event = (await events_tagged(services, "users:user:created"))[-1]
    assert event.account == account
    assert event.summary == {"user": created["user_id"], "role": "member"}


async def test_user_create_answers_the_same_for_a_taken_address(
        api: httpx.AsyncClient, services: Services, world: World) -> None:
    """An owner inviting an address that is a user elsewhere hears what they would hear for
    a new address; the holder gets a mail without a link, and no user is made."""
    elsewhere = await world.account("Elsewhere")
    holder = await world.user("member", elsewhere, email="holder@example.net")
    account = await world.account("Customer")
    owner = await world.user("owner", account)

    fresh = await api.post(USERS, json=invitation("fresh@example.net"), headers=owner.headers)
    taken = await api.post(USERS, json=invitation(holder.email), headers=owner.headers)

    def shape(answer: httpx.Response) -> tuple[int, set[str], str, str]:
        body = answer.json()
        return answer.status_code, set(body), body["role"], body["account"]

    assert shape(taken) == shape(fresh) == (
        202, {"invitation_id", "email", "role", "account", "expires_at"}, "member", account)
    assert taken.json()["expires_at"] == fresh.json()["expires_at"]
    # what the owner can read in the account's events is the same for both
    seen = (await api.get("/api/v1/events", headers=owner.headers)).json()["items"]
    mine = [(e["tag"], sorted(e["summary"])) for e in seen
            if e["tag"].startswith("users:invitation")]
    assert mine == [("users:invitation:created", ["invitation", "role"])] * 2

    [to_holder] = await mails_to(services, holder.email)
    assert token_in(to_holder) is None
    assert "already has a user" in str(to_holder.get_body(preferencelist=("plain",)))
    [to_fresh] = await mails_to(services, "fresh@example.net")
    assert token_in(to_fresh) is not None
    me = await api.get("/api/v1/me", headers=holder.headers)
    assert me.json()["account"] == elsewhere
    assert (await api.get("/api/v1/events", headers=owner.headers)).json()["items"] == seen


async def test_an_invitation_link_stops_working_when_it_expires(
        api: httpx.AsyncClient, services: Services, world: World, clock: FakeClock) -> None:
    account = await world.account("Customer")
    owner = await world.user("owner", account)
    assert (await api.post(USERS, json=invitation(), headers=owner.headers)).status_code == 202
    [mail] = await mails_to(services, "newcomer@example.net")
    clock.advance(security_policy(clock.now()).invitation_lifetime)
    late = await api.post("/api/v1/invitations/accept",
                          json={"token": token_in(mail), "password": PASSWORD})
    assert late.status_code == 404
    login = await api.post("/api/v1/auth/login",
                           json={"email": "newcomer@example.net", "password": PASSWORD})
    assert login.status_code == 401


async def test_an_invitation_carries_no_password(
        api: httpx.AsyncClient, world: World) -> None:
    account = await world.account("Customer")
    owner = await world.user("owner", account)
    response = await api.post(USERS, json=invitation(password=PASSWORD), headers=owner.headers)
    assert response.status_code == 422
    assert failing_fields(response.json()) == {"password": "not_allowed"}


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
