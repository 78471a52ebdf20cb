"""Group commit (flows/runner.py): contact creates waiting at one moment share a transaction,
each still all or nothing, each refused or accepted on its own, none crossing tenants."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import httpx
import pytest
from conftest import World
from contact_samples import CONTACTS, contact_body
from sql_statements import statements
from sqlalchemy import func, select
from sqlalchemy.exc import TimeoutError as PoolTimeout

from regshield.errors import Conflict, PermissionDenied, ValidationFailed
from regshield.eventlog.chain import verify
from regshield.flows import contacts as contact_flows
from regshield.flows import runner
from regshield.flows.auth import TokenCreate
from regshield.flows.contacts import ContactCreate, contact_read
from regshield.flows.context import Actor, RequestContext
from regshield.flows.runner import GROUP_LIMIT, run_flow
from regshield.security.authentication import actor_for_bearer
from regshield.services import Services
from regshield.store.models import Contact, DataKey, Event

CREATED = "contacts:contact:created"


async def _actor(services: Services, token: str) -> Actor:
    return await actor_for_bearer(services, token)


async def _count(services: Services, model: Any) -> int:
    async with services.store.read() as session:
        return int((await session.execute(select(func.count()).select_from(model))).scalar_one())


async def _created_events(services: Services) -> list[Event]:
    async with services.store.read() as session:
        return list((await session.execute(
            select(Event).where(Event.tag == CREATED).order_by(Event.seq))).scalars())


def _verb(statement: str) -> str:
    return " ".join(statement.split()[:3])


async def test_creates_at_one_moment_share_one_transaction(
        services: Services, world: World) -> None:
    """Twelve creates of two accounts, all waiting at once: one data-key statement, one
    contact statement, one chain append; each contact sealed for and owned by its own
    account, each event naming its own request."""
    owners = [await world.user("owner", await world.account()) for _ in range(2)]
    actors = [await _actor(services, owner.token) for owner in owners]
    calls = []
    for number in range(12):
        actor = actors[number % 2]
        context = RequestContext("api", "192.0.2.30", request_id=f"req_group_{number}")
        fields = {**contact_body(name=f"Person {number}")}
        calls.append(run_flow(services, actor, context, ContactCreate(fields)))

    with statements(services) as seen:
        views = await asyncio.gather(*calls)

    sent = Counter(_verb(statement) for statement in seen)
    assert sent["INSERT INTO data_keys"] == 1, seen
    assert sent["INSERT INTO contacts"] == 1, seen
    assert sent["INSERT INTO events"] == 1, seen
    assert sent["UPDATE event_chain SET"] == 1, seen
    assert len({view.handle for view in views}) == 12
    for number, view in enumerate(views):
        actor = actors[number % 2]
        assert view.account == actor.account_public_id
        read = await contact_read(services, actor, view.handle)
        assert read.data.name == f"Person {number}"
        other = actors[(number + 1) % 2]
        with pytest.raises(Exception, match="no such contact"):
            await contact_read(services, other, view.handle)
    events = await _created_events(services)
    assert [event.request_id for event in events] == [f"req_group_{n}" for n in range(12)]
    assert [event.summary["contact"] for event in events] == [view.handle for view in views]
    assert [event.account for event in events] == [view.account for view in views]
    async with services.store.snapshot() as session:
        assert (await verify(session)).ok


async def test_a_group_is_at_most_the_limit(services: Services, world: World) -> None:
    owner = await world.user("owner", await world.account())
    actor = await _actor(services, owner.token)
    count = GROUP_LIMIT + 5
    with statements(services) as seen:
        views = await asyncio.gather(*(
            run_flow(services, actor, RequestContext("api"), ContactCreate(contact_body()))
            for _ in range(count)))
    assert len({view.handle for view in views}) == count
    assert Counter(_verb(s) for s in seen)["INSERT INTO contacts"] == 2
    assert await _count(services, Contact) == count


async def test_refused_creates_in_a_group_leave_the_others_whole(
        services: Services, world: World) -> None:
    """In one moment: a valid create, an invalid one, an oversized one, a read-only token, an
    auditor, and a member naming another tenant's account. Each refusal names its field or
    its reason; nothing of theirs is written; the valid creates are."""
    account, other_account = await world.account(), await world.account()
    owner = await world.user("owner", account)
    member = await world.user("member", account)
    auditor = await world.user("auditor")
    read_only = await world.flow(
        TokenCreate(owner.user_id, "read", scopes=("account:contacts:read",)))
    actors = {
        "owner": await _actor(services, owner.token),
        "member": await _actor(services, member.token),
        "auditor": await _actor(services, auditor.token),
        "read_only": await _actor(services, read_only.value),
    }
    contacts_before = await _count(services, Contact)
    keys_before = await _count(services, DataKey)

    def create(who: str, account_ref: str | None = None, **changes: Any) -> Any:
        return run_flow(services, actors[who], RequestContext("api"),
                        ContactCreate(contact_body(**changes), account_ref))

    outcomes = await asyncio.gather(
        create("owner"),
        create("owner", email="not an address"),
        create("member", name="x" * 100_000),
        create("read_only"),
        create("auditor", account),
        create("member", other_account),
        create("member"),
        return_exceptions=True)

    good, bad_email, oversized, read_only_refused, auditor_refused, other_tenant, good2 = \
        outcomes
    assert isinstance(bad_email, ValidationFailed)
    assert [error.field for error in bad_email.errors] == ["email"]
    assert isinstance(oversized, ValidationFailed)
    assert [error.field for error in oversized.errors] == ["name"]
    assert isinstance(read_only_refused, PermissionDenied)
    assert isinstance(auditor_refused, PermissionDenied)
    assert isinstance(other_tenant, ValidationFailed)
    assert [(e.field, e.code) for e in other_tenant.errors] == [("account", "not_found")]
    for view in (good, good2):
        assert not isinstance(view, BaseException), view
        assert view.account == account
    assert await _count(services, Contact) == contacts_before + 2
    assert await _count(services, DataKey) == keys_before + 2
    denied = [event for event in await _all_events(services)
              if event.tag == "authz:permission:denied"]
    assert {event.summary["flow"] for event in denied} == {"ContactCreate"}
    assert len(denied) == 2


async def _all_events(services: Services) -> list[Event]:
    async with services.store.read() as session:
        return list((await session.execute(select(Event).order_by(Event.seq))).scalars())


async def test_a_group_that_fails_on_a_constraint_runs_each_create_alone(
        services: Services, world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two creates given the same handle (improbable, forced here) break the group's insert:
    the group is rolled back whole, each create runs alone, the first is written and the
    second answers Conflict; no data key or event is left of the loser."""
    owner = await world.user("owner", await world.account())
    actor = await _actor(services, owner.token)
    monkeypatch.setattr(contact_flows, "new_handle", lambda: "RS-SAMEHANDLE")
    contacts_before = await _count(services, Contact)
    keys_before = await _count(services, DataKey)

    first, second = await asyncio.gather(
        run_flow(services, actor, RequestContext("api"), ContactCreate(contact_body())),
        run_flow(services, actor, RequestContext("api"), ContactCreate(contact_body())),
        return_exceptions=True)

    assert not isinstance(first, BaseException), first
    assert first.handle == "RS-SAMEHANDLE"
    assert isinstance(second, Conflict)
    assert await _count(services, Contact) == contacts_before + 1
    assert await _count(services, DataKey) == keys_before + 1
    assert [e.summary["contact"] for e in await _created_events(services)] == ["RS-SAMEHANDLE"]
    async with services.store.snapshot() as session:
        assert (await verify(session)).ok


async def test_concurrent_creates_through_the_api_stay_with_their_tenant(
        api: httpx.AsyncClient, services: Services, world: World) -> None:
    """Forty creates of four tenants at once through the real application, with refusals
    among them: each 201 is the caller's own contact, readable by the caller only."""
    owners = [await world.user("owner", await world.account()) for _ in range(4)]
    read_only = await world.flow(TokenCreate(owners[0].user_id, "read",
                                             scopes=("account:contacts:read",)))
    requests = []
    for number in range(40):
        owner = owners[number % 4]
        requests.append(api.post(CONTACTS, json=contact_body(name=f"Tenant {number}"),
                                 headers=owner.headers))
    requests.append(api.post(CONTACTS, json=contact_body(),
                             headers={"Authorization": f"Bearer {read_only.value}"}))
    requests.append(api.post(CONTACTS, json=contact_body(country="zz"),
                             headers=owners[1].headers))

    responses = await asyncio.gather(*requests)

    assert [r.status_code for r in responses[:40]] == [201] * 40, responses[0].text
    assert responses[40].status_code == 403
    assert responses[41].status_code == 422
    assert [e["field"] for e in responses[41].json()["errors"]] == ["country"]
    for number, response in enumerate(responses[:40]):
        handle = response.json()["handle"]
        mine = await api.get(f"{CONTACTS}/{handle}", headers=owners[number % 4].headers)
        assert mine.status_code == 200 and mine.json()["name"] == f"Tenant {number}"
        theirs = await api.get(f"{CONTACTS}/{handle}", headers=owners[(number + 1) % 4].headers)
        assert theirs.status_code == 404
    async with services.store.snapshot() as session:
        assert (await verify(session)).ok


async def test_creates_past_the_waiting_limit_are_refused_as_busy(
        services: Services, world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """A flood of creates does not queue without bound: past the limit a create is refused at
    once as busy (503 at the API), nothing of it written; those admitted are written."""
    owner = await world.user("owner", await world.account())
    actor = await _actor(services, owner.token)
    monkeypatch.setattr(runner, "WAITING_LIMIT", 8)
    contacts_before = await _count(services, Contact)

    outcomes = await asyncio.gather(*(
        run_flow(services, actor, RequestContext("api"), ContactCreate(contact_body()))
        for _ in range(12)), return_exceptions=True)

    busy = [outcome for outcome in outcomes if isinstance(outcome, PoolTimeout)]
    assert len(busy) == 4, outcomes
    assert await _count(services, Contact) == contacts_before + 8
