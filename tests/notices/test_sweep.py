"""The notices sweep: each WDRP reminder and ERRP notice is queued once per cycle with its
ledger row, whatever the number of sweeps, and its mail reaches the registrant and the account
holder. Domains are written straight to the store here (the registration path is in
test_registered.py)."""

from __future__ import annotations

import asyncio
import email
import email.policy
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage

import httpx
import pytest
from conftest import World
from contact_samples import contact_body
from notify.conftest import SmtpServer, send_through
from sqlalchemy import func, select

from regshield.clock import FakeClock
from regshield.errors import PermissionDenied
from regshield.flows import sweeps
from regshield.flows.contacts import ContactCreate, ContactUpdate
from regshield.flows.context import Actor, RequestContext, system_actor
from regshield.flows.notices import NoticeBounceRecord, NoticesSweep
from regshield.flows.runner import run_flow
from regshield.notify.delivery import MAIL_DIRECTORY
from regshield.notify.handler import handlers
from regshield.outbox.worker import OutboxWorker
from regshield.services import Services
from regshield.store.models import Account, Contact, Domain, Event, NotificationLedger, OutboxItem
from regshield.store.queries.notices import insert_notice

DAY = timedelta(days=1)


@dataclass
class Estate:
    """An account with an owner, a registrant contact and domains made in the store."""

    services: Services
    clock: FakeClock
    account: str
    account_id: int
    owner_email: str
    contact_id: int
    handle: str

    async def domain(self, name: str, *, expires_in: timedelta,
                     created_ago: timedelta = timedelta(days=100),
                     state: str = "active") -> int:
        now = self.clock.now()
        async with self.services.store.write() as session:
            row = Domain(name=name, unicode_name=name, account_id=self.account_id,
                         registry_link="sandbox", state=state, registrant_id=self.contact_id,
                         nameservers=["ns1.example.net", "ns2.example.net"], ds=[], holds=[],
                         registry_statuses=["ok"], expires_at=now + expires_in,
                         created_at=now - created_ago, updated_at=now - created_ago,
                         publish_consent={})
            session.add(row)
            await session.flush()
            return row.id

    async def renew(self, domain_id: int, years: int = 1) -> None:
        async with self.services.store.write() as session:
            row = await session.get(Domain, domain_id)
            assert row is not None and row.expires_at is not None
            row.expires_at = row.expires_at.replace(year=row.expires_at.year + years)


@pytest.fixture
async def estate(services: Services, world: World, clock: FakeClock) -> Estate:
    account = await world.account()
    owner = await world.user("owner", account)
    contact = await world.flow(ContactCreate(contact_body(), account=account))
    async with services.store.read() as session:
        account_id = (await session.execute(
            select(Account.id).where(Account.public_id == account))).scalar_one()
        contact_id = (await session.execute(
            select(Contact.id).where(Contact.handle == contact.handle))).scalar_one()
    return Estate(services, clock, account, account_id, owner.email, contact_id,
                  contact.handle)


async def sweep(services: Services) -> None:
    assert await run_flow(services, system_actor("sweep"), RequestContext("system"),
                          NoticesSweep()) == []


async def deliver(services: Services) -> None:
    await OutboxWorker(services, handlers()).run_once()


def mails(services: Services) -> list[EmailMessage]:
    directory = services.settings.home / MAIL_DIRECTORY
    found = []
    for path in sorted(directory.glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        found.append(message)
    return found


def text_of(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    return str(body.get_content())


async def ledger(services: Services) -> list[tuple[int, str, str, bool]]:
    async with services.store.read() as session:
        rows = await session.execute(select(
            NotificationLedger.domain_id, NotificationLedger.kind, NotificationLedger.cycle,
            NotificationLedger.late).order_by(NotificationLedger.id))
        return [tuple(row) for row in rows]  # type: ignore[misc]


async def count(services: Services, model: type[object], *where: object) -> int:
    async with services.store.read() as session:
        query = select(func.count()).select_from(model)  # type: ignore[arg-type]
        return int((await session.execute(query.where(*where))).scalar_one())  # type: ignore[arg-type]


async def test_the_month_notice_reaches_registrant_and_owner_once_however_many_sweeps(
        services: Services, estate: Estate) -> None:
    domain = await estate.domain("month.test", expires_in=30 * DAY)
    await sweep(services)
    await sweep(services)
    expiry = (estate.clock.now() + 30 * DAY).date().isoformat()
    assert await ledger(services) == [(domain, "errp-30", expiry, False)]
    assert await count(services, OutboxItem, OutboxItem.kind == "notices:mail") == 1

    await deliver(services)
    await deliver(services)
    await sweep(services)
    sent = mails(services)
    assert sorted(str(m["To"]) for m in sent) == sorted(["jane@example.net", estate.owner_email])
    assert await count(services, Event, Event.tag == "notify:email:sent") == 2
    subject = str(sent[0]["Subject"])
    assert f"Expires on {expiry}" in subject and "month.test" in subject
    text = text_of(sent[0])
    assert f"expires on {expiry}" in text
    assert "/api/v1/domains/month.test/renew" in text


async def test_queued_events_name_identifiers_never_personal_data(
        services: Services, estate: Estate) -> None:
    await estate.domain("quiet.test", expires_in=7 * DAY)
    await sweep(services)
    async with services.store.read() as session:
        summaries = (await session.execute(select(Event.summary).where(
            Event.tag == "notice:errp-7:queued"))).scalars().all()
        payloads = (await session.execute(select(OutboxItem.payload).where(
            OutboxItem.kind == "notices:mail"))).scalars().all()
    assert len(summaries) == 1
    assert summaries[0]["recipients"] == [f"contact:{estate.handle}",
                                          f"account_owners:{estate.account}"]
    for value in [*summaries, *payloads]:
        assert "@" not in str(value) and "Jane" not in str(value)


async def test_two_sweeps_at_once_queue_each_notice_once(services: Services,
                                                          estate: Estate) -> None:
    for index in range(6):
        await estate.domain(f"race{index}.test", expires_in=(index * 6 - 3) * DAY)
    await estate.domain("old.test", expires_in=200 * DAY, created_ago=400 * DAY)
    outcomes = await asyncio.gather(sweep(services), sweep(services), sweep(services),
                                    return_exceptions=True)
    assert [o for o in outcomes if o is not None] == []
    rows = await ledger(services)
    assert sorted(kind for _, kind, _, _ in rows) == [
        "errp-30", "errp-30", "errp-30", "errp-7", "errp-7", "errp-post", "wdrp"]
    assert await count(services, OutboxItem, OutboxItem.kind == "notices:mail") == 7
    assert await count(services, Event, Event.tag.like("notice:%:queued")) == 7


async def test_a_renewal_between_the_month_and_week_notices_starts_a_new_cycle(
        services: Services, estate: Estate) -> None:
    domain = await estate.domain("renewed.test", expires_in=32 * DAY)
    await sweep(services)
    estate.clock.advance(10 * DAY)
    await estate.renew(domain)
    estate.clock.advance(15 * DAY)  # the old expiry's week notice would be due now
    await sweep(services)
    old = (estate.clock.now() + 7 * DAY).date().isoformat()
    assert [(kind, cycle) for _, kind, cycle, _ in await ledger(services)] == [("errp-30", old)]
    estate.clock.advance(7 * DAY + 335 * DAY)  # 30 days before the new expiry
    await sweep(services)
    expiry_notices = [(kind, cycle) for _, kind, cycle, _ in await ledger(services)
                      if kind != "wdrp"]
    assert expiry_notices == [("errp-30", old), ("errp-30", old.replace("2026", "2027"))]


async def test_a_sweep_missed_for_days_sends_late_or_not_at_all(services: Services,
                                                                estate: Estate) -> None:
    late = await estate.domain("late.test", expires_in=18 * DAY)  # month window passed
    await estate.domain("gone.test", expires_in=-6 * DAY)  # post-expiry window passed
    await sweep(services)
    rows = await ledger(services)
    assert [(d, kind, was_late) for d, kind, _, was_late in rows] == [(late, "errp-30", True)]


async def test_the_post_expiry_notice_says_dns_is_interrupted_and_renewal_possible(
        services: Services, estate: Estate) -> None:
    await estate.domain("expired.test", expires_in=-2 * DAY)
    await estate.domain("deleted.test", expires_in=-2 * DAY, state="pending_delete")
    await sweep(services)
    await deliver(services)
    sent = mails(services)
    assert {str(m["Subject"]).rsplit(": ", 1)[1] for m in sent} == {"expired.test"}
    text = text_of(sent[0])
    assert "DNS service is interrupted" in text and "can still be renewed" in text


async def test_the_yearly_reminder_shows_the_registrants_current_data(
        services: Services, estate: Estate, world: World) -> None:
    await estate.domain("yearly.test", expires_in=200 * DAY, created_ago=366 * DAY)
    await sweep(services)
    # The data shown is the data when the mail is sent, not when it was queued.
    await world.flow(ContactUpdate(estate.handle, {"city": "Hamburg", "postal_code": "20095"}))
    await deliver(services)
    # (The edit itself is told to the registrant and the owners in a notice of its own.)
    sent = [m for m in mails(services) if "Contact data changed" not in str(m["Subject"])]
    assert sorted(str(m["To"]) for m in sent) == sorted(["jane@example.net", estate.owner_email])
    text = text_of(sent[0])
    assert "Berlin" not in text
    for value in ("Jane Example", "Example GmbH", "Invalidenstrasse 116", "20095", "Hamburg",
                  "DE", "+49", "jane@example.net", estate.handle, "ns1.example.net"):
        assert value in text
    assert "suspension or cancellation" in text
    estate.clock.advance(30 * DAY)
    await sweep(services)
    assert [kind for _, kind, _, _ in await ledger(services)] == ["wdrp"]


async def test_a_notice_for_a_domain_renewed_before_sending_is_skipped(
        services: Services, estate: Estate) -> None:
    domain = await estate.domain("quick.test", expires_in=6 * DAY)
    await sweep(services)
    await estate.renew(domain)
    await deliver(services)
    assert mails(services) == []
    assert await count(services, Event, Event.tag == "notify:email:skipped") == 2


async def test_a_bounce_marks_the_ledger_row(services: Services, estate: Estate,
                                             world: World) -> None:
    await estate.domain("bounce.test", expires_in=30 * DAY)
    await sweep(services)
    async with services.store.read() as session:
        notice = (await session.execute(select(NotificationLedger.id))).scalar_one()
    await run_flow(services, system_actor("bounces"), RequestContext("system"),
                   NoticeBounceRecord(notice, recipient=f"contact:{estate.handle}",
                                      reason="550"))
    async with services.store.read() as session:
        row = await session.get(NotificationLedger, notice)
        assert row is not None and row.bounced_at == estate.clock.now()
        tags = (await session.execute(select(Event.tag).where(
            Event.tag == "notice:errp-30:bounced"))).scalars().all()
    assert tags == ["notice:errp-30:bounced"]
    owner = await world.user("owner", estate.account)
    with pytest.raises(PermissionDenied):
        await run_flow(services, Actor(kind="customer", user_public_id=owner.user_id),
                       RequestContext("api"), NoticeBounceRecord(notice))


async def test_staff_read_the_ledger_through_the_api(
        services: Services, estate: Estate, world: World, notices_api: httpx.AsyncClient
) -> None:
    api = notices_api
    await estate.domain("listed.test", expires_in=30 * DAY)
    await sweep(services)
    await deliver(services)
    compliance = await world.user("compliance")
    listed = await api.get("/api/v1/domains/listed.test/notices", headers=compliance.headers)
    assert listed.status_code == 200, listed.text
    [item] = listed.json()["items"]
    assert item["kind"] == "errp-30" and item["delivery"] == "done"
    assert item["recipients"] == [
        {"role": "registrant", "recipient": f"contact:{estate.handle}"},
        {"role": "account_holder", "recipient": f"account_owners:{estate.account}"}]
    assert item["outbox_id"] is not None and item["bounced_at"] is None

    stranger = await world.user("owner", await world.account())
    refused = await api.get("/api/v1/domains/listed.test/notices", headers=stranger.headers)
    assert refused.status_code == 404
    member = await world.user("member", estate.account)
    assert (await api.get("/api/v1/domains/listed.test/notices",
                          headers=member.headers)).status_code == 403
    for bad in ("exa mple.test", "-x-.test", "a" * 300 + ".test", "..%2f..%2fetc"):
        answer = await api.get(f"/api/v1/domains/{bad}/notices", headers=compliance.headers)
        assert answer.status_code in (400, 404, 422), (bad, answer.status_code)


async def test_over_smtp_a_refused_registrant_address_marks_the_notice_bounced(
        services: Services, estate: Estate, smtp_server: SmtpServer) -> None:
    send_through(services, smtp_server)
    smtp_server.mailbox.unknown = {"jane@example.net"}
    await estate.domain("refused.test", expires_in=8 * DAY)
    await sweep(services)
    await deliver(services)
    assert [r.recipients for r in smtp_server.mailbox.received] == [[estate.owner_email]]
    [message] = smtp_server.mailbox.to(estate.owner_email)
    assert "Expires on" in str(message["Subject"])
    async with services.store.read() as session:
        row = (await session.execute(select(NotificationLedger))).scalar_one()
        bounced = (await session.execute(select(Event.summary).where(
            Event.tag == "notice:errp-7:bounced"))).scalars().all()
    assert row.bounced_at == estate.clock.now()
    assert bounced[0]["recipient"] == f"contact:{estate.handle}"
    assert bounced[0]["reason"] == "550"
    # The bounce is contrary evidence: the registrant's data is verified again.
    async with services.store.read() as session:
        reported = (await session.execute(select(Event.summary).where(
            Event.tag == "accuracy:bounce:reported"))).scalars().all()
        started = (await session.execute(select(Event.summary).where(
            Event.tag == "accuracy:verification:started"))).scalars().all()
    assert [(r["contact"], r["reference"], r["domains"]) for r in reported] == [
        (estate.handle, f"notice:{row.id}", ["refused.test"])]
    assert [(s["contact"], s["cause"]) for s in started] == [(estate.handle, "bounce")]
    await deliver(services)  # the outbox row is done: nothing is sent again
    assert len(smtp_server.mailbox.received) == 1


async def test_the_minute_sweep_queues_the_notices(services: Services, estate: Estate) -> None:
    await estate.domain("minute.test", expires_in=3 * DAY)
    await sweeps.sweep(services)
    assert [kind for _, kind, _, _ in await ledger(services)] == ["errp-7"]


async def test_a_notice_a_concurrent_transaction_holds_is_not_written_twice(
        services: Services, estate: Estate) -> None:
    """Two sweeps racing for one notice: the second waits for the first's outcome and then
    writes nothing (on PostgreSQL at the unique index, on SQLite at the write lock)."""
    domain = await estate.domain("held.test", expires_in=30 * DAY)
    values = {"domain_id": domain, "kind": "errp-30", "cycle": "2026-12-27",
              "about": estate.clock.now() + 30 * DAY, "recipients": [], "late": False,
              "queued_at": estate.clock.now(), "outbox_key": "notices:mail:test"}

    async def second() -> int | None:
        async with services.store.write() as session:
            return await insert_notice(session, values)

    async with services.store.write() as session:
        assert await insert_notice(session, values) is not None
        racing = asyncio.create_task(second())
        await asyncio.sleep(0.5)
        assert not racing.done()
    assert await racing is None
    assert await count(services, NotificationLedger) == 1


async def test_a_registrant_changed_after_queueing_is_the_one_told(
        services: Services, estate: Estate, world: World) -> None:
    domain = await estate.domain("moved.test", expires_in=30 * DAY)
    await sweep(services)
    other = await world.flow(ContactCreate(contact_body(email="new@example.org", name="New Owner"),
                                           account=estate.account))
    async with services.store.write() as session:
        contact_id = (await session.execute(
            select(Contact.id).where(Contact.handle == other.handle))).scalar_one()
        row = await session.get(Domain, domain)
        assert row is not None
        row.registrant_id = contact_id
    await deliver(services)
    assert sorted(str(m["To"]) for m in mails(services)) == sorted(
        ["new@example.org", estate.owner_email])
