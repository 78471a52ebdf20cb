"""Registering and changing domains through the API, against the sandbox registry over TLS."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select

from domains.conftest import NS, Holder, Registry, as_other_registrar
from regshield.registry.codec import DOMAIN_NS, HOST_NS, Secret
from regshield.registry.commands import DomainCreate
from regshield.registry.links import Registries
from regshield.services import Services
from regshield.store.models import Domain, DomainOperation, Event

DOMAINS = "/api/v1/domains"


async def register(api: httpx.AsyncClient, holder: Holder, name: str = "example.test",
                   **changes: Any) -> httpx.Response:
    body = {"name": name, "registrant": holder.contact, "years": 2, "nameservers": NS}
    body.update(changes)
    return await api.post(DOMAINS, headers=holder.headers, json=body)


async def events(services: Services, prefix: str) -> list[Event]:
    async with services.store.read() as session:
        rows = await session.scalars(select(Event).where(Event.tag.startswith(prefix))
                                     .order_by(Event.seq))
        return list(rows)


async def test_a_registration_is_confirmed_by_the_registry_and_locked(
        api: httpx.AsyncClient, holder: Holder, registry: Registry,
        services: Services) -> None:
    response = await register(api, holder)

    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["name"], body["state"], body["nameservers"], body["registrar_lock"]) == \
        ("example.test", "active", NS, True)
    assert {"clientTransferProhibited", "clientDeleteProhibited"} <= set(body["statuses"])
    assert body["expires_at"].startswith("2028-11-27")
    assert body["pending"] == []
    at_registry = registry.domain("example.test")
    assert at_registry is not None
    assert at_registry["sponsor"] == "regshield"
    assert at_registry["statuses"] == {"clientTransferProhibited", "clientDeleteProhibited"}
    confirmed = await events(services, "domains:create:confirmed")
    assert len(confirmed) == 1
    summary = confirmed[0].summary
    assert (summary["cl_trid"] and summary["sv_trid"].startswith("SANDBOX")) or summary["sv_trid"]
    assert summary["code"] == 1000 and summary["domain"] == "example.test"
    fetched = await api.get(f"{DOMAINS}/example.test", headers=holder.headers)
    assert fetched.status_code == 200 and fetched.json()["statuses"] == body["statuses"]


async def test_bad_input_names_every_field_and_writes_nothing(
        api: httpx.AsyncClient, holder: Holder, registry: Registry,
        services: Services) -> None:
    response = await register(api, holder, name="-bad-.test", registrant="RS-ZZZZZZZZZZ",
                              years=11, nameservers=[f"ns{i}.example.net" for i in range(14)])

    assert response.status_code == 422
    fields = {e["field"]: e["code"] for e in response.json()["errors"]}
    assert fields == {"name": fields["name"], "registrant": "unknown_contact",
                      "years": "out_of_range", "nameservers": "too_many"}
    async with services.store.read() as session:
        assert (await session.scalars(select(Domain))).all() == []
        assert (await session.scalars(select(DomainOperation))).all() == []
    assert registry.sql("SELECT count(*) FROM domains") == [(0,)]


async def test_a_tld_that_no_registry_serves_is_refused(
        api: httpx.AsyncClient, holder: Holder, registry: Registry) -> None:
    response = await register(api, holder, name="example.com")
    assert response.status_code == 422
    assert response.json()["errors"][0]["code"] == "tld_not_offered"


async def test_a_registry_refusal_is_reported_and_leaves_no_domain(
        api: httpx.AsyncClient, holder: Holder, registry: Registry) -> None:
    # Another registrar holds the name at the registry.
    taken = await as_other_registrar(registry, DomainCreate("taken.test", Secret("")))
    assert taken.succeeded
    response = await register(api, holder, name="taken.test")

    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["type"].endswith("registry-refused")
    assert problem["errors"][0]["field"] == "name"
    assert "2302" in problem["errors"][0]["message"]
    assert (await api.get(f"{DOMAINS}/taken.test", headers=holder.headers)).status_code == 404
    again = await register(api, holder, name="free.test")
    assert again.status_code == 201


async def test_nameservers_change_with_a_step_up_and_an_event_with_trids(
        api: httpx.AsyncClient, holder: Holder, registry: Registry,
        services: Services) -> None:
    assert (await register(api, holder)).status_code == 201
    wanted = ["ns1.example.org", "ns2.example.net"]

    response = await api.put(f"{DOMAINS}/example.test/nameservers", headers=holder.otp(),
                             json={"nameservers": wanted})

    assert response.status_code == 200, response.text
    assert response.json()["nameservers"] == wanted
    assert response.json()["operation"]["state"] == "confirmed"
    at_registry = registry.domain("example.test")
    assert at_registry is not None and set(at_registry["nameservers"]) == set(wanted)
    [event] = await events(services, "domains:nameservers:confirmed")
    assert event.summary["cl_trid"] and event.summary["sv_trid"]
    assert event.summary["requested_by"] == f"user:{holder.identity.user_id}"


async def test_renewal_extends_the_expiry_at_the_registry(
        api: httpx.AsyncClient, holder: Holder, registry: Registry) -> None:
    assert (await register(api, holder)).status_code == 201
    response = await api.post(f"{DOMAINS}/example.test/renew", headers=holder.headers,
                              json={"years": 3})
    assert response.status_code == 200, response.text
    assert response.json()["expires_at"].startswith("2031-11-27")
    at_registry = registry.domain("example.test")
    assert at_registry is not None and str(at_registry["expires_at"]).startswith("2031-11-27")


async def test_unlocking_needs_a_step_up_and_the_update_lock_is_a_separate_choice(
        api: httpx.AsyncClient, holder: Holder, registry: Registry) -> None:
    assert (await register(api, holder)).status_code == 201
    url = f"{DOMAINS}/example.test/registrar-lock"

    frozen = await api.post(url, headers=holder.headers, json={"update_lock": True})
    assert frozen.status_code == 200, frozen.text
    assert frozen.json()["update_lock"] is True
    at_registry = registry.domain("example.test")
    assert at_registry is not None and "clientUpdateProhibited" in at_registry["statuses"]
    refused = await api.put(f"{DOMAINS}/example.test/nameservers", headers=holder.otp(),
                            json={"nameservers": ["ns9.example.net"]})
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["code"] == "status_prohibits"

    holder.clock.advance(timedelta(minutes=6))  # the step-up above is no longer recent
    assert (await api.delete(url, headers=holder.headers)).status_code == 403
    unlocked = await api.delete(url, headers=holder.otp())
    assert unlocked.status_code == 200, unlocked.text
    assert (unlocked.json()["registrar_lock"], unlocked.json()["update_lock"]) == (False, False)
    at_registry = registry.domain("example.test")
    assert at_registry is not None and not at_registry["statuses"] & {
        "clientUpdateProhibited", "clientTransferProhibited", "clientDeleteProhibited"}


async def test_a_minimum_data_registry_gets_no_contacts(
        api: httpx.AsyncClient, holder: Holder, registry: Registry,
        services: Services) -> None:
    thin = replace(registry.link, contacts=False, endpoint=replace(
        registry.link.endpoint, object_uris=(DOMAIN_NS, HOST_NS)))
    await services.registries.close()
    services.registries = Registries([thin])

    response = await register(api, holder)

    assert response.status_code == 201, response.text
    assert response.json()["registrant"] == holder.contact  # kept here, as the RAA asks
    assert registry.sql("SELECT registrant, contacts FROM domains") == [(None, "[]")]
    assert registry.sql("SELECT count(*) FROM contacts") == [(0,)]


async def test_a_thick_registry_gets_the_registrant_as_a_contact_object(
        api: httpx.AsyncClient, holder: Holder, registry: Registry) -> None:
    assert (await register(api, holder)).status_code == 201
    assert registry.sql("SELECT registrant FROM domains") == [(holder.contact,)]
    assert registry.sql("SELECT sponsor_id FROM contacts WHERE handle = ?", holder.contact) \
        == [("regshield",)]
