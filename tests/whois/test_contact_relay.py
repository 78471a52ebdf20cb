"""The contact relay form that WHOIS and RDAP name in place of a redacted email: a message
reaches the contact's real address, the sender never sees it, and the form is no spam cannon."""

from __future__ import annotations

import email
import email.policy
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from email.message import EmailMessage
from typing import Any

import httpx
import pytest
from notify.conftest import SmtpServer, send_through
from sqlalchemy import select

from regshield.api.app import create_app
from regshield.clock import FakeClock
from regshield.flows.relay import MESSAGES_PER_DOMAIN_PER_DAY, handlers
from regshield.flows.sweeps import sweep
from regshield.notify.delivery import MAIL_DIRECTORY
from regshield.outbox.worker import MAX_ATTEMPTS, OutboxWorker
from regshield.services import Services
from regshield.store.models import DataKey, Event, OutboxItem
from whois.conftest import DOMAIN, REGISTRANT

FORM = f"/contact/{DOMAIN}/registrant"
TEXT = "Hello, I would like to buy your domain. Would you consider an offer?"
SENDER = {"sender_name": "Max Buyer", "sender_email": "max.buyer@example.org", "message": TEXT}


async def form_token(api: httpx.AsyncClient, path: str = FORM) -> str:
    page = await api.get(path)
    assert page.status_code == 200, page.text
    found = re.search(r'name="token" value="([^"]+)"', page.text)
    assert found is not None
    return found.group(1)


async def send(api: httpx.AsyncClient, token: str, path: str = FORM,
               **changes: Any) -> httpx.Response:
    fields = {**SENDER, "token": token, **changes}
    return await api.post(path, data={k: v for k, v in fields.items() if v is not None})


def delivered(services: Services) -> list[EmailMessage]:
    directory = services.settings.home / MAIL_DIRECTORY
    messages = [email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
                for path in sorted(directory.glob("*.eml"))]
    return [m for m in messages if "contact form" in str(m["Subject"])]


async def tagged(services: Services, prefix: str) -> list[Event]:
    async with services.store.read() as session:
        rows = await session.scalars(select(Event).where(Event.tag.startswith(prefix))
                                     .order_by(Event.seq))
        return list(rows)


async def test_a_message_reaches_the_registrant_without_showing_the_sender_the_address(
        api: httpx.AsyncClient, registered: str, services: Services) -> None:
    page = await api.get(FORM)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert REGISTRANT["email"] not in page.text and "<script" not in page.text
    token = await form_token(api)

    response = await send(api, token)

    assert response.status_code == 200, response.text
    assert "was sent" in response.text
    assert REGISTRANT["email"] not in response.text
    assert "jane" not in response.text.lower()
    # Until the worker runs, the message is in the outbox only sealed.
    async with services.store.read() as session:
        items = (await session.scalars(select(OutboxItem).where(
            OutboxItem.kind == "relay:message"))).all()
    assert len(items) == 1
    stored = json.dumps(items[0].payload)
    for personal in ("Max Buyer", "max.buyer", "buy your domain", REGISTRANT["email"]):
        assert personal not in stored

    await OutboxWorker(services, handlers()).run_once()

    [mail] = delivered(services)
    assert str(mail["To"]) == REGISTRANT["email"]
    assert str(mail["Reply-To"]) == "Max Buyer <max.buyer@example.org>"
    assert str(mail["Auto-Submitted"]) == "auto-generated"
    assert DOMAIN in str(mail["Subject"])
    body = mail.get_body(preferencelist=("plain",))
    assert body is not None and TEXT in body.get_content()
    # Delivered: the message's data key is gone, so the sealed copy no longer opens.
    async with services.store.read() as session:
        assert await session.get(DataKey, items[0].payload["data_key"]) is None
    events = await tagged(services, "relay:message:")
    assert [e.tag for e in events] == ["relay:message:queued", "relay:message:sent"]
    for event in events:
        summary = json.dumps(event.summary)
        assert event.summary["domain"] == DOMAIN and event.summary["relay"]
        for personal in ("Max", "max.buyer", "buy your", REGISTRANT["email"]):
            assert personal not in summary
    # A second run finds the message settled and sends nothing again.
    await OutboxWorker(services, handlers()).run_once()
    assert len(delivered(services)) == 1


async def test_the_technical_contact_has_a_form_too(
        api: httpx.AsyncClient, registered: str, services: Services) -> None:
    path = f"/contact/{DOMAIN}/technical"
    response = await send(api, await form_token(api, path), path)
    assert response.status_code == 200, response.text
    await OutboxWorker(services, handlers()).run_once()
    [mail] = delivered(services)
    assert str(mail["To"]) == "jane@example.net"  # the holder's own contact (contact_body)


@pytest.mark.parametrize("path", [
    "/contact/unknown.test/registrant",
    f"/contact/{DOMAIN}/admin",
    f"/contact/{DOMAIN}/billing",
    "/contact/-bad-.test/registrant",
    "/contact/" + "a" * 300 + ".test/registrant",
    "/contact/..%2F..%2Fetc/registrant",
])
async def test_unknown_domains_and_roles_are_not_found(
        api: httpx.AsyncClient, registered: str, path: str) -> None:
    shown = await api.get(path)
    posted = await api.post(path, data=SENDER)
    assert shown.status_code == posted.status_code == 404
    # A path that does not match the route at all gets the application's problem document.
    assert "No such contact" in shown.text or "not-found" in shown.text


async def test_a_post_without_a_token_issued_for_this_form_is_refused(
        api: httpx.AsyncClient, registered: str, services: Services,
        clock: FakeClock) -> None:
    other = await form_token(api, f"/contact/{DOMAIN}/technical")
    for token in (None, "", "1.abc", other, "99999999999999.x"):
        response = await send(api, token) if token is not None else \
            await api.post(FORM, data=SENDER)
        assert response.status_code == 403, token
        assert "expired" in response.text
    token = await form_token(api)
    clock.advance(timedelta(hours=3))
    assert (await send(api, token)).status_code == 403
    async with services.store.read() as session:
        assert (await session.scalars(select(OutboxItem).where(
            OutboxItem.kind == "relay:message"))).all() == []


async def test_bad_fields_are_named_and_nothing_is_queued(
        api: httpx.AsyncClient, registered: str, services: Services) -> None:
    token = await form_token(api)
    response = await send(api, token, sender_name="", sender_email="not an address",
                          message="x" * 5000)
    assert response.status_code == 422
    for field in ("sender_name", "sender_email", "message"):
        assert f"<code>{field}</code>" in response.text
    assert "at most 4000 characters" in response.text

    injected = await send(api, token, sender_name="Eve\r\nBcc: victim@example.org")
    assert injected.status_code == 422 and "<code>sender_name</code>" in injected.text
    markup = await send(api, token, sender_name="<script>alert(1)</script>", message="")
    assert "<script>alert" not in markup.text and "&lt;script&gt;" in markup.text
    async with services.store.read() as session:
        assert (await session.scalars(select(OutboxItem).where(
            OutboxItem.kind == "relay:message"))).all() == []


async def test_a_body_that_is_not_a_bounded_form_is_refused(
        api: httpx.AsyncClient, registered: str) -> None:
    token = await form_token(api)
    as_json = await api.post(FORM, json={**SENDER, "token": token})
    assert as_json.status_code == 415
    huge = await api.post(FORM, content=b"message=" + b"a" * 100_000,
                          headers={"content-type": "application/x-www-form-urlencoded"})
    assert huge.status_code == 413
    garbage = await api.post(FORM, content=b"\xff\xfe=\x00",
                             headers={"content-type": "application/x-www-form-urlencoded"})
    assert garbage.status_code == 400


@asynccontextmanager
async def sender_at(services: Services, address: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the form from `address` (each address is a sender of its own)."""
    transport = httpx.ASGITransport(app=create_app(services), client=(address, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://regshield.test") as client:
        yield client


async def test_one_domain_takes_a_limited_number_of_messages_a_day(
        api: httpx.AsyncClient, registered: str, services: Services,
        clock: FakeClock) -> None:
    per_sender = services.settings.limits.contact_sender_per_day
    sent = 0
    for number in range(MESSAGES_PER_DOMAIN_PER_DAY):
        async with sender_at(services, f"198.51.100.{number // per_sender + 1}") as sender:
            assert (await send(sender, await form_token(sender))).status_code == 200
            sent += 1

    # A sender with allowance left is refused too: the domain has had its day.
    async with sender_at(services, "203.0.113.1") as fresh:
        refused = await send(fresh, await form_token(fresh))

    assert sent == MESSAGES_PER_DOMAIN_PER_DAY
    assert refused.status_code == 429
    assert 0 < int(refused.headers["Retry-After"]) <= 86400
    assert [e.summary["reason"] for e in await tagged(services, "relay:message:refused")] == \
        ["domain_daily_limit"]
    clock.advance(timedelta(days=1, seconds=1))
    assert (await send(api, await form_token(api))).status_code == 200


async def test_a_sender_who_used_up_their_allowance_does_not_block_another_sender(
        api: httpx.AsyncClient, registered: str, services: Services,
        clock: FakeClock) -> None:
    per_sender = services.settings.limits.contact_sender_per_day
    assert per_sender < MESSAGES_PER_DOMAIN_PER_DAY
    token = await form_token(api)
    for _ in range(per_sender):
        assert (await send(api, token)).status_code == 200

    refused = await send(api, token)

    assert refused.status_code == 429
    assert 0 < int(refused.headers["Retry-After"]) <= 86400
    assert "one sender" in refused.text
    async with sender_at(services, "203.0.113.2") as other:
        assert (await send(other, await form_token(other))).status_code == 200
    assert [e.summary["reason"] for e in await tagged(services, "relay:message:refused")] == \
        ["sender_daily_limit"]
    async with services.store.read() as session:
        queued = (await session.scalars(select(OutboxItem).where(
            OutboxItem.kind == "relay:message"))).all()
    assert len(queued) == per_sender + 1
    clock.advance(timedelta(days=1, seconds=1))
    assert (await send(api, await form_token(api))).status_code == 200


async def test_one_source_is_limited_with_retry_after(
        api: httpx.AsyncClient, registered: str, services: Services) -> None:
    burst = services.settings.rdds.burst
    for _ in range(burst):
        assert (await api.get(FORM)).status_code == 200
    refused = await api.get(FORM)
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1
    assert services.limiter("contact").refused["anonymous"] == 1


async def relayed_once(api: httpx.AsyncClient, services: Services) -> OutboxItem:
    assert (await send(api, await form_token(api))).status_code == 200
    async with services.store.read() as session:
        [item] = (await session.scalars(select(OutboxItem).where(
            OutboxItem.kind == "relay:message"))).all()
    return item


async def data_key_exists(services: Services, item: OutboxItem) -> bool:
    async with services.store.read() as session:
        return await session.get(DataKey, item.payload["data_key"]) is not None


async def test_over_smtp_the_envelope_goes_to_the_contact_and_replies_to_the_sender(
        api: httpx.AsyncClient, registered: str, services: Services,
        smtp_server: SmtpServer) -> None:
    send_through(services, smtp_server)
    await relayed_once(api, services)

    await OutboxWorker(services, handlers()).run_once()

    [received] = smtp_server.mailbox.received
    assert received.recipients == [REGISTRANT["email"]]
    assert received.sender == "notices@registrar.test"
    assert str(received.message["Reply-To"]) == "Max Buyer <max.buyer@example.org>"
    assert [e.summary["via"] for e in await tagged(services, "relay:message:sent")] == ["smtp"]


async def test_a_deferred_message_stays_sealed_and_queued_until_it_goes_out(
        api: httpx.AsyncClient, registered: str, services: Services,
        smtp_server: SmtpServer, clock: FakeClock) -> None:
    send_through(services, smtp_server)
    smtp_server.mailbox.defer_next = 1
    item = await relayed_once(api, services)

    await OutboxWorker(services, handlers()).run_once()

    assert smtp_server.mailbox.received == []
    assert await data_key_exists(services, item)
    assert await tagged(services, "relay:message:sent") == []
    clock.advance(timedelta(minutes=1))
    await OutboxWorker(services, handlers()).run_once()
    assert [r.recipients for r in smtp_server.mailbox.received] == [[REGISTRANT["email"]]]
    assert not await data_key_exists(services, item)


async def test_a_refused_mailbox_is_recorded_and_the_message_is_shredded(
        api: httpx.AsyncClient, registered: str, services: Services,
        smtp_server: SmtpServer) -> None:
    send_through(services, smtp_server)
    smtp_server.mailbox.unknown = {REGISTRANT["email"]}
    item = await relayed_once(api, services)

    await OutboxWorker(services, handlers()).run_once()

    [undeliverable] = await tagged(services, "relay:message:undeliverable")
    assert undeliverable.summary["refusal"] == "550"
    assert not await data_key_exists(services, item)
    async with services.store.read() as session:
        settled = await session.get(OutboxItem, item.id)
        assert settled is not None and settled.completed_at is not None


async def test_a_message_the_outbox_gives_up_on_is_shredded_by_the_sweep(
        api: httpx.AsyncClient, registered: str, services: Services,
        smtp_server: SmtpServer, clock: FakeClock) -> None:
    send_through(services, smtp_server)
    smtp_server.mailbox.defer_next = MAX_ATTEMPTS + 1
    item = await relayed_once(api, services)
    for _ in range(MAX_ATTEMPTS):
        await OutboxWorker(services, handlers()).run_once()
        clock.advance(timedelta(days=1))
    async with services.store.read() as session:
        given_up = await session.get(OutboxItem, item.id)
        assert given_up is not None and given_up.failed
    assert await data_key_exists(services, item)

    await sweep(services)
    await sweep(services)  # a second pass finds nothing left to shred

    assert smtp_server.mailbox.received == []
    assert not await data_key_exists(services, item)
    [abandoned] = await tagged(services, "relay:message:abandoned")
    assert abandoned.summary["relay"] == item.payload["relay"]
    assert "max.buyer" not in json.dumps(abandoned.summary)
