"""Disclosure requests through the real HTTP application and flows, on both databases:
filing, the staff queue and its deadlines, acknowledgement and decision with letters to the
requester, and what an approval discloses to RDAP and WHOIS through `disclosed_access`."""

from __future__ import annotations

import email
import email.policy
from dataclasses import replace
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any

import httpx
from conftest import Identity, World
from sqlalchemy import select

from disclosure.conftest import Parties
from disclosure.test_disclosure_rules import request_body
from regshield.clock import FakeClock
from regshield.flows.context import RequestContext
from regshield.flows.disclosure import disclosed_access
from regshield.notify.delivery import MAIL_DIRECTORY
from regshield.notify.handler import handlers
from regshield.outbox.worker import OutboxWorker
from regshield.rules.disclosure import FILING_WINDOW, FILINGS_ANONYMOUS
from regshield.security.authentication import actor_for_bearer
from regshield.services import Services
from regshield.store.models import DisclosureRequest, Event

REQUESTS = "/api/v1/disclosure-requests"


async def file(api: httpx.AsyncClient, who: Identity | None, **changes: Any) -> dict[str, Any]:
    answer = await api.post(REQUESTS, headers=who.headers if who else {},
                            json=request_body(**changes))
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


async def approve(api: httpx.AsyncClient, parties: Parties, reference: str,
                  **decision: Any) -> httpx.Response:
    return await api.post(f"{REQUESTS}/{reference}/decision", headers=parties.officer.headers,
                          json={"decision": "approved", "rationale": "court order 2026/77",
                                **decision})


async def access(services: Services, who: Identity, domain: str = "example.test",
                 channel: str = "rdap") -> dict[str, frozenset[str]]:
    actor = await actor_for_bearer(services, who.token)
    return await disclosed_access(services, actor, RequestContext("api"), domain, channel)


async def events(services: Services, prefix: str) -> list[Event]:
    async with services.store.read() as session:
        rows = await session.scalars(select(Event).where(Event.tag.startswith(prefix))
                                     .order_by(Event.seq))
        return list(rows)


def letters(services: Services) -> list[EmailMessage]:
    directory = services.settings.home / MAIL_DIRECTORY
    found = []
    for path in sorted(directory.glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        found.append(message)
    return [m for m in found if "Disclosure request" in str(m["Subject"])]


def text_of(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    return str(body.get_content())


async def test_a_friday_request_is_due_for_acknowledgement_on_tuesday(
        api: httpx.AsyncClient, parties: Parties, clock: FakeClock) -> None:
    filed = await file(api, parties.requester)
    received = datetime.fromisoformat(filed["received_at"])
    assert received.weekday() == 4  # the suite's clock starts on a Friday
    assert filed["state"] == "received"
    due = datetime.fromisoformat(filed["ack_due_at"])
    assert (due.weekday(), due - received) == (1, timedelta(days=4))  # Tuesday, same hour
    assert datetime.fromisoformat(filed["decision_due_at"]) == received + timedelta(days=30)

    clock.set(due)
    on_time = await api.get(REQUESTS, params={"overdue": "true"},
                            headers=parties.officer.headers)
    assert on_time.status_code == 200, on_time.text
    assert on_time.json()["items"] == []
    clock.advance(timedelta(seconds=1))
    late = await api.get(REQUESTS, params={"overdue": "true"}, headers=parties.officer.headers)
    assert [(item["id"], item["ack_overdue"]) for item in late.json()["items"]] == \
        [(filed["id"], True)]


async def test_a_configured_holiday_is_not_a_business_day(
        api: httpx.AsyncClient, parties: Parties, services: Services, clock: FakeClock) -> None:
    monday = clock.now().date() + timedelta(days=3)  # the suite's clock starts on a Friday
    services.settings = replace(services.settings, disclosure_holidays=frozenset({monday}))
    filed = await file(api, parties.requester)
    received = datetime.fromisoformat(filed["received_at"])
    due = datetime.fromisoformat(filed["ack_due_at"])
    assert (due.weekday(), due - received) == (2, timedelta(days=5))  # Wednesday, same hour


async def test_a_denial_without_rationale_is_refused_naming_the_field(
        api: httpx.AsyncClient, parties: Parties, services: Services) -> None:
    filed = await file(api, parties.requester)
    refused = await api.post(f"{REQUESTS}/{filed['id']}/decision",
                             headers=parties.officer.headers, json={"decision": "denied"})
    assert refused.status_code == 422, refused.text
    assert [e["field"] for e in refused.json()["errors"]] == ["rationale"]
    unchanged = await api.get(f"{REQUESTS}/{filed['id']}", headers=parties.officer.headers)
    assert unchanged.json()["state"] == "received"
    assert await events(services, "disclosure:request:denied") == []


async def test_an_approval_discloses_the_roles_to_its_requester_and_records_each_access(
        api: httpx.AsyncClient, parties: Parties, services: Services) -> None:
    filed = await file(api, parties.requester, roles=["registrant", "technical"])
    assert await access(services, parties.requester) == {}
    approved = await approve(api, parties, filed["id"], roles=["registrant"])
    assert approved.status_code == 200, approved.text
    assert approved.json()["granted_roles"] == ["registrant"]

    assert await access(services, parties.requester, channel="whois") == {
        "registrant": {"name", "email"}}
    [accessed] = await events(services, "disclosure:data:accessed")
    assert accessed.actor == f"user:{parties.requester.user_id}"
    assert accessed.summary == {"domain": "example.test", "requests": [filed["id"]],
                                "roles": ["registrant"], "via": "whois",
                                "fields": {"registrant": ["email", "name"]}}
    assert await access(services, parties.requester, domain="other.test") == {}


async def test_an_expired_approval_discloses_nothing(
        api: httpx.AsyncClient, parties: Parties, services: Services, clock: FakeClock) -> None:
    filed = await file(api, parties.requester)
    expires = clock.now() + timedelta(days=2)
    answer = await approve(api, parties, filed["id"], expires_at=expires.isoformat())
    assert answer.status_code == 200, answer.text
    assert await access(services, parties.requester) == {"registrant": {"name", "email"}}
    clock.advance(timedelta(days=2))
    assert await access(services, parties.requester) == {}
    read = await api.get(f"{REQUESTS}/{filed['id']}", headers=parties.requester.headers)
    assert read.json()["state"] == "expired"
    assert len(await events(services, "disclosure:data:accessed")) == 1


async def test_another_users_approval_discloses_nothing_to_them(
        api: httpx.AsyncClient, parties: Parties, services: Services, world: World) -> None:
    filed = await file(api, parties.requester)
    assert (await approve(api, parties, filed["id"])).status_code == 200
    colleague = await world.user("owner", await world.account())
    assert await access(services, colleague) == {}
    assert await access(services, parties.holder.identity) == {}
    hidden = await api.get(f"{REQUESTS}/{filed['id']}", headers=colleague.headers)
    assert hidden.status_code == 404
    assert (await api.get(REQUESTS, headers=colleague.headers)).json()["items"] == []
    assert await events(services, "disclosure:data:accessed") == []


async def test_customers_cannot_acknowledge_or_decide(
        api: httpx.AsyncClient, parties: Parties, services: Services) -> None:
    filed = await file(api, parties.requester)
    for who in (parties.requester, parties.holder.identity):
        decided = await api.post(f"{REQUESTS}/{filed['id']}/decision", headers=who.headers,
                                 json={"decision": "approved", "rationale": "I say so"})
        assert decided.status_code == 403, decided.text
        acknowledged = await api.post(f"{REQUESTS}/{filed['id']}/acknowledge",
                                      headers=who.headers)
        assert acknowledged.status_code == 403, acknowledged.text
    assert len(await events(services, "authz:permission:denied")) == 4
    assert await access(services, parties.requester) == {}


async def test_an_anonymous_request_gets_a_reference_and_can_only_be_denied(
        api: httpx.AsyncClient, parties: Parties, services: Services) -> None:
    filed = await file(api, None, requester_email="tips@consumer.example")
    assert filed["id"].startswith("dsc_") and filed["requester_user"] is None
    assert (await api.get(f"{REQUESTS}/{filed['id']}")).status_code == 401
    refused = await approve(api, parties, filed["id"])
    assert refused.status_code == 422
    assert [(e["field"], e["code"]) for e in refused.json()["errors"]] == \
        [("decision", "requester_not_authenticated")]
    denied = await api.post(f"{REQUESTS}/{filed['id']}/decision",
                            headers=parties.officer.headers,
                            json={"decision": "denied", "rationale": "no legal basis shown"})
    assert denied.status_code == 200 and denied.json()["state"] == "denied"
    await OutboxWorker(services, handlers()).run_once()
    [letter] = letters(services)
    assert str(letter["To"]) == "tips@consumer.example"
    assert "DENIED" in text_of(letter) and "no legal basis shown" in text_of(letter)


async def test_bad_requests_name_every_field_and_an_unsponsored_domain(
        api: httpx.AsyncClient, parties: Parties) -> None:
    answer = await api.post(REQUESTS, json=request_body(domain="elsewhere.test", purpose="x",
                                                        requester_email=...))
    assert answer.status_code == 422, answer.text
    assert sorted(e["field"] for e in answer.json()["errors"]) == \
        ["domain", "purpose", "requester_email"]
    forged = await api.post(REQUESTS, json=request_body(),
                            headers={"Authorization": "Bearer rs_forged"})
    assert forged.status_code == 401


async def test_the_requesters_data_is_sealed_at_rest(
        api: httpx.AsyncClient, parties: Parties, services: Services) -> None:
    filed = await file(api, parties.requester)
    assert (await approve(api, parties, filed["id"])).status_code == 200
    async with services.store.read() as session:
        row = (await session.scalars(select(DisclosureRequest))).one()
        stored = b"".join(value if isinstance(value, bytes) else str(value).encode()
                          for value in (row.requester_sealed, row.rationale_sealed,
                                        row.purpose, row.roles, row.fields))
    for secret in (b"alex.doe@police.example", b"Alex Doe", b"case 2026/1234",
                   b"court order"):
        assert secret not in stored
    logged = b"".join(str(e.summary).encode() for e in await events(services, ""))
    assert b"alex.doe" not in logged and b"court order" not in logged


async def test_the_whole_path_over_http(
        api: httpx.AsyncClient, parties: Parties, services: Services, clock: FakeClock) -> None:
    policy = await api.get(f"{REQUESTS}/policy")
    assert policy.status_code == 200
    assert "2 business days" in policy.json()["timeline"]["acknowledgement"]

    filed = await file(api, parties.requester)
    assert filed["requester_user"] == parties.requester.user_id
    mine = await api.get(REQUESTS, headers=parties.requester.headers)
    assert [item["id"] for item in mine.json()["items"]] == [filed["id"]]

    clock.advance(timedelta(hours=3))
    acknowledged = await api.post(f"{REQUESTS}/{filed['id']}/acknowledge",
                                  headers=parties.officer.headers)
    assert acknowledged.status_code == 200, acknowledged.text
    assert acknowledged.json()["state"] == "acknowledged"
    again = await api.post(f"{REQUESTS}/{filed['id']}/acknowledge",
                           headers=parties.officer.headers)
    assert again.status_code == 409

    decided = await approve(api, parties, filed["id"])
    assert decided.status_code == 200, decided.text
    body = decided.json()
    assert body["state"] == "approved" and body["rationale"] == "court order 2026/77"
    assert datetime.fromisoformat(body["expires_at"]) == clock.now() + timedelta(days=30)

    worker = OutboxWorker(services, handlers())
    await worker.run_once()
    await worker.run_once()  # a second pass sends nothing twice
    sent = letters(services)
    assert sorted(str(m["Subject"]).split()[-2] for m in sent) == ["acknowledged:", "approved:"]
    assert {str(m["To"]) for m in sent} == {"alex.doe@police.example"}
    approval = next(m for m in sent if "approved" in str(m["Subject"]))
    assert "court order 2026/77" in text_of(approval)
    assert "for these fields only: email, name." in text_of(approval)
    assert parties.requester.user_id in text_of(approval)

    tags = [e.tag for e in await events(services, "disclosure:")]
    assert tags == ["disclosure:request:requested", "disclosure:request:acknowledged",
                    "disclosure:request:approved"]
    assert len([e for e in await events(services, "notify:email:sent")
                if e.summary["recipient"] == f"disclosure:{filed['id']}"]) == 2

    withdrawn = await api.post(f"{REQUESTS}/{filed['id']}/withdraw",
                               headers=parties.requester.headers)
    assert withdrawn.status_code == 200 and withdrawn.json()["state"] == "withdrawn"
    assert await access(services, parties.requester) == {}


async def test_anonymous_filing_is_limited_per_address_and_the_refusal_recorded(
        api: httpx.AsyncClient, parties: Parties, services: Services, clock: FakeClock) -> None:
    for _ in range(FILINGS_ANONYMOUS):
        await file(api, None)
    refused = await api.post(REQUESTS, json=request_body())
    assert refused.status_code == 429, refused.text
    assert int(refused.headers["Retry-After"]) > 0
    assert len(await events(services, "disclosure:request:throttled")) == 1
    assert len(await events(services, "disclosure:request:requested")) == FILINGS_ANONYMOUS
    # A signed-in requester has a window of their own.
    await file(api, parties.requester)
    clock.advance(FILING_WINDOW)
    await file(api, None)


async def test_the_staff_queue_lists_late_acknowledgements_before_newer_requests(
        api: httpx.AsyncClient, parties: Parties, clock: FakeClock) -> None:
    first = await file(api, parties.requester)
    clock.advance(timedelta(days=5))
    second = await file(api, None)
    decided = await file(api, parties.requester)
    denied = await api.post(f"{REQUESTS}/{decided['id']}/decision",
                            headers=parties.officer.headers,
                            json={"decision": "denied", "rationale": "not proportionate"})
    assert denied.status_code == 200, denied.text
    queue = await api.get(REQUESTS, headers=parties.officer.headers)
    assert [(item["id"], item["state"], item["ack_overdue"])
            for item in queue.json()["items"]] == [
        (first["id"], "received", True), (second["id"], "received", False),
        (decided["id"], "denied", False)]
    holders_view = await api.get(REQUESTS, headers=parties.holder.headers)
    assert holders_view.json()["items"] == []


async def test_rdap_shows_the_approved_requester_the_registrant_and_records_the_lookup(
        api: httpx.AsyncClient, parties: Parties, services: Services) -> None:
    lookup = "/rdap/domain/example.test"
    filed = await file(api, parties.requester)
    before = await api.get(lookup, headers=parties.requester.headers)
    assert before.status_code == 200, before.text
    assert "Jane Example" not in before.text
    assert (await approve(api, parties, filed["id"])).status_code == 200

    after = await api.get(lookup, headers=parties.requester.headers)
    assert after.status_code == 200, after.text
    assert "Jane Example" in after.text and "jane@example.net" in after.text
    anonymous = await api.get(lookup)
    assert "Jane Example" not in anonymous.text
    [accessed] = await events(services, "disclosure:data:accessed")
    assert accessed.summary["via"] == "rdap" and accessed.summary["requests"] == [filed["id"]]
