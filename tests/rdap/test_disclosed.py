"""A requester whose disclosure request was approved sees, over RDAP, the contacts the approval
covers; every such lookup is recorded."""

from __future__ import annotations

import httpx
from conftest import World
from disclosure.test_disclosure_rules import request_body
from sqlalchemy import select

from rdap.conftest import Published
from rdap.test_domain import ANONYMOUS_REDACTIONS, card, entity, find
from regshield.services import Services
from regshield.store.models import Event

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
    assert registrant["handle"] == published.holder.contact
    assert card(registrant, "fn") == [["fn", {}, "text", "Jane Example"]]
    assert card(registrant, "email") == [["email", {}, "text", "jane@example.net"]]
    assert card(registrant, "tel") == [["tel", {"type": "voice"}, "uri", "tel:+493012345678"]]
    # The tech contact is not covered: it reads as for anyone, and its paths still hold.
    assert {r["name"]["type"] for r in body["redacted"]} == {
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
    assert "Jane" not in str(accessed[0].summary)
    # An anonymous lookup still sees nothing of the registrant.
    assert "Jane Example" not in (await api.get(LOOKUP)).text
