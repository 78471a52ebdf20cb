"""A change of registrant by editing the registrant's contact: the name, organization or
email of a live domain's registrant is the holder of the domain (Transfer Policy, Material
Change), so editing them is a change of registrant like `PUT .../registrant`: a step-up, a
notice to the previous and the new address, the 60-day transfer lock or the opt-out, the
`domains:registrant:*` events. Every edit of a contact a domain uses reaches the registries
that hold contact objects as a contact:update."""

from __future__ import annotations

import email
import email.policy
import json
from dataclasses import replace
from datetime import timedelta
from email.message import EmailMessage
from typing import Any

import httpx
import pytest
from conftest import World
from sqlalchemy import select

from domains.conftest import Holder, Registry
from domains.test_lifecycle import DOMAINS, events, register
from domains.test_registry_lock import locked, with_credential
from regshield.clock import FakeClock
from regshield.flows.operations import run_queued
from regshield.notify.delivery import MAIL_DIRECTORY
from regshield.notify.handler import handlers
from regshield.outbox.worker import OutboxWorker
from regshield.registry.codec import DOMAIN_NS, HOST_NS
from regshield.registry.links import Registries
from regshield.services import Services
from regshield.store.models import OutboxItem

CONTACTS = "/api/v1/contacts"
OLD_EMAIL = "jane@example.net"  # contact_samples.contact_body()
NEW_EMAIL = "mallory@attacker.example"


def contact_url(holder: Holder) -> str:
    return f"{CONTACTS}/{holder.contact}"


async def unlocked_domain(api: httpx.AsyncClient, holder: Holder) -> None:
    """example.test with the registrar lock off: clientTransferProhibited then comes only
    from a transfer lock."""
    assert (await register(api, holder)).status_code == 201
    response = await api.delete(f"{DOMAINS}/example.test/registrar-lock", headers=holder.otp())
    assert response.status_code == 200, response.text


def at_registry(registry: Registry, handle: str) -> dict[str, Any]:
    """The sandbox registry's copy of a contact object."""
    [(postal, address, voice)] = registry.sql(
        "SELECT postal_info, email, voice FROM contacts WHERE handle = ? "
        "AND deleted_at IS NULL", handle)
    [info] = json.loads(postal)
    return {"name": info["name"], "org": info["org"], "email": address,
            "voice": json.loads(voice)["number"]}


async def stored(api: httpx.AsyncClient, holder: Holder) -> dict[str, Any]:
    response = await api.get(contact_url(holder), headers=holder.headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def domain(api: httpx.AsyncClient, holder: Holder) -> dict[str, Any]:
    response = await api.get(f"{DOMAINS}/example.test", headers=holder.headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def sent_mail(services: Services) -> list[EmailMessage]:
    """Run the outbox once and read every message written to the mail directory."""
    await OutboxWorker(services, {**handlers(), "registry:operation": run_queued}).run_once()
    directory = services.settings.home / MAIL_DIRECTORY
    return [email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            for path in sorted(directory.glob("*.eml"))]  # type: ignore[misc]


def to(messages: list[EmailMessage], subject: str) -> list[str]:
    return sorted(str(m["To"]) for m in messages if subject in str(m["Subject"]))


async def untouched(api: httpx.AsyncClient, holder: Holder, registry: Registry,
                    services: Services) -> None:
    """The registrant is as registered: here, at the registry, in the events and locks."""
    kept = await stored(api, holder)
    assert (kept["name"], kept["email"]) == ("Jane Example", OLD_EMAIL)
    assert at_registry(registry, holder.contact)["email"] == OLD_EMAIL
    assert await events(services, "domains:registrant:") == []
    assert await events(services, "contacts:contact:updated") == []
    assert "change_of_registrant_lock" not in (await domain(api, holder))["holds"]


async def test_member_token_cannot_change_registrant_name_by_editing_the_contact(
        api: httpx.AsyncClient, holder: Holder, registry: Registry, world: World,
        services: Services) -> None:
    assert (await register(api, holder)).status_code == 201
    member = await world.user("member", holder.identity.account)

    for body in ({"name": "Mallory Attacker"}, {"organization": "Attacker Ltd"},
                 {"name": "Mallory Attacker", "email": NEW_EMAIL}):
        response = await api.patch(contact_url(holder), headers=member.headers, json=body)
        assert response.status_code == 403, response.text
        assert response.json()["type"].endswith(":step-up-required")

    await untouched(api, holder, registry, services)
    async with services.store.read() as session:
        kinds = {row.payload.get("change") for row in await session.scalars(
            select(OutboxItem).where(OutboxItem.kind == "notify:email"))}
    assert "registrant_data" not in kinds


async def test_star_token_cannot_change_registrant_email_without_step_up(
        api: httpx.AsyncClient, holder: Holder, registry: Registry,
        services: Services) -> None:
    assert (await register(api, holder)).status_code == 201
    issued = await api.post("/api/v1/tokens", headers=holder.otp(),
                            json={"name": "automation", "scopes": ["*"]})
    assert issued.status_code == 201, issued.text
    automation = {"Authorization": f"Bearer {issued.json()['token']}"}

    plain = await api.patch(contact_url(holder), headers=automation,
                            json={"email": NEW_EMAIL})
    code = holder.otp()["X-OTP"]  # a valid code does not help a token that cannot step up
    with_code = await api.patch(contact_url(holder), headers={**automation, "X-OTP": code},
                                json={"email": NEW_EMAIL})
    # Nor does the stepping-up token without a fresh code.
    stale = await api.patch(contact_url(holder), headers=holder.headers,
                            json={"email": NEW_EMAIL})

    for response in (plain, with_code, stale):
        assert response.status_code == 403, response.text
    await untouched(api, holder, registry, services)


async def test_contact_edit_with_step_up_notifies_previous_and_new_address_and_locks_transfers(
        api: httpx.AsyncClient, holder: Holder, registry: Registry,
        services: Services) -> None:
    await unlocked_domain(api, holder)
    assert "clientTransferProhibited" not in (await domain(api, holder))["statuses"]

    response = await api.patch(contact_url(holder), headers=holder.otp(),
                               json={"name": "Erika Mustermann", "email": NEW_EMAIL})

    assert response.status_code == 200, response.text
    assert (response.json()["name"], response.json()["email"]) == \
        ("Erika Mustermann", NEW_EMAIL)
    fetched = await domain(api, holder)
    assert "change_of_registrant_lock" in fetched["holds"]
    assert "clientTransferProhibited" in fetched["statuses"]
    held = registry.domain("example.test")
    assert held is not None and "clientTransferProhibited" in held["statuses"]
    requested = await events(services, "domains:registrant:requested")
    confirmed = await events(services, "domains:registrant:confirmed")
    assert [e.summary["domain"] for e in requested] == ["example.test"]
    assert [e.summary["domain"] for e in confirmed] == ["example.test"]
    assert requested[0].summary["fields"] == ["email", "name"]
    assert requested[0].summary["transfer_lock_until"] is not None
    assert requested[0].summary["opted_out"] is False
    assert NEW_EMAIL not in json.dumps([e.summary for e in requested + confirmed])
    # The edited registrant is verified again (WHOIS Accuracy Program), as before.
    assert [e.summary["cause"] for e in await events(services, "accuracy:verification:started")
            ][-1] == "contact_update"

    messages = await sent_mail(services)

    assert to(messages, "Registrant changed") == sorted(
        [OLD_EMAIL, NEW_EMAIL, holder.identity.email])
    notice = next(m for m in messages if "Registrant changed" in str(m["Subject"])
                  and str(m["To"]) == OLD_EMAIL)
    body = notice.get_body(preferencelist=("plain",))
    assert body is not None
    text = body.get_content()
    assert "example.test" in text and holder.contact in text
    assert "cannot be transferred to another registrar until" in text
    assert NEW_EMAIL not in text and "Erika" not in text  # the notice repeats no data
    async with services.store.read() as session:
        payloads = [row.payload for row in await session.scalars(select(OutboxItem))]
    assert OLD_EMAIL not in json.dumps(payloads)  # the previous address is sealed


async def test_contact_edit_opt_out_skips_the_lock(
        api: httpx.AsyncClient, holder: Holder, registry: Registry,
        services: Services) -> None:
    await unlocked_domain(api, holder)

    response = await api.patch(contact_url(holder), headers=holder.otp(), json={
        "organization": "Mustermann AG", "opt_out_of_transfer_lock": True})

    assert response.status_code == 200, response.text
    assert response.json()["organization"] == "Mustermann AG"
    fetched = await domain(api, holder)
    assert "change_of_registrant_lock" not in fetched["holds"]
    assert "clientTransferProhibited" not in fetched["statuses"]
    [requested] = await events(services, "domains:registrant:requested")
    assert requested.summary["opted_out"] is True
    assert requested.summary["transfer_lock_until"] is None
    messages = await sent_mail(services)
    assert to(messages, "Registrant changed") == sorted([OLD_EMAIL, holder.identity.email])


async def test_contact_edit_is_pushed_to_the_registry_as_contact_update(
        api: httpx.AsyncClient, holder: Holder, registry: Registry,
        services: Services) -> None:
    assert (await register(api, holder)).status_code == 201
    assert at_registry(registry, holder.contact)["name"] == "Jane Example"

    response = await api.patch(contact_url(holder), headers=holder.otp(), json={
        "name": "Erika Mustermann", "organization": None, "email": NEW_EMAIL,
        "phone": "+49 30 87654321"})

    assert response.status_code == 200, response.text
    assert at_registry(registry, holder.contact) == {
        "name": "Erika Mustermann", "org": None, "email": NEW_EMAIL,
        "voice": "+49.3087654321"}
    [pushed] = await events(services, "domains:contact_update:confirmed")
    assert pushed.summary["contact"] == holder.contact
    assert [e["command"] for e in pushed.summary["exchanges"]] == ["contact:update"]
    assert pushed.summary["sv_trid"]


async def test_an_unreachable_registry_gets_the_contact_update_from_the_outbox(
        api: httpx.AsyncClient, holder: Holder, registry: Registry, services: Services,
        clock: FakeClock) -> None:
    assert (await register(api, holder)).status_code == 201
    await registry.restart(clock, down=True)

    response = await api.patch(contact_url(holder), headers=holder.headers,
                               json={"phone": "+49 30 87654321"})

    assert response.status_code == 200, response.text
    # The answer says the registry has not got it yet.
    assert [(o["kind"], o["state"]) for o in response.json()["registry_operations"]] == [
        ("contact_update", "pending")]
    assert await events(services, "domains:contact_update:confirmed") == []
    await registry.restart(clock)
    await sent_mail(services)
    assert at_registry(registry, holder.contact)["voice"] == "+49.3087654321"
    assert len(await events(services, "domains:contact_update:confirmed")) == 1


async def test_phone_change_of_registrant_needs_no_step_up(
        api: httpx.AsyncClient, holder: Holder, registry: Registry, world: World,
        services: Services) -> None:
    await unlocked_domain(api, holder)
    member = await world.user("member", holder.identity.account)

    response = await api.patch(contact_url(holder), headers=member.headers, json={
        "phone": "+49 30 87654321", "street": ["Unter den Linden 1"]})

    assert response.status_code == 200, response.text
    assert [(o["kind"], o["state"]) for o in response.json()["registry_operations"]] == [
        ("contact_update", "confirmed")]
    assert at_registry(registry, holder.contact)["voice"] == "+49.3087654321"
    fetched = await domain(api, holder)
    assert "change_of_registrant_lock" not in fetched["holds"]
    assert await events(services, "domains:registrant:") == []
    messages = await sent_mail(services)
    assert to(messages, "Contact data changed") == sorted([OLD_EMAIL, holder.identity.email])
    assert to(messages, "Registrant changed") == []


async def test_a_tech_contact_edit_is_pushed_but_is_no_change_of_registrant(
        api: httpx.AsyncClient, holder: Holder, registry: Registry, world: World,
        services: Services) -> None:
    await unlocked_domain(api, holder)
    created = await api.post(CONTACTS, headers=holder.headers, json={
        "name": "Tech Desk", "email": "tech@example.org", "phone": "+49 30 1111111",
        "street": ["Invalidenstrasse 116"], "city": "Berlin", "postal_code": "10115",
        "country": "de"})
    assert created.status_code == 201, created.text
    tech = created.json()["handle"]
    assert (await api.put(f"{DOMAINS}/example.test/contacts", headers=holder.headers,
                          json={"tech": tech})).status_code == 200
    member = await world.user("member", holder.identity.account)

    response = await api.patch(f"{CONTACTS}/{tech}", headers=member.headers,
                               json={"name": "Other Desk", "email": "desk@example.org"})

    assert response.status_code == 200, response.text
    assert at_registry(registry, tech)["name"] == "Other Desk"
    assert await events(services, "domains:registrant:") == []
    assert "change_of_registrant_lock" not in (await domain(api, holder))["holds"]
    messages = await sent_mail(services)
    assert to(messages, "Contact data changed") == sorted(
        ["desk@example.org", "tech@example.org", holder.identity.email])


async def test_a_minimum_data_registry_gets_no_contact_update(
        api: httpx.AsyncClient, holder: Holder, registry: Registry,
        services: Services) -> None:
    thin = replace(registry.link, contacts=False, endpoint=replace(
        registry.link.endpoint, object_uris=(DOMAIN_NS, HOST_NS)))
    await services.registries.close()
    services.registries = Registries([thin])
    assert (await register(api, holder)).status_code == 201

    response = await api.patch(contact_url(holder), headers=holder.otp(),
                               json={"email": NEW_EMAIL})

    assert response.status_code == 200, response.text
    assert await events(services, "domains:contact_update:") == []
    assert registry.sql("SELECT count(*) FROM contacts") == [(0,)]
    # Still a change of registrant: the lock and the events do not depend on the registry.
    assert "change_of_registrant_lock" in (await domain(api, holder))["holds"]
    assert len(await events(services, "domains:registrant:confirmed")) == 1


async def test_a_registry_locked_registrant_cannot_be_renamed_by_editing_the_contact(
        api: httpx.AsyncClient, holder: Holder, registry: Registry,
        services: Services) -> None:
    assert (await register(api, holder)).status_code == 201
    await with_credential(api, holder)
    await locked(api, holder, services)

    response = await api.patch(contact_url(holder), headers=holder.otp(),
                               json={"name": "Mallory Attacker", "email": NEW_EMAIL})

    assert response.status_code == 422, response.text
    errors = response.json()["errors"]
    assert sorted(e["field"] for e in errors) == ["email", "name"]
    assert {e["code"] for e in errors} == {"registry_locked"}
    assert "example.test" in errors[0]["message"]
    await untouched(api, holder, registry, services)
    # What does not change the holder (a phone number) goes through.
    phone = await api.patch(contact_url(holder), headers=holder.headers,
                            json={"phone": "+49 30 87654321"})
    assert phone.status_code == 200, phone.text


async def test_a_registrant_of_two_domains_changes_both_and_is_told_once(
        api: httpx.AsyncClient, holder: Holder, registry: Registry,
        services: Services) -> None:
    assert (await register(api, holder)).status_code == 201
    assert (await register(api, holder, "second.test")).status_code == 201

    response = await api.patch(contact_url(holder), headers=holder.otp(),
                               json={"email": NEW_EMAIL})

    assert response.status_code == 200, response.text
    confirmed = await events(services, "domains:registrant:confirmed")
    assert sorted(e.summary["domain"] for e in confirmed) == ["example.test", "second.test"]
    for name in ("example.test", "second.test"):
        fetched = await api.get(f"{DOMAINS}/{name}", headers=holder.headers)
        assert "change_of_registrant_lock" in fetched.json()["holds"]
    # One registry holds the contact: one contact:update.
    assert len(await events(services, "domains:contact_update:confirmed")) == 1
    messages = [m for m in await sent_mail(services)
                if "Registrant changed" in str(m["Subject"])]
    assert sorted(str(m["To"]) for m in messages) == sorted(
        [OLD_EMAIL, NEW_EMAIL, holder.identity.email])
    body = messages[0].get_body(preferencelist=("plain",))
    assert body is not None and "example.test, second.test" in body.get_content()


async def test_under_the_tpr_a_contact_edit_is_told_but_locks_nothing(
        api: httpx.AsyncClient, holder: Holder, registry: Registry, services: Services,
        clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(services, "settings", replace(
        services.settings, tpr_effective=(clock.now() - timedelta(days=1)).date()))
    assert (await register(api, holder)).status_code == 201

    refused = await api.patch(contact_url(holder), headers=holder.headers,
                              json={"name": "Mallory Attacker"})
    response = await api.patch(contact_url(holder), headers=holder.otp(),
                               json={"name": "Erika Mustermann"})

    assert refused.status_code == 403, refused.text
    assert response.status_code == 200, response.text
    assert "change_of_registrant_lock" not in (await domain(api, holder))["holds"]
    [requested] = await events(services, "domains:registrant:requested")
    assert requested.summary["transfer_lock_until"] is None
    messages = await sent_mail(services)
    assert to(messages, "Registrant changed") == sorted([OLD_EMAIL, holder.identity.email])


async def test_a_contact_edited_while_unused_is_brought_up_to_date_when_linked_again(
        api: httpx.AsyncClient, holder: Holder, registry: Registry,
        services: Services) -> None:
    assert (await register(api, holder)).status_code == 201
    created = await api.post(CONTACTS, headers=holder.headers, json={
        "name": "Tech Desk", "email": "tech@example.org", "phone": "+49 30 1111111",
        "street": ["Invalidenstrasse 116"], "city": "Berlin", "postal_code": "10115",
        "country": "de"})
    tech = created.json()["handle"]
    url = f"{DOMAINS}/example.test/contacts"
    assert (await api.put(url, headers=holder.headers, json={"tech": tech})).status_code == 200
    assert (await api.put(url, headers=holder.headers, json={"tech": None})).status_code == 200
    edited = await api.patch(f"{CONTACTS}/{tech}", headers=holder.headers,
                             json={"name": "Other Desk"})
    assert edited.status_code == 200, edited.text
    assert at_registry(registry, tech)["name"] == "Tech Desk"  # no domain there uses it

    linked = await api.put(url, headers=holder.headers, json={"tech": tech})

    assert linked.status_code == 200, linked.text
    assert at_registry(registry, tech)["name"] == "Other Desk"


async def test_the_registrant_of_a_live_domain_cannot_be_deleted_from_under_it(
        api: httpx.AsyncClient, holder: Holder, registry: Registry, services: Services) -> None:
    assert (await register(api, holder)).status_code == 201

    response = await api.delete(contact_url(holder), headers=holder.otp())

    assert response.status_code == 409, response.text
    assert "example.test" in response.json()["detail"]
    assert (await stored(api, holder))["handle"] == holder.contact
    assert await events(services, "contacts:contact:deleted") == []
