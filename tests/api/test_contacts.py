"""Contacts through the API: create, read, list, change and delete registration data."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

import httpx
import pytest
from conftest import Identity, World
from contact_samples import (
    CONTACTS,
    UNKNOWN_HANDLE,
    comparable,
    contact_body,
    events_tagged,
    failing_fields,
    row_counts,
)
from sqlalchemy import select

from regshield.clock import FakeClock
from regshield.services import Services
from regshield.store.models import Contact, Event, OutboxItem

HANDLE = re.compile(r"RS-[A-HJ-NP-Z2-9]{10}")


@pytest.fixture
async def account(world: World) -> str:
    return await world.account("Example Customer")


@pytest.fixture
async def owner(world: World, account: str) -> Identity:
    return await world.user("owner", account)


async def create(api: httpx.AsyncClient, who: Identity, **changes: Any) -> dict[str, Any]:
    response = await api.post(CONTACTS, json=contact_body(**changes), headers=who.headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


# Creating


async def test_customer_creates_contact_in_own_account(
        api: httpx.AsyncClient, services: Services, owner: Identity, account: str) -> None:
    response = await api.post(CONTACTS, json=contact_body(), headers=owner.headers)

    assert response.status_code == 201
    created = response.json()
    assert HANDLE.fullmatch(created["handle"])
    assert response.headers["Location"] == f"{CONTACTS}/{created['handle']}"
    assert created["account"] == account
    assert {k: created[k] for k in ("name", "organization", "email", "street", "city",
                                    "postal_code", "state", "fax")} == {
        "name": "Jane Example", "organization": "Example GmbH", "email": "jane@example.net",
        "street": ["Invalidenstrasse 116"], "city": "Berlin", "postal_code": "10115",
        "state": None, "fax": None}
    [event] = await events_tagged(services, "contacts:contact:created")
    assert (event.account, event.actor, event.channel) == (account, f"user:{owner.user_id}",
                                                           "api")
    assert event.summary == {"contact": created["handle"]}


async def test_phone_is_stored_in_e164_and_country_upper_cased(
        api: httpx.AsyncClient, owner: Identity) -> None:
    created = await create(api, owner, phone="030 1234-5678", fax="+49 (30) 12345679",
                           country="de")

    assert (created["phone"], created["fax"], created["country"]) == (
        "+493012345678", "+493012345679", "DE")
    stored = (await api.get(f"{CONTACTS}/{created['handle']}", headers=owner.headers)).json()
    assert (stored["phone"], stored["fax"], stored["country"]) == (
        "+493012345678", "+493012345679", "DE")


async def test_member_creates_contact_in_own_account(
        api: httpx.AsyncClient, world: World, account: str) -> None:
    member = await world.user("member", account)

    assert (await create(api, member))["account"] == account


async def test_customer_may_name_own_account_by_public_id_or_name(
        api: httpx.AsyncClient, owner: Identity, account: str) -> None:
    for reference in (account, "Example Customer"):
        assert (await create(api, owner, account=reference))["account"] == account


async def test_every_contact_gets_its_own_handle(
        api: httpx.AsyncClient, owner: Identity) -> None:
    handles = {(await create(api, owner))["handle"] for _ in range(5)}

    assert len(handles) == 5


async def test_staff_creates_contact_in_the_account_it_names(
        api: httpx.AsyncClient, world: World, account: str) -> None:
    operator = await world.user("operator")

    created = await create(api, operator, account=account)

    assert created["account"] == account


async def test_staff_must_name_the_account_of_a_contact(
        api: httpx.AsyncClient, services: Services, world: World) -> None:
    operator = await world.user("operator")
    before = await row_counts(services)

    response = await api.post(CONTACTS, json=contact_body(), headers=operator.headers)

    assert response.status_code == 422
    assert failing_fields(response.json()) == {"account": "required"}
    assert await row_counts(services) == before


async def test_staff_naming_an_unknown_account_is_refused(
        api: httpx.AsyncClient, world: World) -> None:
    operator = await world.user("operator")

    response = await api.post(CONTACTS, json=contact_body(account="acc_0000000000000000"),
                              headers=operator.headers)

    assert response.status_code == 422
    assert failing_fields(response.json()) == {"account": "not_found"}


async def test_staff_without_an_account_and_with_bad_fields_hears_every_reason(
        api: httpx.AsyncClient, world: World) -> None:
    operator = await world.user("operator")

    response = await api.post(CONTACTS, json=contact_body(email="nope", city=...),
                              headers=operator.headers)

    assert response.status_code == 422
    assert failing_fields(response.json()) == {
        "account": "required", "email": "invalid_email", "city": "required"}


async def test_contacts_need_a_credential(api: httpx.AsyncClient) -> None:
    for response in (
        await api.post(CONTACTS, json=contact_body()),
        await api.get(CONTACTS),
        await api.get(f"{CONTACTS}/{UNKNOWN_HANDLE}"),
        await api.patch(f"{CONTACTS}/{UNKNOWN_HANDLE}", json={"city": "Bonn"}),
        await api.delete(f"{CONTACTS}/{UNKNOWN_HANDLE}"),
    ):
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"


# Refusing bad input, every reason at once, nothing written

EVERYTHING_WRONG = [
    pytest.param(
        {"email": "jane.example.net", "phone": "12", "country": "XX",
         "street": ["1", "2", "3", "4"], "city": "Berlin", "postal_code": "10115",
         "nickname": "JD"},
        {"name": "required", "email": "invalid_email", "phone": "invalid_phone",
         "country": "unknown_country", "street": "too_many_lines", "nickname": "unknown_field"},
        id="unknown-country",
    ),
    pytest.param(
        {"email": "jane@", "phone": "+1 555", "country": "US", "street": ["1", "2", "3", "4"],
         "city": "", "postal_code": "9410", "nickname": "JD", "organization": " "},
        {"name": "required", "email": "invalid_email", "phone": "invalid_phone",
         "street": "too_many_lines", "city": "required", "postal_code": "invalid_postal_code",
         "nickname": "unknown_field"},
        id="bad-us-zip",
    ),
]


@pytest.mark.parametrize(("body", "expected"), EVERYTHING_WRONG)
async def test_contact_with_many_bad_fields_is_refused_naming_every_field_and_nothing_written(
        api: httpx.AsyncClient, services: Services, owner: Identity,
        body: dict[str, Any], expected: dict[str, str]) -> None:
    before = await row_counts(services)

    response = await api.post(CONTACTS, json=body, headers=owner.headers)

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 422
    assert failing_fields(problem) == expected
    assert len(problem["errors"]) == len(expected)
    assert await row_counts(services) == before
    assert (await api.get(CONTACTS, headers=owner.headers)).json()["items"] == []


async def test_wrong_json_types_are_refused_naming_each_field(
        api: httpx.AsyncClient, services: Services, owner: Identity) -> None:
    wrong = {"name": 123, "city": ["Berlin"], "organization": {"legal": "Example"},
             "postal_code": 10115, "street": 7, "country": 49, "phone": 493012345678,
             "email": True, "state": 1.5}
    before = await row_counts(services)

    response = await api.post(CONTACTS, json=contact_body(**wrong), headers=owner.headers)

    # Wrong JSON types are refused by the body's schema, every one at once, before the rules.
    assert response.status_code == 422
    assert failing_fields(response.json()) == {
        "name": "string_type", "city": "string_type", "organization": "string_type",
        "postal_code": "string_type", "street": "list_type", "country": "string_type",
        "phone": "string_type", "email": "string_type", "state": "string_type"}
    assert await row_counts(services) == before


async def test_body_that_is_not_a_json_object_is_refused(
        api: httpx.AsyncClient, owner: Identity) -> None:
    for body in ([contact_body()], "jane", 42, None):
        response = await api.post(CONTACTS, json=body, headers=owner.headers)

        assert response.status_code == 422, body
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["errors"]


async def test_malformed_json_is_refused(api: httpx.AsyncClient, owner: Identity) -> None:
    response = await api.post(CONTACTS, content=b'{"name": "Jane",',
                              headers={**owner.headers, "content-type": "application/json"})

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


# Reading and listing


async def test_customer_reads_a_contact_as_it_was_stored(
        api: httpx.AsyncClient, owner: Identity) -> None:
    created = await create(api, owner)

    response = await api.get(f"{CONTACTS}/{created['handle']}", headers=owner.headers)

    assert response.status_code == 200
    assert response.json() == created


async def test_unknown_contact_is_not_found(api: httpx.AsyncClient, owner: Identity) -> None:
    response = await api.get(f"{CONTACTS}/{UNKNOWN_HANDLE}", headers=owner.headers)

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert comparable(response.json()) == {
        "type": "urn:regshield:problem:not-found", "title": "Not found", "status": 404,
        "detail": "no such contact"}


async def test_list_pages_through_contacts_oldest_first(
        api: httpx.AsyncClient, owner: Identity) -> None:
    handles = [(await create(api, owner, name=f"Contact {n}"))["handle"] for n in range(5)]

    pages: list[list[str]] = []
    after: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"after": after} if after else {})}
        page = (await api.get(CONTACTS, params=params, headers=owner.headers)).json()
        pages.append([item["handle"] for item in page["items"]])
        after = page["next_after"]
        if after is None:
            break
        assert after == pages[-1][-1]

    assert pages == [handles[0:2], handles[2:4], handles[4:5]]


async def test_a_full_last_page_is_followed_by_an_empty_one(
        api: httpx.AsyncClient, owner: Identity) -> None:
    handles = [(await create(api, owner))["handle"] for _ in range(2)]

    first = (await api.get(CONTACTS, params={"limit": 2}, headers=owner.headers)).json()
    second = (await api.get(CONTACTS, params={"limit": 2, "after": first["next_after"]},
                            headers=owner.headers)).json()

    assert [c["handle"] for c in first["items"]] == handles
    assert second == {"items": [], "next_after": None}


async def test_paging_goes_on_after_the_last_seen_contact_was_deleted(
        api: httpx.AsyncClient, owner: Identity) -> None:
    handles = [(await create(api, owner))["handle"] for _ in range(4)]
    first = (await api.get(CONTACTS, params={"limit": 2}, headers=owner.headers)).json()
    await api.delete(f"{CONTACTS}/{first['next_after']}", headers=owner.headers)

    second = (await api.get(CONTACTS, params={"limit": 2, "after": first["next_after"]},
                            headers=owner.headers)).json()

    assert [c["handle"] for c in second["items"]] == handles[2:4]


async def test_page_size_out_of_range_is_refused(
        api: httpx.AsyncClient, owner: Identity) -> None:
    for limit in (0, -1, 501, "many"):
        response = await api.get(CONTACTS, params={"limit": limit}, headers=owner.headers)

        assert response.status_code == 422, limit
        assert failing_fields(response.json()).keys() == {"limit"}


# Changing


async def test_patch_changes_only_the_given_fields(
        api: httpx.AsyncClient, services: Services, clock: FakeClock, owner: Identity,
        account: str) -> None:
    created = await create(api, owner)
    clock.advance(timedelta(hours=1))

    response = await api.patch(f"{CONTACTS}/{created['handle']}",
                               json={"email": "jane@example.org", "city": "Hamburg",
                                     "postal_code": "20095", "phone": "+49 40 12345678"},
                               headers=owner.headers)

    assert response.status_code == 200
    changed = response.json()
    expected = {**created, "email": "jane@example.org", "city": "Hamburg",
                "postal_code": "20095", "phone": "+494012345678",
                "updated_at": changed["updated_at"], "registry_operations": []}
    assert changed == expected  # no domain uses it: no registry is told
    assert changed["updated_at"] != created["updated_at"]
    stored = (await api.get(f"{CONTACTS}/{created['handle']}", headers=owner.headers)).json()
    assert stored == {k: v for k, v in changed.items() if k != "registry_operations"}
    [event] = await events_tagged(services, "contacts:contact:updated")
    assert event.account == account
    assert event.summary == {"contact": created["handle"],
                             "fields": ["city", "email", "phone", "postal_code"]}


async def test_patch_event_names_fields_but_holds_none_of_their_values(
        api: httpx.AsyncClient, services: Services, owner: Identity) -> None:
    created = await create(api, owner)

    await api.patch(f"{CONTACTS}/{created['handle']}",
                    json={"name": "Janet Newname", "street": ["Neue Strasse 9"]},
                    headers=owner.headers)

    [event] = await events_tagged(services, "contacts:contact:updated")
    assert event.summary["fields"] == ["name", "street"]
    recorded = json.dumps(event.summary)
    for value in ("Janet", "Newname", "Neue Strasse", "Jane Example", "Invalidenstrasse"):
        assert value not in recorded


async def test_patch_of_a_contact_no_domain_uses_needs_no_step_up_and_tells_no_registry(
        api: httpx.AsyncClient, services: Services, owner: Identity) -> None:
    # Only the registrant of a live domain is a domain's holder (tests/domains/
    # test_contact_edit.py): a contact that no domain uses is edited as before.
    created = await create(api, owner)

    response = await api.patch(f"{CONTACTS}/{created['handle']}", headers=owner.headers,
                               json={"name": "Janet Newname", "email": "janet@example.org"})

    assert response.status_code == 200, response.text
    async with services.store.read() as session:
        tags = [e.tag for e in await session.scalars(select(Event))]
        assert (await session.scalars(select(OutboxItem))).all() == []
    assert not [tag for tag in tags if tag.startswith("domains:")]


async def test_patch_that_changes_nothing_leaves_no_event(
        api: httpx.AsyncClient, services: Services, owner: Identity) -> None:
    created = await create(api, owner)

    response = await api.patch(f"{CONTACTS}/{created['handle']}",
                               json={"country": "de", "name": "  Jane   Example "},
                               headers=owner.headers)

    assert response.status_code == 200
    assert response.json() == {**created, "registry_operations": []}
    assert await events_tagged(services, "contacts:contact:updated") == []


async def test_patch_merged_contact_is_validated_as_a_whole(
        api: httpx.AsyncClient, services: Services, owner: Identity) -> None:
    created = await create(api, owner, country="NL", postal_code="1012 ab",
                           phone="+31 20 794 0000", city="Amsterdam")
    assert created["postal_code"] == "1012 AB"
    before = await row_counts(services)

    # The postal code, untouched, does not fit the new country.
    response = await api.patch(f"{CONTACTS}/{created['handle']}", json={"country": "DE"},
                               headers=owner.headers)

    assert response.status_code == 422
    assert failing_fields(response.json()) == {"postal_code": "invalid_postal_code"}
    assert await row_counts(services) == before


async def test_patch_can_clear_an_optional_field_but_not_a_required_one(
        api: httpx.AsyncClient, owner: Identity) -> None:
    created = await create(api, owner)
    url = f"{CONTACTS}/{created['handle']}"

    cleared = await api.patch(url, json={"organization": None}, headers=owner.headers)
    refused = await api.patch(url, json={"name": None, "email": ""}, headers=owner.headers)

    assert cleared.status_code == 200
    assert cleared.json()["organization"] is None
    assert refused.status_code == 422
    assert failing_fields(refused.json()) == {"name": "required", "email": "required"}


async def test_patch_with_many_bad_fields_names_every_one_and_changes_nothing(
        api: httpx.AsyncClient, services: Services, owner: Identity) -> None:
    created = await create(api, owner)
    before = await row_counts(services)

    response = await api.patch(
        f"{CONTACTS}/{created['handle']}",
        json={"email": "not-an-address", "phone": "12", "street": ["1", "2", "3", "4"],
              "name": "", "country": "XX", "nickname": "JD"},
        headers=owner.headers)

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert failing_fields(response.json()) == {
        "email": "invalid_email", "phone": "invalid_phone", "street": "too_many_lines",
        "name": "required", "country": "unknown_country", "nickname": "unknown_field"}
    assert await row_counts(services) == before
    assert (await api.get(f"{CONTACTS}/{created['handle']}",
                          headers=owner.headers)).json() == created


async def test_patch_of_an_unknown_field_alone_is_refused(
        api: httpx.AsyncClient, owner: Identity) -> None:
    created = await create(api, owner)

    response = await api.patch(f"{CONTACTS}/{created['handle']}", json={"handle": "RS-MINE"},
                               headers=owner.headers)

    assert response.status_code == 422
    assert failing_fields(response.json()) == {"handle": "unknown_field"}


async def test_patch_of_an_unknown_contact_is_not_found(
        api: httpx.AsyncClient, owner: Identity) -> None:
    response = await api.patch(f"{CONTACTS}/{UNKNOWN_HANDLE}", json={"city": "Bonn"},
                               headers=owner.headers)

    assert response.status_code == 404


# Deleting


async def test_deleted_contact_is_gone_from_the_api_but_kept_in_the_store(
        api: httpx.AsyncClient, services: Services, owner: Identity, account: str) -> None:
    kept = await create(api, owner, name="Kept Contact")
    gone = await create(api, owner, name="Gone Contact")
    url = f"{CONTACTS}/{gone['handle']}"

    response = await api.delete(url, headers=owner.headers)

    assert response.status_code == 204
    assert response.content == b""
    assert (await api.get(url, headers=owner.headers)).status_code == 404
    assert (await api.patch(url, json={"city": "Bonn"}, headers=owner.headers)).status_code == 404
    assert (await api.delete(url, headers=owner.headers)).status_code == 404
    listed = (await api.get(CONTACTS, headers=owner.headers)).json()["items"]
    assert [c["handle"] for c in listed] == [kept["handle"]]
    async with services.store.read() as session:
        row = (await session.execute(
            select(Contact).where(Contact.handle == gone["handle"]))).scalar_one()
    assert row.deleted_at is not None
    [event] = await events_tagged(services, "contacts:contact:deleted")
    assert (event.account, event.summary) == (account, {"contact": gone["handle"]})
