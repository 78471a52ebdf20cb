"""Staff reads of personal data leave an event: contacts read through the API, a domain looked
up in RDAP as staff, a contact looked up by handle, a domain search. The event names the
actor, the contacts by handle and the domains by name, never a value of the data; a customer
reading its own contacts, and anonymous RDAP, leave none."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from rdap.conftest import TECH, Published
from regshield.services import Services
from regshield.store.models import Event

READ = "contacts:contact:read"
PERSONAL = ("Jane Example", "jane@example.net", "12345678", "Invalidenstrasse", "Tom Tech",
            "tom@ops.example")


async def reads(services: Services) -> list[Event]:
    async with services.store.read() as session:
        return list(await session.scalars(select(Event).where(Event.tag == READ)
                                          .order_by(Event.seq)))


async def test_staff_reads_of_personal_data_are_recorded_without_the_data(
        api: httpx.AsyncClient, published: Published, services: Services) -> None:
    holder, staff = published.holder, published.staff
    registrant, tech = holder.contact, published.tech

    # The customer reads its own contacts, anonymous RDAP reads the redacted record: no event.
    assert (await api.get(f"/api/v1/contacts/{registrant}", headers=holder.headers)).is_success
    assert (await api.get("/api/v1/contacts", headers=holder.headers)).is_success
    assert (await api.get("/rdap/domain/example.test")).is_success
    assert await reads(services) == []

    one = await api.get(f"/api/v1/contacts/{registrant}", headers=staff.headers)
    listed = await api.get("/api/v1/contacts", headers=staff.headers)
    looked_up = await api.get("/rdap/domain/example.test", headers=staff.headers)
    by_handle = await api.get(f"/rdap/entity/{tech}", headers=staff.headers)
    searched = await api.get("/rdap/domains", params={"name": "example*"},
                             headers=staff.headers)
    for answer in (one, listed, looked_up, by_handle, searched):
        assert answer.status_code == 200, answer.text
    assert TECH["email"] in by_handle.text  # staff do see the data ...

    recorded = await reads(services)
    assert [(e.summary["via"], sorted(e.summary["contacts"]), e.summary.get("domains"))
            for e in recorded] == [
        ("api", [registrant], None),
        ("api", sorted([registrant, tech]), None),
        ("rdap", sorted([registrant, tech]), ["example.test"]),
        ("rdap", [tech], None),
        ("rdap-search", sorted([registrant, tech]), ["example.test"]),
    ]
    for event in recorded:  # ... and each read is on the record, by whom, never what
        assert event.actor == f"user:{staff.user_id}"
        assert event.request_id and event.channel == "api"
        assert not any(value in str(event.summary) for value in PERSONAL)
    assert recorded[0].account == holder.identity.account
