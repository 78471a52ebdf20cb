"""A requester whose disclosure request was approved sees, over RDAP, exactly the fields the
approval covers of the contacts it covers, and WHOIS renders the same; every such lookup is
recorded."""

from __future__ import annotations

import httpx
from conftest import Identity, World
from disclosure.test_disclosure_rules import request_body
from sqlalchemy import select
from whois.conftest import whois_server
from whois.test_port43 import fields as whois_fields
from whois.test_port43 import raw_query

from rdap.conftest import Published
from rdap.test_domain import ANONYMOUS_REDACTIONS, card, entity, find
from regshield.flows.context import RequestContext
from regshield.rdds.record import load_domain, persona_of, present
from regshield.rdds.whois import REDACTED, WhoisServer, render
from regshield.rules.redaction import Persona
from regshield.security.authentication import actor_for_bearer
from regshield.services import Services
from regshield.store.models import Event

__all__ = ["whois_server"]

REQUESTS = "/api/v1/disclosure-requests"
LOOKUP = "/rdap/domain/example.test"


async def test_an_approved_requester_sees_the_covered_contact_and_the_access_is_recorded(
        api: httpx.AsyncClient, published: Published, world: World,
        services: Services) -> None:
    requester = await world.user("member", await world.account())
    officer = await world.user("compliance")
    filed = await api.post(REQUESTS, headers=requester.headers,
                           json=request_body(roles=["registrant"]))
    assert filed.status_code == 201, filed.text
    before = (await api.get(LOOKUP, headers=requester.headers)).json()
    assert {r["name"]["type"] for r in before["redacted"]} == ANONYMOUS_REDACTIONS
    decided = await api.post(f"{REQUESTS}/{filed.json()['id']}/decision",
                             headers=officer.headers,
                             json={"decision": "approved", "rationale": "court order 2026/77",
                                   "roles": ["registrant"]})
    assert decided.status_code == 200, decided.text

    response = await api.get(LOOKUP, headers=requester.headers)

    assert response.status_code == 200, response.text
    body = response.json()
    registrant = entity(body, "registrant")
    assert "handle" not in registrant  # not a field an approval opens
    assert card(registrant, "fn") == [["fn", {}, "text", "Jane Example"]]
    assert card(registrant, "email") == [["email", {}, "text", "jane@example.net"]]
    # The request asked for name and email: everything else of the registrant stays redacted,
    # and the tech contact, not covered, reads as for anyone; every path still holds.
    assert card(registrant, "tel") == []
    assert {r["name"]["type"] for r in body["redacted"]} == {
        "Registry Registrant ID", "Registrant Organization", "Registrant Street",
        "Registrant City", "Registrant Postal Code", "Registrant Phone", "Registrant Fax",
        "Registry Tech ID", "Tech Name", "Tech Phone", "Tech Email"}
    assert "Tom Tech" not in response.text
    for member in body["redacted"]:
        if member["method"] == "removal":
            assert find(member["prePath"], body) == []
    assert "redacted" in body["rdapConformance"]
    async with services.store.read() as session:
        accessed = list(await session.scalars(select(Event).where(
            Event.tag == "disclosure:data:accessed")))
    assert len(accessed) == 1
    assert accessed[0].actor == f"user:{requester.user_id}"
    assert accessed[0].summary["via"] == "rdap" and accessed[0].summary["roles"] == ["registrant"]
    assert accessed[0].summary["fields"] == {"registrant": ["email", "name"]}
    assert "Jane" not in str(accessed[0].summary)
    # An anonymous lookup still sees nothing of the registrant.
    assert "Jane Example" not in (await api.get(LOOKUP)).text


async def approved_requester(api: httpx.AsyncClient, world: World, **asked: object) -> Identity:
    requester = await world.user("member", await world.account())
    officer = await world.user("compliance")
    filed = await api.post(REQUESTS, headers=requester.headers, json=request_body(**asked))
    assert filed.status_code == 201, filed.text
    decided = await api.post(f"{REQUESTS}/{filed.json()['id']}/decision",
                             headers=officer.headers,
                             json={"decision": "approved", "rationale": "court order 2026/78"})
    assert decided.status_code == 200, decided.text
    assert decided.json()["granted_fields"] == sorted(asked["fields"])  # type: ignore[arg-type]
    return requester


async def test_disclosure_of_name_shows_no_phone_or_email(
        api: httpx.AsyncClient, published: Published, world: World, services: Services,
        whois_server: WhoisServer) -> None:
    requester = await approved_requester(api, world, roles=["registrant", "technical"],
                                         fields=["name", "organization", "street"])

    # RDAP, the real route, with the requester's credentials.
    response = await api.get(LOOKUP, headers=requester.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    registrant, tech = entity(body, "registrant"), entity(body, "technical")
    assert card(registrant, "fn") == [["fn", {}, "text", "Jane Example"]]
    assert card(registrant, "org") == [["org", {}, "text", "Example GmbH"]]
    assert card(registrant, "adr")[0][3][2] == "Invalidenstrasse 116"
    assert card(tech, "fn") == [["fn", {}, "text", "Tom Tech"]]  # name: a tech field too
    for contact in (registrant, tech):
        assert card(contact, "tel") == [] and card(contact, "email") == []
    for secret in ("jane@example.net", "12345678", "tom@ops.example", "79460000", "Ops Ltd",
                   "1 Hosting Way", "10115"):
        assert secret not in response.text, secret
    assert {"Registrant Phone", "Registrant Email", "Registrant City", "Registrant Postal Code",
            "Tech Phone", "Tech Email"} <= {r["name"]["type"] for r in body["redacted"]}

    # WHOIS: port 43 has no credentials, so it answers as for anyone ...
    anonymous = whois_fields(await raw_query(whois_server, b"example.test\r\n"))
    assert anonymous["Registrant Name"] == [REDACTED]
    assert anonymous["Registrant Phone"] == [REDACTED]
    assert "jane@example.net" not in str(anonymous) and "Tom Tech" not in str(anonymous)
    # ... and the record WHOIS renders for the requester's approval holds the same fields.
    actor = await actor_for_bearer(services, requester.token)
    record = await load_domain(services.store, services.sealer, "example.test",
                               registrar_url=services.settings.registrar_url)
    assert record is not None
    persona, disclosed = await persona_of(services, actor, RequestContext("api"), record,
                                          "whois")
    assert persona is Persona.DISCLOSED
    text = render(present(record, persona, public_url=services.settings.public_url,
                          disclosed=disclosed), whois_server=whois_server.whois_server,
                  now=services.clock.now(), terms_url=services.settings.terms_url)
    seen = whois_fields(text)
    assert seen["Registrant Name"] == ["Jane Example"]
    assert seen["Registrant Organization"] == ["Example GmbH"]
    assert seen["Registrant Street"] == ["Invalidenstrasse 116"]
    assert seen["Tech Name"] == ["Tom Tech"]
    assert seen["Registrant Phone"] == [REDACTED] and seen["Tech Phone"] == [REDACTED]
    assert seen["Registrant City"] == [REDACTED]
    assert "jane@example.net" not in text and "tom@ops.example" not in text
    assert "12345678" not in text and "79460000" not in text
