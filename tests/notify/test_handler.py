"""Notices end to end: a flow queues one, the outbox worker addresses it from the sealed
records and sends it through a real SMTP server (or writes it to a file), once per address,
and every outcome is an event."""

from __future__ import annotations

import json
import stat
from dataclasses import dataclass
from email import message_from_bytes, policy
from typing import Any

import pytest
import structlog
from conftest import Identity, World
from contact_samples import contact_body
from sqlalchemy import select, text, update

from regshield.clock import FakeClock
from regshield.eventlog.chain import verify
from regshield.flows.contacts import ContactCreate, ContactDelete
from regshield.flows.context import Actor, RequestContext
from regshield.flows.registrar import RegistrarUpdate
from regshield.flows.runner import Tx, run_flow
from regshield.notify.delivery import MAIL_DIRECTORY
from regshield.notify.handler import handlers, send_notice
from regshield.notify.messages import Change
from regshield.notify.requests import (
    KIND,
    Recipient,
    notice,
    previous_address_binding,
    to_account_owners,
    to_contact,
    to_previous_address,
    to_user,
)
from regshield.outbox.worker import OutboxWorker, backoff
from regshield.security.fields import Sealer
from regshield.services import Services
from regshield.store.models import Event, OutboxItem, User
from regshield.store.queries.contacts import contact_by_handle

from .conftest import SMTP_PASSWORD, SMTP_USER, SmtpServer, send_through

REGISTRANT_EMAIL = "registrant@example.net"
OWNER_EMAIL = "owner@example.net"
MEMBER_EMAIL = "member@example.net"
ADDRESSES = (REGISTRANT_EMAIL, OWNER_EMAIL, MEMBER_EMAIL)
FROM_ADDRESS = RequestContext("api", "192.0.2.10")


@dataclass
class Holder:
    """An account with an owner, a member and a registrant contact, made through the flows."""

    account: str
    owner: Identity
    member: Identity
    contact: str


@pytest.fixture
async def holder(world: World) -> Holder:
    account = await world.account()
    owner = await world.user("owner", account, email=OWNER_EMAIL)
    member = await world.user("member", account, email=MEMBER_EMAIL)
    contact = await world.flow(ContactCreate(
        contact_body(email=REGISTRANT_EMAIL), account=account))
    return Holder(account, owner, member, contact.handle)


@dataclass(frozen=True)
class NameserversChange:
    """A stand-in for a domain flow: records the change, then asks for its notice."""

    recipients: tuple[Recipient, ...]
    details: dict[str, Any] | None = None

    async def run(self, tx: Tx) -> None:
        tx.record("domains:nameservers:updated", domain="example.test")
        notice(tx, change=Change.NAMESERVERS, domain="example.test",
               recipients=list(self.recipients), details=self.details or {
                   "before": ["ns1.old.test", "ns2.old.test"], "after": ["ns1.new.test"]})


async def change_nameservers(services: Services, holder: Holder,
                             *recipients: Recipient) -> None:
    actor = Actor(kind="customer", user_public_id=holder.owner.user_id,
                  account_public_id=holder.account)
    context = RequestContext("api", FROM_ADDRESS.source_address)  # a request of its own
    await run_flow(services, actor, context, NameserversChange(recipients))


async def outbox(services: Services) -> list[OutboxItem]:
    async with services.store.read() as session:
        return list((await session.execute(select(OutboxItem).order_by(OutboxItem.id)))
                    .scalars().all())


async def events(services: Services, prefix: str) -> list[Event]:
    async with services.store.read() as session:
        rows = (await session.execute(select(Event).order_by(Event.seq))).scalars().all()
    return [e for e in rows if e.tag.startswith(prefix)]


def worker(services: Services) -> OutboxWorker:
    return OutboxWorker(services, handlers=handlers())


def assert_no_address_in(value: Any) -> None:
    rendered = json.dumps(value, default=str) if not isinstance(value, str) else value
    for address in ADDRESSES:
        assert address not in rendered


async def test_each_address_gets_one_message_over_smtp(
        services: Services, holder: Holder, smtp_server: SmtpServer) -> None:
    send_through(services, smtp_server)
    # The owner is named twice (as a user and as an owner): one message; the member none.
    await change_nameservers(services, holder, to_contact(holder.contact),
                             to_account_owners(holder.account), to_user(holder.owner.user_id))

    assert await worker(services).run_once() == 1

    mailbox = smtp_server.mailbox
    assert sorted(r.recipients[0] for r in mailbox.received) == [OWNER_EMAIL, REGISTRANT_EMAIL]
    assert {r.sender for r in mailbox.received} == {"notices@registrar.test"}
    [change] = await events(services, "domains:nameservers:updated")
    for received in mailbox.received:
        message = received.message
        assert message["To"] == received.recipients[0]
        assert message["Subject"] == "[Unnamed registrar] Nameservers changed: example.test"
        body = message.get_content()
        assert "ns1.old.test, ns2.old.test" in body and "ns1.new.test" in body
        assert "from address 192.0.2.10" in body
        assert f"By:         user {holder.owner.user_id}" in body
        assert f"request {change.request_id}, event #{change.seq}" in body
    [item] = await outbox(services)
    assert item.completed_at is not None and item.attempts == 1
    sent = await events(services, "notify:email:sent")
    assert sorted(e.summary["recipient"] for e in sent) == sorted(
        [f"contact:{holder.contact}", f"user:{holder.owner.user_id}"])
    assert {e.request_id for e in sent} == {change.request_id}
    assert {e.account for e in sent} == {holder.account}
    assert {e.summary["message"] for e in sent} == {
        r.message["Message-ID"] for r in mailbox.received}
    assert_no_address_in([e.summary for e in sent])
    async with services.store.read() as session:
        assert (await verify(session)).ok


async def test_the_outbox_row_holds_no_email_address(
        services: Services, holder: Holder) -> None:
    await change_nameservers(services, holder, to_contact(holder.contact),
                             to_user(holder.owner.user_id))

    async with services.store.read() as session:
        [(kind, raw)] = (await session.execute(text("SELECT kind, payload FROM outbox"))).all()
    assert kind == KIND
    stored = raw if isinstance(raw, str) else json.dumps(raw)
    assert "@" not in stored
    payload = json.loads(stored)
    assert payload["recipients"] == [{"contact": holder.contact},
                                     {"user": holder.owner.user_id}]
    assert payload["change"] == "nameservers" and payload["domain"] == "example.test"
    assert payload["source_address"] == "192.0.2.10" and payload["channel"] == "api"
    assert payload["actor"] == f"user:{holder.owner.user_id}"
    assert payload["event"] == "domains:nameservers:updated"


async def test_a_retry_after_a_451_sends_the_rest_and_repeats_nothing(
        services: Services, holder: Holder, smtp_server: SmtpServer, clock: FakeClock) -> None:
    send_through(services, smtp_server)
    smtp_server.mailbox.defer_for = {OWNER_EMAIL}
    await change_nameservers(services, holder, to_contact(holder.contact),
                             to_account_owners(holder.account))
    run = worker(services)

    assert await run.run_once() == 1
    assert [r.recipients for r in smtp_server.mailbox.received] == [[REGISTRANT_EMAIL]]
    [item] = await outbox(services)
    assert item.completed_at is None and not item.failed
    assert item.last_error is not None and "451" in item.last_error
    assert_no_address_in(item.last_error)

    smtp_server.mailbox.defer_for = set()
    clock.advance(backoff(1))
    assert await run.run_once() == 1

    assert [r.recipients for r in smtp_server.mailbox.received] == [
        [REGISTRANT_EMAIL], [OWNER_EMAIL]]
    [item] = await outbox(services)
    assert item.completed_at is not None and item.attempts == 2
    tags = [e.tag for e in await events(services, "") if e.tag.startswith(("notify", "outbox"))]
    assert tags == ["notify:email:sent", "outbox:notify.email:retrying", "notify:email:sent",
                    "outbox:notify.email:completed"]


async def test_a_server_that_defers_everything_keeps_the_notice_queued(
        services: Services, holder: Holder, smtp_server: SmtpServer, clock: FakeClock) -> None:
    send_through(services, smtp_server)
    smtp_server.mailbox.defer_next = 1
    await change_nameservers(services, holder, to_user(holder.owner.user_id))
    run = worker(services)

    await run.run_once()
    assert smtp_server.mailbox.received == []
    [retrying] = await events(services, "outbox:")
    assert retrying.tag == "outbox:notify.email:retrying"
    assert retrying.summary["error"] == "DeliveryDeferred"

    clock.advance(backoff(1))
    await run.run_once()
    assert [r.recipients for r in smtp_server.mailbox.received] == [[OWNER_EMAIL]]


async def test_a_refused_mailbox_is_recorded_and_the_others_are_sent(
        services: Services, holder: Holder, smtp_server: SmtpServer) -> None:
    send_through(services, smtp_server)
    smtp_server.mailbox.unknown = {REGISTRANT_EMAIL}
    await change_nameservers(services, holder, to_contact(holder.contact),
                             to_account_owners(holder.account))

    await worker(services).run_once()

    assert [r.recipients for r in smtp_server.mailbox.received] == [[OWNER_EMAIL]]
    [undeliverable] = await events(services, "notify:email:undeliverable")
    assert undeliverable.summary["recipient"] == f"contact:{holder.contact}"
    assert undeliverable.summary["refusal"] == "550"
    [item] = await outbox(services)
    assert item.completed_at is not None


async def test_a_deleted_contact_is_skipped_with_an_event_not_retried(
        services: Services, holder: Holder, world: World, smtp_server: SmtpServer) -> None:
    send_through(services, smtp_server)
    await change_nameservers(services, holder, to_contact(holder.contact),
                             to_account_owners(holder.account))
    await world.flow(ContactDelete(holder.contact))

    with structlog.testing.capture_logs() as logs:
        assert await worker(services).run_once() == 1

    assert [r.recipients for r in smtp_server.mailbox.received] == [[OWNER_EMAIL]]
    [skipped] = await events(services, "notify:email:skipped")
    assert skipped.summary["recipient"] == f"contact:{holder.contact}"
    assert skipped.summary["reason"] == "contact_deleted"
    assert skipped.account == holder.account
    [item] = await outbox(services)
    assert item.completed_at is not None and item.attempts == 1
    assert any(line["event"] == "notify.skipped" for line in logs)
    assert_no_address_in(logs)


async def test_disabled_owners_are_not_notified_and_no_owner_is_an_event(
        services: Services, holder: Holder, smtp_server: SmtpServer) -> None:
    send_through(services, smtp_server)
    async with services.store.write() as session:
        await session.execute(update(User).where(User.public_id == holder.owner.user_id)
                              .values(disabled_at=services.clock.now()))
    await change_nameservers(services, holder, to_account_owners(holder.account),
                             to_user("usr_nobody"))

    await worker(services).run_once()

    assert smtp_server.mailbox.received == []
    skipped = await events(services, "notify:email:skipped")
    assert sorted((e.summary["recipient"], e.summary["reason"]) for e in skipped) == [
        (f"account_owners:{holder.account}", "account_without_owners"),
        ("user:usr_nobody", "user_unknown")]
    [item] = await outbox(services)
    assert item.completed_at is not None


async def test_running_a_notice_again_sends_nothing_twice(
        services: Services, holder: Holder, smtp_server: SmtpServer) -> None:
    send_through(services, smtp_server)
    await change_nameservers(services, holder, to_contact(holder.contact))
    await worker(services).run_once()
    [item] = await outbox(services)

    # As if the worker died after sending but before marking the row done.
    await send_notice(services, dict(item.payload))

    assert len(smtp_server.mailbox.received) == 1
    assert len(await events(services, "notify:email:sent")) == 1


async def test_when_smtp_is_off_messages_are_written_as_eml_files(
        services: Services, holder: Holder) -> None:
    assert not services.settings.smtp.enabled
    await change_nameservers(services, holder, to_contact(holder.contact),
                             to_user(holder.owner.user_id))

    await worker(services).run_once()
    [item] = await outbox(services)
    await send_notice(services, dict(item.payload))  # a second run adds no file

    directory = services.settings.home / MAIL_DIRECTORY
    files = sorted(directory.glob("*.eml"))
    assert len(files) == 2
    recipients = set()
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        message = message_from_bytes(path.read_bytes(), policy=policy.default)
        recipients.add(message["To"])
        assert message["Auto-Submitted"] == "auto-generated"
        assert "ns1.new.test" in message.get_content()
    assert recipients == {REGISTRANT_EMAIL, OWNER_EMAIL}
    assert {e.summary["via"] for e in await events(services, "notify:email:sent")} == {"file"}
    assert not [p for p in directory.iterdir() if p.suffix != ".eml"]


async def test_starttls_verified_with_the_configured_ca_and_signed_in(
        services: Services, holder: Holder, starttls_server: SmtpServer) -> None:
    send_through(services, starttls_server, security="starttls",
                 ca_file=starttls_server.certificate, username=SMTP_USER,
                 password=SMTP_PASSWORD)
    await change_nameservers(services, holder, to_user(holder.owner.user_id))

    await worker(services).run_once()

    [received] = starttls_server.mailbox.received
    assert received.over_tls and received.signed_in_as == SMTP_USER
    assert received.recipients == [OWNER_EMAIL]


async def test_an_untrusted_certificate_is_refused_and_the_notice_waits(
        services: Services, holder: Holder, starttls_server: SmtpServer) -> None:
    send_through(services, starttls_server, security="starttls", username=SMTP_USER,
                 password=SMTP_PASSWORD)
    await change_nameservers(services, holder, to_user(holder.owner.user_id))

    await worker(services).run_once()

    assert starttls_server.mailbox.received == []
    [item] = await outbox(services)
    assert item.completed_at is None
    assert item.last_error is not None and "certificate verify failed" in item.last_error


async def test_a_server_without_starttls_is_never_used_in_clear(
        services: Services, holder: Holder, smtp_server: SmtpServer) -> None:
    send_through(services, smtp_server, security="starttls")
    await change_nameservers(services, holder, to_user(holder.owner.user_id))

    await worker(services).run_once()

    assert smtp_server.mailbox.received == []
    [item] = await outbox(services)
    assert item.completed_at is None
    assert item.last_error is not None and "STARTTLS" in item.last_error


async def test_implicit_tls_verified_with_the_configured_ca(
        services: Services, holder: Holder, tls_server: SmtpServer) -> None:
    send_through(services, tls_server, security="tls", ca_file=tls_server.certificate)
    await change_nameservers(services, holder, to_user(holder.owner.user_id))

    await worker(services).run_once()

    [received] = tls_server.mailbox.received
    assert received.over_tls and received.recipients == [OWNER_EMAIL]


async def test_the_same_notice_twice_in_one_request_is_one_effect(
        services: Services, holder: Holder) -> None:
    @dataclass(frozen=True)
    class Twice:
        async def run(self, tx: Tx) -> None:
            for _ in range(2):
                await NameserversChange((to_contact(holder.contact),)).run(tx)

    await run_flow(services, Actor(kind="system"), FROM_ADDRESS, Twice())

    assert len(await outbox(services)) == 1


async def test_details_holding_an_address_stop_the_flow_before_anything_is_written(
        services: Services, holder: Holder) -> None:
    before = len(await events(services, ""))
    flow = NameserversChange((to_contact(holder.contact),),
                             details={"before": [], "after": ["hostmaster@example.net"]})

    with pytest.raises(ValueError, match="never an email address"):
        await run_flow(services, Actor(kind="system"), FROM_ADDRESS, flow)

    assert await outbox(services) == []
    assert len(await events(services, "")) == before



async def test_an_internationalized_address_is_delivered_where_the_server_takes_it(
        services: Services, holder: Holder, world: World, smtp_server: SmtpServer) -> None:
    send_through(services, smtp_server)
    contact = await world.flow(ContactCreate(contact_body(email="jörg@bücher.example"),
                                             account=holder.account))
    await change_nameservers(services, holder, to_contact(contact.handle))

    await worker(services).run_once()

    [received] = smtp_server.mailbox.received
    assert received.recipients == ["jörg@bücher.example"]
    assert received.message["To"] == "jörg@bücher.example"


async def test_an_internationalized_address_the_server_cannot_take_is_recorded(
        services: Services, holder: Holder, world: World,
        ascii_smtp_server: SmtpServer) -> None:
    send_through(services, ascii_smtp_server)
    contact = await world.flow(ContactCreate(contact_body(email="jörg@bücher.example"),
                                             account=holder.account))
    await change_nameservers(services, holder, to_contact(contact.handle),
                             to_user(holder.owner.user_id))

    await worker(services).run_once()

    assert [r.recipients for r in ascii_smtp_server.mailbox.received] == [[OWNER_EMAIL]]
    [undeliverable] = await events(services, "notify:email:undeliverable")
    assert undeliverable.summary["recipient"] == f"contact:{contact.handle}"
    assert "internationalized" in undeliverable.summary["refusal"]
    [item] = await outbox(services)
    assert item.completed_at is not None


async def test_reports_go_to_the_registrars_abuse_address_or_the_configured_contact(
        services: Services, holder: Holder, world: World, smtp_server: SmtpServer) -> None:
    await world.flow(RegistrarUpdate(name="Example Registrar",
                                     abuse_email="abuse@registrar.example.net"))
    send_through(services, smtp_server)
    await change_nameservers(services, holder, to_user(holder.owner.user_id))
    await worker(services).run_once()
    send_through(services, smtp_server, report_to="security@registrar.example.net")
    await change_nameservers(services, holder, to_user(holder.owner.user_id))
    await worker(services).run_once()

    abuse, security = (r.message for r in smtp_server.mailbox.received)
    assert abuse["Reply-To"] == "abuse@registrar.example.net"
    assert "write to abuse@registrar.example.net" in abuse.get_content()
    assert abuse["From"] == "Example Registrar <notices@registrar.test>"
    assert security["Reply-To"] == "security@registrar.example.net"


async def test_a_previous_address_opens_only_under_its_own_contact(
        services: Services, holder: Holder, world: World, smtp_server: SmtpServer) -> None:
    """An edit tells the address a contact had before (flows/contacts.py ContactUpdate): it
    rides in the outbox sealed under that contact's data key, bound to its handle."""
    send_through(services, smtp_server)
    other = await world.flow(ContactCreate(contact_body(email="other@example.net"),
                                           account=holder.account))
    async with services.store.read() as session:
        contact = await contact_by_handle(session, holder.contact)
        assert contact is not None
        key = await services.sealer.data_key(session, contact.data_key_id)
    previous = "previous@example.net"
    sealed = Sealer.seal_json(key, previous, previous_address_binding(holder.contact))
    # The same sealed address claimed for another contact does not open.
    await change_nameservers(services, holder, to_previous_address(holder.contact, sealed),
                             to_previous_address(other.handle, sealed))

    assert await worker(services).run_once() == 1

    assert [r.recipients for r in smtp_server.mailbox.received] == [[previous]]
    [sent] = await events(services, "notify:email:sent")
    assert sent.summary["recipient"] == f"contact_previous:{holder.contact}"
    [skipped] = await events(services, "notify:email:skipped")
    assert skipped.summary["recipient"] == f"contact_previous:{other.handle}"
    assert skipped.summary["reason"] == "address_unreadable"
    [item] = await outbox(services)
    assert previous not in json.dumps(item.payload)
