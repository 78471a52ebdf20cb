"""Tenant isolation and roles: a customer never sees, changes or learns of another account's data;
staff read across accounts as their role allows, and every refusal is on the record."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from conftest import PASSWORD, Identity, World
from contact_samples import (
    CONTACTS,
    UNKNOWN_HANDLE,
    comparable,
    contact_body,
    events_tagged,
    failing_fields,
    row_counts,
)

from regshield.flows.contacts import ContactCreate
from regshield.services import Services

UNKNOWN_ACCOUNT = "acc_0000000000000000"
UNKNOWN_TOKEN = "tok_0000000000000000"


@dataclass
class Tenants:
    a: str
    b: str
    owner_a: Identity
    member_a: Identity
    owner_b: Identity
    contacts_a: list[str]
    contacts_b: list[str]

    @property
    def customers_of_a(self) -> list[Identity]:
        return [self.owner_a, self.member_a]


@pytest.fixture
async def tenants(world: World) -> Tenants:
    a = await world.account("Tenant A")
    b = await world.account("Tenant B")
    handles: dict[str, list[str]] = {a: [], b: []}
    # Interleaved, so that B's contacts sit between A's in creation order.
    for n, account in enumerate([a, b, a, b]):
        created = await world.flow(ContactCreate(contact_body(name=f"Person {n} of {account}"),
                                                 account))
        handles[account].append(created.handle)
    return Tenants(a, b, await world.user("owner", a), await world.user("member", a),
                   await world.user("owner", b), handles[a], handles[b])


async def answers_alike(api: httpx.AsyncClient, method: str, other_tenants: str,
                        nonexistent: str, who: Identity, **request: Any) -> httpx.Response:
    """Ask about another tenant's object and about one that does not exist; expect one answer."""
    theirs = await api.request(method, other_tenants, headers=who.headers, **request)
    missing = await api.request(method, nonexistent, headers=who.headers, **request)
    assert theirs.status_code == missing.status_code, (who.role, method, other_tenants)
    assert theirs.headers["content-type"] == missing.headers["content-type"]
    if missing.content:
        assert comparable(theirs.json()) == comparable(missing.json()), (who.role, method)
    return theirs


async def contact_of(api: httpx.AsyncClient, who: Identity, handle: str) -> dict[str, Any]:
    response = await api.get(f"{CONTACTS}/{handle}", headers=who.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


# Objects of another tenant answer exactly like objects that do not exist


async def test_customer_gets_404_for_another_accounts_contact(
        api: httpx.AsyncClient, services: Services, tenants: Tenants) -> None:
    theirs = tenants.contacts_b[0]
    original = await contact_of(api, tenants.owner_b, theirs)
    before = await row_counts(services)
    requests: list[tuple[str, dict[str, Any]]] = [
        ("GET", {}),
        ("PATCH", {"json": {"city": "Leipzig"}}),
        ("PATCH", {"json": {"email": "not-an-address", "nickname": "x"}}),
        ("PATCH", {"json": {"account": tenants.a}}),
        ("DELETE", {}),
    ]

    for customer in tenants.customers_of_a:
        for method, request in requests:
            answer = await answers_alike(api, method, f"{CONTACTS}/{theirs}",
                                         f"{CONTACTS}/{UNKNOWN_HANDLE}", customer, **request)
            assert answer.status_code == 404
            assert answer.json()["detail"] == "no such contact"

    assert await contact_of(api, tenants.owner_b, theirs) == original
    assert await row_counts(services) == before


async def test_contact_cannot_be_moved_to_another_account(
        api: httpx.AsyncClient, tenants: Tenants) -> None:
    mine = tenants.contacts_a[0]

    response = await api.patch(f"{CONTACTS}/{mine}", json={"account": tenants.b},
                               headers=tenants.owner_a.headers)

    assert response.status_code == 422
    assert failing_fields(response.json()) == {"account": "unknown_field"}
    assert (await contact_of(api, tenants.owner_a, mine))["account"] == tenants.a


async def test_customer_gets_404_for_another_account(
        api: httpx.AsyncClient, tenants: Tenants) -> None:
    for customer in tenants.customers_of_a:
        answer = await answers_alike(api, "GET", f"/api/v1/accounts/{tenants.b}",
                                     f"/api/v1/accounts/{UNKNOWN_ACCOUNT}", customer)
        assert answer.status_code == 404
        own = await api.get(f"/api/v1/accounts/{tenants.a}", headers=customer.headers)
        assert own.json()["account_id"] == tenants.a


async def test_customer_gets_404_for_another_accounts_token(
        api: httpx.AsyncClient, services: Services, tenants: Tenants) -> None:
    [token] = (await api.get("/api/v1/tokens", headers=tenants.owner_b.headers)).json()

    for customer in tenants.customers_of_a:
        answer = await answers_alike(api, "DELETE", f"/api/v1/tokens/{token['token_id']}",
                                     f"/api/v1/tokens/{UNKNOWN_TOKEN}", customer)
        assert answer.status_code == 404

    assert (await api.get("/api/v1/me", headers=tenants.owner_b.headers)).status_code == 200
    assert await events_tagged(services, "auth:token:revoked") == []


async def test_owner_cannot_create_a_user_in_another_account(
        api: httpx.AsyncClient, services: Services, tenants: Tenants) -> None:
    before = await row_counts(services)
    user = {"email": "newcomer@example.net", "role": "member"}

    answers = [
        await api.post("/api/v1/users", json={**user, "account": reference},
                       headers=tenants.owner_a.headers)
        for reference in (tenants.b, "Tenant B", UNKNOWN_ACCOUNT, "No Such Tenant")
    ]

    assert [a.status_code for a in answers] == [422] * 4
    assert all(comparable(a.json()) == comparable(answers[-1].json()) for a in answers)
    assert failing_fields(answers[0].json()) == {"account": "not_found"}
    assert await row_counts(services) == before


async def test_customer_cannot_create_a_contact_in_another_account(
        api: httpx.AsyncClient, services: Services, tenants: Tenants) -> None:
    before = await row_counts(services)

    for customer in tenants.customers_of_a:
        answers = [
            await api.post(CONTACTS, json=contact_body(account=reference),
                           headers=customer.headers)
            for reference in (tenants.b, "Tenant B", UNKNOWN_ACCOUNT, "No Such Tenant")
        ]
        assert [a.status_code for a in answers] == [422] * 4
        assert all(comparable(a.json()) == comparable(answers[-1].json()) for a in answers)
        assert failing_fields(answers[0].json()) == {"account": "not_found"}

    assert await row_counts(services) == before


# Lists and filters show only the customer's own account


async def handles_listed(api: httpx.AsyncClient, who: Identity, **params: Any) -> list[str]:
    response = await api.get(CONTACTS, params=params, headers=who.headers)
    assert response.status_code == 200, response.text
    return [item["handle"] for item in response.json()["items"]]


async def test_account_filter_on_the_contact_list_shows_only_own_contacts(
        api: httpx.AsyncClient, tenants: Tenants) -> None:
    for customer in tenants.customers_of_a:
        for account in (tenants.b, "Tenant B", UNKNOWN_ACCOUNT, tenants.a):
            assert await handles_listed(api, customer, account=account) == tenants.contacts_a
        assert await handles_listed(api, customer) == tenants.contacts_a


async def test_paging_cursor_naming_another_accounts_contact_reads_as_unknown(
        api: httpx.AsyncClient, tenants: Tenants) -> None:
    for customer in tenants.customers_of_a:
        theirs = await handles_listed(api, customer, after=tenants.contacts_b[0])
        unknown = await handles_listed(api, customer, after=UNKNOWN_HANDLE)
        assert theirs == unknown == tenants.contacts_a


async def test_event_filter_shows_only_own_accounts_events(
        api: httpx.AsyncClient, tenants: Tenants) -> None:
    owner = tenants.owner_a
    answers = [
        (await api.get("/api/v1/events", params=params, headers=owner.headers)).json()
        for params in ({"account": tenants.b}, {"account": UNKNOWN_ACCOUNT}, {})
    ]

    assert answers[0] == answers[1] == answers[2]
    events = answers[0]["items"]
    assert {e["account"] for e in events} == {tenants.a}
    assert {e["tag"] for e in events} >= {"accounts:account:created", "contacts:contact:created",
                                         "users:user:created"}


async def test_member_may_not_read_the_event_log(
        api: httpx.AsyncClient, tenants: Tenants) -> None:
    response = await api.get("/api/v1/events", params={"account": tenants.a},
                             headers=tenants.member_a.headers)

    assert response.status_code == 403


async def test_lists_never_include_another_accounts_data(
        api: httpx.AsyncClient, tenants: Tenants) -> None:
    [token_b] = (await api.get("/api/v1/tokens", headers=tenants.owner_b.headers)).json()
    marks_of_b = [tenants.b, "Tenant B", *tenants.contacts_b, tenants.owner_b.user_id,
                  token_b["token_id"], f"of {tenants.b}"]
    paths = ["/api/v1/contacts", "/api/v1/accounts", "/api/v1/tokens", "/api/v1/me",
             f"/api/v1/contacts?account={tenants.b}"]

    for customer in tenants.customers_of_a:
        extra = ["/api/v1/events", f"/api/v1/events?account={tenants.b}"] \
            if customer.role == "owner" else []
        for path in paths + extra:
            response = await api.get(path, headers=customer.headers)
            assert response.status_code == 200, (customer.role, path)
            shown = json.dumps(response.json())
            for mark in marks_of_b:
                assert mark not in shown, (customer.role, path, mark)

    own_accounts = (await api.get("/api/v1/accounts", headers=tenants.owner_a.headers)).json()
    assert [a["account_id"] for a in own_accounts] == [tenants.a]


# Staff read across accounts as their role allows


async def test_support_reads_contacts_and_accounts_of_every_tenant(
        api: httpx.AsyncClient, world: World, tenants: Tenants) -> None:
    support = await world.user("support")
    a1, b1, a2, b2 = (tenants.contacts_a[0], tenants.contacts_b[0], tenants.contacts_a[1],
                      tenants.contacts_b[1])

    assert await handles_listed(api, support) == [a1, b1, a2, b2]
    assert await handles_listed(api, support, account=tenants.b) == [b1, b2]
    assert await handles_listed(api, support, account="Tenant A") == [a1, a2]
    assert await handles_listed(api, support, limit=2, after=b1) == [a2, b2]
    assert (await contact_of(api, support, b1))["account"] == tenants.b
    assert (await contact_of(api, support, a1))["account"] == tenants.a
    accounts = (await api.get("/api/v1/accounts", headers=support.headers)).json()
    assert {a["account_id"] for a in accounts} == {tenants.a, tenants.b}
    account_b = await api.get(f"/api/v1/accounts/{tenants.b}", headers=support.headers)
    assert account_b.json()["name"] == "Tenant B"


async def test_support_may_not_change_contacts(
        api: httpx.AsyncClient, services: Services, world: World, tenants: Tenants) -> None:
    support = await world.user("support")
    before = await row_counts(services)

    created = await api.post(CONTACTS, json=contact_body(account=tenants.b),
                             headers=support.headers)
    changed = await api.patch(f"{CONTACTS}/{tenants.contacts_b[0]}", json={"city": "Bonn"},
                              headers=support.headers)

    assert (created.status_code, changed.status_code) == (403, 403)
    after = await row_counts(services)
    assert after == {**before, "events": before["events"] + 2}


async def test_auditor_reads_everything_but_every_write_is_refused(
        api: httpx.AsyncClient, services: Services, world: World, tenants: Tenants) -> None:
    auditor = await world.user("auditor")
    theirs = tenants.contacts_b[0]
    original = await contact_of(api, auditor, theirs)
    assert len(await handles_listed(api, auditor)) == 4
    assert (await api.get("/api/v1/events", headers=auditor.headers)).status_code == 200
    before = await row_counts(services)

    writes = [
        ("POST", CONTACTS, contact_body(account=tenants.b), "ContactCreate"),
        ("PATCH", f"{CONTACTS}/{theirs}", {"city": "Bonn"}, "ContactUpdate"),
        ("DELETE", f"{CONTACTS}/{theirs}", None, "ContactDelete"),
        ("POST", "/api/v1/accounts", {"name": "Audited Ltd"}, "AccountCreate"),
        ("POST", "/api/v1/users", {"email": "new@example.net", "password": PASSWORD,
                                   "role": "member", "account": tenants.b}, "UserCreate"),
    ]
    for method, path, body, _ in writes:
        response = await api.request(method, path, headers=auditor.headers,
                                     **({"json": body} if body is not None else {}))
        assert response.status_code == 403, (method, path)
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["type"] == "urn:regshield:problem:permission-denied"

    assert await row_counts(services) == {**before, "events": before["events"] + len(writes)}
    assert await contact_of(api, auditor, theirs) == original  # (a read, itself recorded)
    denials = await events_tagged(services, "authz:permission:denied")
    assert [d.summary["flow"] for d in denials] == [flow for *_, flow in writes]
    assert {(d.actor, d.channel) for d in denials} == {(f"user:{auditor.user_id}", "api")}


async def test_member_cannot_create_users(
        api: httpx.AsyncClient, services: Services, tenants: Tenants) -> None:
    before = await row_counts(services)

    response = await api.post("/api/v1/users", json={
        "email": "friend@example.net", "role": "member"},
        headers=tenants.member_a.headers)

    assert response.status_code == 403
    assert response.json()["type"] == "urn:regshield:problem:permission-denied"
    assert await row_counts(services) == {**before, "events": before["events"] + 1}
    [denial] = await events_tagged(services, "authz:permission:denied")
    assert (denial.actor, denial.account, denial.summary["flow"]) == (
        f"user:{tenants.member_a.user_id}", tenants.a, "UserInvite")


@pytest.mark.parametrize("role", ["admin", "operator", "support", "compliance", "auditor"])
async def test_operator_cannot_create_a_staff_user(
        api: httpx.AsyncClient, services: Services, world: World, role: str) -> None:
    operator = await world.user("operator")
    before = await row_counts(services)

    response = await api.post("/api/v1/users", json={
        "email": "colleague@example.net", "password": PASSWORD, "role": role},
        headers=operator.headers)

    assert response.status_code == 403
    assert await row_counts(services) == {**before, "events": before["events"] + 1}
    [denial] = await events_tagged(services, "authz:permission:denied")
    assert (denial.actor, denial.summary["flow"]) == (f"user:{operator.user_id}", "UserCreate")


async def test_owner_cannot_create_a_staff_user(
        api: httpx.AsyncClient, services: Services, tenants: Tenants) -> None:
    before = await row_counts(services)

    for staff_role in ("admin", "support"):
        response = await api.post("/api/v1/users", json={
            "email": "insider@example.net", "password": PASSWORD, "role": staff_role},
            headers=tenants.owner_a.headers)
        assert response.status_code == 403, staff_role

    assert await row_counts(services) == {**before, "events": before["events"] + 2}
