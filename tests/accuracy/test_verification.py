"""The WHOIS Accuracy Program: a registrant is verified by an emailed link after a
registration or a change of registrant; without it, the domain is suspended on day 16 at the
registry and lifted when the link is followed."""

from __future__ import annotations

from datetime import timedelta

import httpx
from conftest import World
from contact_samples import contact_body
from domains.conftest import NS, Holder, Registry, as_other_registrar
from domains.test_lifecycle import DOMAINS, events, register
from domains.test_poll import other_registrars_domain, transfer_in
from sqlalchemy import func, select

from accuracy.conftest import mails, run_outbox, text_of, tokens, verification_mails
from regshield.clock import FakeClock
from regshield.flows.accuracy import BounceReported
from regshield.flows.context import RequestContext, system_actor
from regshield.flows.poll import poll_registry
from regshield.flows.runner import run_flow
from regshield.flows.sweeps import sweep
from regshield.registry.codec import ResultCode
from regshield.registry.commands import DomainTransfer
from regshield.security.tokens import digest
from regshield.services import Services
from regshield.store.models import (
    ContactVerification,
    DomainOperation,
    OutboxItem,
    VerificationToken,
)

JANE = "jane@example.net"
DAY = timedelta(days=1)


async def registered(api: httpx.AsyncClient, holder: Holder, services: Services,
                     name: str = "example.test") -> None:
    response = await register(api, holder, name)
    assert response.status_code == 201, response.text
    await run_outbox(services)


async def verification_rows(services: Services) -> list[ContactVerification]:
    async with services.store.read() as session:
        return list(await session.scalars(select(ContactVerification)
                                          .order_by(ContactVerification.id)))


async def test_a_registration_mails_a_single_use_link_whose_token_is_stored_hashed(
        api: httpx.AsyncClient, holder: Holder, registry: Registry,
        services: Services) -> None:
    await registered(api, holder, services)

    [message] = verification_mails(services)
    assert str(message["To"]) == JANE
    text = text_of(message)
    [token] = tokens(services)
    assert f"{services.settings.public_url}/verify/{token}" in text
    assert "example.test" in text and len(token) == 43
    async with services.store.read() as session:
        stored = list(await session.scalars(select(VerificationToken)))
        payloads = [row.payload for row in await session.scalars(select(OutboxItem))]
    assert [row.token_hash for row in stored] == [digest(token)]
    assert token not in repr(payloads)
    [started] = await events(services, "accuracy:verification:started")
    assert started.summary["cause"] == "registration"
    assert JANE not in repr([e.summary for e in await events(services, "accuracy:")])
    told = [m for m in mails(services) if "Registrant verification sent" in str(m["Subject"])]
    assert [str(m["To"]) for m in told] == [holder.identity.email]
    assert token not in text_of(told[0])


async def test_unverified_registrant_is_suspended_on_day_16_and_lifted_by_the_link(
        api: httpx.AsyncClient, holder: Holder, registry: Registry, services: Services,
        clock: FakeClock) -> None:
    await registered(api, holder, services)
    before = registry.domain("example.test")
    assert before is not None and before["nameservers"] == NS
    assert "clientHold" not in before["statuses"]

    clock.advance(7 * DAY)
    await sweep(services)
    await run_outbox(services)
    clock.advance(7 * DAY)
    await sweep(services)
    await run_outbox(services)
    first, _, last = tokens(services, JANE)
    reminders = [m for m in mails(services) if "verification reminder" in str(m["Subject"])]
    assert [str(m["To"]) for m in reminders] == [holder.identity.email] * 2
    assert registry.domain("example.test")["statuses"] == before["statuses"]  # type: ignore[index]

    clock.advance(DAY + timedelta(seconds=1))  # day 15 and one second
    started = await sweep(services)
    assert len(started) == 1
    held = registry.domain("example.test")
    assert held is not None
    assert {"clientHold", "clientTransferProhibited"} <= held["statuses"]
    assert held["nameservers"] == NS
    assert len(await sweep(services)) == 0  # run twice, suspends once
    assert len(await events(services, "accuracy:domain:suspended")) == 1
    fetched = (await api.get(f"{DOMAINS}/example.test", headers=holder.headers)).json()
    assert "accuracy_suspension" in fetched["holds"] and "clientHold" in fetched["statuses"]
    await run_outbox(services)
    suspended = [m for m in mails(services) if "Domain suspended" in str(m["Subject"])]
    assert sorted(str(m["To"]) for m in suspended) == sorted([JANE, holder.identity.email])

    expired = await api.post(f"/verify/{first}")
    assert expired.status_code == 410
    assert "clientHold" in registry.domain("example.test")["statuses"]  # type: ignore[index]

    answered = await api.post(f"/verify/{last}")
    assert answered.status_code == 200, answered.text
    assert "verified" in answered.text and answered.headers["content-type"].startswith(
        "text/html")
    lifted = registry.domain("example.test")
    assert lifted is not None
    assert "clientHold" not in lifted["statuses"]
    assert lifted["nameservers"] == NS
    assert lifted["statuses"] == before["statuses"]  # the registrar lock stays
    fetched = (await api.get(f"{DOMAINS}/example.test", headers=holder.headers)).json()
    assert "accuracy_suspension" not in fetched["holds"]
    assert fetched["registrar_lock"] is True
    await run_outbox(services)
    told = [m for m in mails(services) if "suspension lifted" in str(m["Subject"])]
    assert sorted(str(m["To"]) for m in told) == sorted([JANE, holder.identity.email])

    async with services.store.read() as session:
        operations = await session.scalar(select(func.count()).select_from(DomainOperation))
    again = await api.post(f"/verify/{last}")
    assert again.status_code == 409
    assert (await api.post(f"/verify/{first}")).status_code in (409, 410)
    async with services.store.read() as session:
        assert await session.scalar(
            select(func.count()).select_from(DomainOperation)) == operations
    assert len(await events(services, "accuracy:verification:verified")) == 1
    assert len(await events(services, "accuracy:domain:lifted")) == 1
    clock.advance(30 * DAY)
    await sweep(services)
    assert len(await events(services, "accuracy:domain:suspended")) == 1


async def test_a_link_answered_in_time_means_no_suspension(
        api: httpx.AsyncClient, holder: Holder, registry: Registry, services: Services,
        clock: FakeClock) -> None:
    await registered(api, holder, services)
    [token] = tokens(services)
    clock.advance(3 * DAY)

    assert (await api.post(f"/verify/{token}")).status_code == 200
    clock.advance(20 * DAY)
    await sweep(services)
    await run_outbox(services)

    assert await events(services, "accuracy:domain:suspended") == []
    assert await events(services, "accuracy:domain:lifted") == []
    assert len(tokens(services)) == 1  # no reminders after the answer
    assert "clientHold" not in registry.domain("example.test")["statuses"]  # type: ignore[index]


async def test_opening_a_link_changes_nothing_until_the_registrant_confirms(
        api: httpx.AsyncClient, holder: Holder, registry: Registry,
        services: Services) -> None:
    await registered(api, holder, services)
    [token] = tokens(services)
    for _ in range(3):  # a mail scanner, a link preview, the registrant
        opened = await api.get(f"/verify/{token}")
        assert opened.status_code == 200
        assert opened.headers["x-verification-result"] == "unconfirmed"
        assert '<form method="post">' in opened.text
    assert [row.state for row in await verification_rows(services)] == ["pending"]
    assert await events(services, "accuracy:verification:verified") == []

    confirmed = await api.post(f"/verify/{token}")
    assert confirmed.status_code == 200
    assert confirmed.headers["x-verification-result"] == "verified"
    assert [row.state for row in await verification_rows(services)] == ["verified"]


async def test_links_that_are_not_ours_answer_a_page_and_change_nothing(
        api: httpx.AsyncClient, services: Services) -> None:
    for token in ("x", "A" * 43, "%00", "Z" * 5000, "<script>alert(1)<", "%F0%9F%98"):
        response = await api.post(f"/verify/{token}")
        assert response.status_code == 404, token
        assert response.headers["content-type"].startswith("text/html")
        assert "<script>" not in response.text
    # Not a verification path at all once decoded: the application's own 404.
    assert (await api.post("/verify/..%2F..%2Fetc%2Fpasswd")).status_code == 404
    assert await events(services, "accuracy:") == []


async def test_an_identical_verified_contact_needs_no_new_verification(
        api: httpx.AsyncClient, holder: Holder, registry: Registry,
        services: Services) -> None:
    await registered(api, holder, services, "example.test")
    [token] = tokens(services)
    # A second domain of the same registrant joins the open verification: no second mail.
    await registered(api, holder, services, "second.test")
    assert len(tokens(services)) == 1
    assert len(await events(services, "accuracy:verification:joined")) == 1
    assert (await api.post(f"/verify/{token}")).status_code == 200

    # The same data written differently, in another contact of the account.
    twin = await api.post("/api/v1/contacts", headers=holder.headers, json=contact_body(
        name="  Jane   Example ", email="Jane@EXAMPLE.net", country="DE"))
    assert twin.status_code == 201, twin.text
    response = await register(api, holder, "third.test", registrant=twin.json()["handle"])
    assert response.status_code == 201, response.text
    await run_outbox(services)

    assert len(tokens(services)) == 1
    [exempt] = await events(services, "accuracy:verification:exempt")
    assert exempt.summary["contact"] == twin.json()["handle"]
    assert exempt.summary["domain"] == "third.test"
    rows = await verification_rows(services)
    assert [row.state for row in rows] == ["verified", "exempt"]
    assert rows[0].fingerprint == rows[1].fingerprint
    assert JANE.split("@")[0] not in rows[0].fingerprint


async def test_a_change_of_registrant_verifies_the_new_registrant(
        api: httpx.AsyncClient, holder: Holder, registry: Registry, services: Services,
        clock: FakeClock) -> None:
    await registered(api, holder, services)
    other = await api.post("/api/v1/contacts", headers=holder.headers, json=contact_body(
        name="Erika Mustermann", email="erika@example.org"))
    assert other.status_code == 201
    clock.advance(timedelta(minutes=6))

    changed = await api.put(f"{DOMAINS}/example.test/registrant", headers=holder.otp(),
                            json={"registrant": other.json()["handle"]})
    assert changed.status_code == 200, changed.text
    await run_outbox(services)

    assert len(tokens(services, "erika@example.org")) == 1
    started = await events(services, "accuracy:verification:started")
    assert [e.summary["cause"] for e in started] == ["registration", "registrant_change"]


async def test_a_complaint_restarts_verification_and_its_clock(
        api: httpx.AsyncClient, holder: Holder, registry: Registry, services: Services,
        clock: FakeClock, world: World) -> None:
    await registered(api, holder, services)
    [first] = tokens(services)
    officer = await world.user("compliance")
    url = f"{DOMAINS}/example.test/accuracy-complaints"
    clock.advance(10 * DAY)

    refused = await api.post(url, headers=holder.headers, json={})
    assert refused.status_code == 403
    bad = await api.post(url, headers=officer.headers, json={"reference": "no spaces"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "reference"
    assert (await api.post(f"{DOMAINS}/unknown.test/accuracy-complaints",
                           headers=officer.headers, json={})).status_code == 404
    filed = await api.post(url, headers=officer.headers, json={"reference": "T-1001"})
    assert filed.status_code == 201, filed.text
    body = filed.json()
    assert body["state"] == "pending" and body["cause"] == "complaint"
    assert body["deadline"].startswith((clock.now() + 15 * DAY).date().isoformat())
    await run_outbox(services)
    assert len(tokens(services)) == 2
    assert (await api.post(f"/verify/{first}")).status_code == 410  # replaced

    clock.advance(5 * DAY + timedelta(seconds=1))  # day 15 of the first verification
    await sweep(services)
    assert await events(services, "accuracy:domain:suspended") == []
    clock.advance(10 * DAY)  # day 15 of the second
    await sweep(services)
    assert len(await events(services, "accuracy:domain:suspended")) == 1
    assert "clientHold" in registry.domain("example.test")["statuses"]  # type: ignore[index]


async def test_a_complaint_about_verified_data_asks_again(
        api: httpx.AsyncClient, holder: Holder, registry: Registry, services: Services,
        world: World) -> None:
    await registered(api, holder, services)
    [token] = tokens(services)
    assert (await api.post(f"/verify/{token}")).status_code == 200
    officer = await world.user("compliance")

    filed = await api.post(f"{DOMAINS}/example.test/accuracy-complaints",
                           headers=officer.headers, json={})
    assert filed.status_code == 201, filed.text
    await run_outbox(services)

    assert len(tokens(services)) == 2
    assert [row.state for row in await verification_rows(services)] == \
        ["superseded", "pending"]


async def test_a_bounced_notice_restarts_verification(
        api: httpx.AsyncClient, holder: Holder, registry: Registry, services: Services,
        world: World) -> None:
    await registered(api, holder, services)
    [token] = tokens(services)
    assert (await api.post(f"/verify/{token}")).status_code == 200

    view = await run_flow(services, system_actor("mail"), RequestContext("system"),
                          BounceReported(holder.contact, "bounce-42"))
    await run_outbox(services)

    assert view is not None and view.cause == "bounce" and view.contact == holder.contact
    assert len(tokens(services)) == 2
    [reported] = await events(services, "accuracy:bounce:reported")
    assert reported.summary["domains"] == ["example.test"]


async def test_a_new_domain_of_an_overdue_registrant_gets_its_own_fifteen_days(
        api: httpx.AsyncClient, holder: Holder, registry: Registry, services: Services,
        clock: FakeClock) -> None:
    await registered(api, holder, services, "example.test")
    clock.advance(16 * DAY)
    await sweep(services)
    assert "clientHold" in registry.domain("example.test")["statuses"]  # type: ignore[index]

    await registered(api, holder, services, "second.test")
    await sweep(services)

    assert "clientHold" not in registry.domain("second.test")["statuses"]  # type: ignore[index]
    fresh = tokens(services)[-1]
    assert [row.state for row in await verification_rows(services)] == \
        ["superseded", "pending"]
    assert (await api.post(f"/verify/{fresh}")).status_code == 200
    # The answer clears the contact: the first domain's suspension is lifted too.
    assert "clientHold" not in registry.domain("example.test")["statuses"]  # type: ignore[index]


async def test_a_transfer_in_without_a_registrant_here_records_why_nothing_is_verified(
        api: httpx.AsyncClient, holder: Holder, registry: Registry,
        services: Services) -> None:
    await transfer_in(api, holder, registry)
    approved = await as_other_registrar(registry, DomainTransfer("other.test", op="approve"))
    assert approved.code == ResultCode.COMPLETED
    assert await poll_registry(services, "sandbox") == 1

    [skipped] = await events(services, "accuracy:verification:skipped")
    assert skipped.summary == {"domain": "other.test", "cause": "transfer_in",
                               "reason": "no_registrant"}
    await run_outbox(services)
    assert tokens(services) == []


async def test_a_transfer_in_naming_a_registrant_verifies_it_and_rdap_publishes_it(
        api: httpx.AsyncClient, holder: Holder, registry: Registry,
        services: Services) -> None:
    code = "Moving-0ver-2026!"
    await other_registrars_domain(registry, "other.test", code)
    unknown = await api.post("/api/v1/transfers", headers=holder.headers, json={
        "name": "other.test", "auth_code": code, "registrant": "RS-NOSUCHONE"})
    assert unknown.status_code == 422, unknown.text
    assert [e["field"] for e in unknown.json()["errors"]] == ["registrant"]
    asked = await api.post("/api/v1/transfers", headers=holder.headers, json={
        "name": "other.test", "auth_code": code, "registrant": holder.contact})
    assert asked.status_code == 202, asked.text
    assert (await api.get("/rdap/domain/other.test")).status_code == 404  # not ours yet

    approved = await as_other_registrar(registry, DomainTransfer("other.test", op="approve"))
    assert approved.code == ResultCode.COMPLETED
    assert await poll_registry(services, "sandbox") == 1
    await run_outbox(services)

    [started] = await events(services, "accuracy:verification:started")
    assert (started.summary["cause"], started.summary["domain"]) == ("transfer_in", "other.test")
    assert len(tokens(services, JANE)) == 1
    published = await api.get("/rdap/domain/other.test")
    assert published.status_code == 200, published.text
    roles = [entity["roles"] for entity in published.json()["entities"]]
    assert ["registrant"] in roles


async def test_a_link_followed_while_the_registry_is_down_lifts_the_hold_later(
        api: httpx.AsyncClient, holder: Holder, registry: Registry, services: Services,
        clock: FakeClock) -> None:
    await registered(api, holder, services)
    clock.advance(14 * DAY)
    await sweep(services)
    await run_outbox(services)
    clock.advance(DAY + timedelta(seconds=1))
    await sweep(services)
    token = tokens(services)[-1]
    await registry.restart(clock, down=True)

    answered = await api.post(f"/verify/{token}")

    assert answered.status_code == 200, answered.text
    await registry.restart(clock)
    assert "clientHold" in registry.domain("example.test")["statuses"]  # type: ignore[index]
    clock.advance(timedelta(minutes=5))
    await run_outbox(services)
    lifted = registry.domain("example.test")
    assert lifted is not None
    assert "clientHold" not in lifted["statuses"] and lifted["nameservers"] == NS


async def test_an_edit_of_the_registrants_own_data_is_verified_again(
        api: httpx.AsyncClient, holder: Holder, registry: Registry,
        services: Services) -> None:
    await registered(api, holder, services)
    [first] = tokens(services)
    assert (await api.post(f"/verify/{first}")).status_code == 200

    # A contact that is no domain's registrant starts nothing when edited.
    spare = await api.post("/api/v1/contacts", headers=holder.headers, json=contact_body(
        name="Erika Mustermann", email="erika@example.org"))
    assert spare.status_code == 201
    edited = await api.patch(f"/api/v1/contacts/{spare.json()['handle']}",
                             headers=holder.headers, json={"city": "Hamburg"})
    assert edited.status_code == 200, edited.text
    assert len(await events(services, "accuracy:verification:started")) == 1

    # A new address is a change of registrant: it needs a step-up.
    moved = await api.patch(f"/api/v1/contacts/{holder.contact}", headers=holder.otp(),
                            json={"email": "jane.new@example.net"})
    assert moved.status_code == 200, moved.text
    await run_outbox(services)

    started = await events(services, "accuracy:verification:started")
    assert [e.summary["cause"] for e in started] == ["registration", "contact_update"]
    assert len(tokens(services, "jane.new@example.net")) == 1


async def test_data_corrected_while_a_link_is_open_gets_a_new_link_and_the_old_one_ends(
        api: httpx.AsyncClient, holder: Holder, registry: Registry,
        services: Services) -> None:
    await registered(api, holder, services)
    [old] = tokens(services)
    corrected = await api.patch(f"/api/v1/contacts/{holder.contact}", headers=holder.headers,
                                json={"phone": "+49 30 87654321"})
    assert corrected.status_code == 200, corrected.text
    await run_outbox(services)

    [old_again, new] = tokens(services)
    assert old_again == old and new != old
    assert (await api.post(f"/verify/{old}")).status_code == 410
    assert (await api.post(f"/verify/{new}")).status_code == 200
    assert [row.state for row in await verification_rows(services)] == [
        "superseded", "verified"]
