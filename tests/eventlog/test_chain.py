"""The event log is evidence: every change appends a hash-chained event, the database refuses to
change or remove events, and `regshield events verify` names the first event that was tampered
with."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import PASSWORD, World
from sqlalchemy import delete, select, text, update
from sqlalchemy.exc import DBAPIError

from regshield.clock import as_utc
from regshield.config import Settings
from regshield.errors import ValidationFailed
from regshield.eventlog.chain import verify
from regshield.flows.accounts import AccountCreate
from regshield.flows.context import RequestContext, system_actor
from regshield.flows.runner import run_flow
from regshield.services import Services
from regshield.store.models import Event, EventChainHead

REGSHIELD = str(Path(sys.executable).with_name("regshield"))
GENESIS = "0" * 64


@dataclass(frozen=True)
class Completed:
    code: int
    stdout: str
    stderr: str


async def regshield(settings: Settings, *args: str) -> Completed:
    """Run the CLI against the test's installation, as an operator would."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGSHIELD_")}
    process = await asyncio.create_subprocess_exec(
        REGSHIELD, "--home", str(settings.home), "--database-url", settings.database_url, *args,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=env,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return Completed(process.returncode, stdout.decode(), stderr.decode())


def expected_hash(event: Event) -> str:
    """The chain's hash, restated from its definition: SHA-256 over canonical JSON."""
    canonical = json.dumps(
        {
            "seq": event.seq, "prev_hash": event.prev_hash, "tag": event.tag,
            "actor": event.actor, "account": event.account, "channel": event.channel,
            "source_address": event.source_address, "request_id": event.request_id,
            "occurred_at": as_utc(event.occurred_at).isoformat(timespec="microseconds"),
            "summary": event.summary,
        },
        sort_keys=True, separators=(",", ":"), ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


async def all_events(services: Services) -> list[Event]:
    async with services.store.read() as session:
        return list((await session.execute(select(Event).order_by(Event.seq))).scalars().all())


async def chain_head(services: Services) -> EventChainHead:
    async with services.store.read() as session:
        return (await session.execute(select(EventChainHead))).scalar_one()


async def execute(services: Services, statement: Any) -> None:
    async with services.store.engine.begin() as connection:
        await connection.execute(statement)


@asynccontextmanager
async def append_only_triggers_removed(services: Services) -> AsyncIterator[None]:
    """What an attacker with raw database access can do first."""
    if services.store.is_sqlite:
        for name in ("events_no_update", "events_no_delete"):
            await execute(services, text(f"DROP TRIGGER {name}"))
        yield
        return
    await execute(services, text("ALTER TABLE events DISABLE TRIGGER USER"))
    try:
        yield
    finally:  # the PostgreSQL test database outlives this test
        await execute(services, text("ALTER TABLE events ENABLE TRIGGER USER"))


async def make_history(services: Services, accounts: int) -> list[Event]:
    for n in range(accounts):
        await run_flow(services, system_actor("test"), RequestContext("cli"),
                       AccountCreate(f"customer {n}"))
    return await all_events(services)


async def test_every_flow_appends_linked_events_numbered_from_one(
        services: Services, world: World, api: httpx.AsyncClient) -> None:
    account = await world.account("acme")
    admin = await world.user("admin")
    await world.user("member", account=account)
    with pytest.raises(ValidationFailed):  # refused input writes nothing, not even an event
        await world.flow(AccountCreate("acc_reserved"))
    login = await api.post("/api/v1/auth/login",
                           json={"email": admin.email, "password": PASSWORD})
    assert login.status_code == 200

    events = await all_events(services)

    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert len(events) >= 7
    assert events[0].prev_hash == GENESIS
    for before, event in pairwise(events):
        assert event.prev_hash == before.hash
    for event in events:
        assert event.hash == expected_hash(event)
        assert len(event.tag.split(":")) == 3
    assert len({e.hash for e in events}) == len(events)
    head = await chain_head(services)
    assert (head.last_seq, head.last_hash) == (events[-1].seq, events[-1].hash)
    tags = [e.tag for e in events]
    assert "accounts:account:created" in tags
    assert "users:user:created" in tags
    assert "auth:login:succeeded" in tags


async def test_event_carries_actor_channel_address_and_request_id_of_an_api_request(
        services: Services, world: World, api: httpx.AsyncClient) -> None:
    admin = await world.user("admin")

    created = await api.post("/api/v1/accounts", json={"name": "acme"},
                             headers={**admin.headers, "X-Request-ID": "trace-7f3a.1"})
    assert created.status_code == 201, created.text
    listed = await api.get("/api/v1/events", params={"tag": "accounts:account:created"},
                           headers=admin.headers)

    assert listed.status_code == 200
    [event] = listed.json()["items"]
    assert event["request_id"] == "trace-7f3a.1"
    assert event["source_address"] == "192.0.2.10"
    assert event["channel"] == "api"
    assert event["actor"] == f"user:{admin.user_id}"
    assert event["account"] == created.json()["account_id"]


async def test_event_of_a_cli_flow_names_the_system_actor_and_cli_channel(
        services: Services) -> None:
    context = RequestContext("cli")
    await run_flow(services, system_actor("cli"), context, AccountCreate("acme"))

    event = (await all_events(services))[-1]
    assert event.tag == "accounts:account:created"
    assert (event.actor, event.channel, event.request_id) == ("system:cli", "cli",
                                                              context.request_id)
    assert event.source_address is None
    assert event.account is not None and event.account.startswith("acc_")


async def test_database_refuses_to_change_or_remove_events(services: Services) -> None:
    await make_history(services, 2)

    with pytest.raises(DBAPIError, match="append-only"):
        await execute(services, update(Event).where(Event.seq == 2).values(actor="someone"))
    with pytest.raises(DBAPIError, match="append-only"):
        await execute(services, delete(Event).where(Event.seq == 2))
    with pytest.raises(DBAPIError, match="append-only"):
        await execute(services, delete(Event))
    if not services.store.is_sqlite:
        with pytest.raises(DBAPIError, match="append-only"):
            await execute(services, text("TRUNCATE events"))

    events = await all_events(services)
    assert [e.seq for e in events] == [1, 2, 3]
    assert events[1].actor == "system:test"
    async with services.store.read() as session:
        assert (await verify(session)).ok


async def test_verify_passes_an_intact_chain_and_names_a_changed_event(
        services: Services, settings: Settings) -> None:
    events = await make_history(services, 4)

    intact = await regshield(settings, "events", "verify")
    assert intact.code == 0, intact.stderr
    assert f"{len(events)} events verified" in intact.stdout
    assert events[-1].hash in intact.stdout

    async with append_only_triggers_removed(services):
        await execute(services, update(Event).where(Event.seq == 3)
                      .values(summary={"note": "nothing happened here"}))
    tampered = await regshield(settings, "events", "verify")

    assert tampered.code != 0
    assert "event 3 does not verify" in tampered.stderr
    assert "content" in tampered.stderr
    assert "Traceback" not in tampered.stderr
    async with services.store.read() as session:
        report = await verify(session)
    assert (report.ok, report.first_bad_seq, report.verified) == (False, 3, 2)


async def test_verify_names_the_missing_event_when_one_is_deleted_from_the_middle(
        services: Services, settings: Settings) -> None:
    await make_history(services, 4)

    async with append_only_triggers_removed(services):
        await execute(services, delete(Event).where(Event.seq == 3))
    result = await regshield(settings, "events", "verify")

    assert result.code != 0
    assert "event 3 does not verify" in result.stderr
    assert "missing" in result.stderr
    assert "Traceback" not in result.stderr


async def test_verify_notices_the_last_event_deleted_because_the_head_records_it(
        services: Services, settings: Settings) -> None:
    events = await make_history(services, 3)
    last = events[-1].seq

    async with append_only_triggers_removed(services):
        await execute(services, delete(Event).where(Event.seq == last))
    result = await regshield(settings, "events", "verify")

    assert result.code != 0
    assert f"event {last} does not verify" in result.stderr
    assert f"records {last} events" in result.stderr
    assert "Traceback" not in result.stderr


async def test_verify_reads_one_snapshot_while_events_are_appended(
        services: Services) -> None:
    await make_history(services, 3)
    async with services.store.snapshot() as session:
        before = (await session.execute(select(EventChainHead.last_seq))).scalar_one()
        # Committed by another writer after the snapshot began (as `serve` does while an
        # auditor runs `events verify`).
        await run_flow(services, system_actor("test"), RequestContext("cli"),
                       AccountCreate("appended meanwhile"))
        report = await verify(session)
    assert report.ok and report.verified == before
    async with services.store.snapshot() as session:
        assert (await verify(session)).verified > before


async def test_verify_names_events_stored_past_the_head(services: Services) -> None:
    events = await make_history(services, 3)
    last = events[-1].seq
    await execute(services, update(EventChainHead).values(
        last_seq=last - 1, last_hash=events[-2].hash))

    async with services.store.snapshot() as session:
        report = await verify(session)

    assert (report.ok, report.first_bad_seq) == (False, last)
    assert report.reason is not None and "without moving the head" in report.reason


async def test_rehashing_a_changed_event_breaks_the_link_of_the_next_one(
        services: Services) -> None:
    events = await make_history(services, 3)
    target = events[1]
    target.summary = {"forged": True}
    forged_hash = expected_hash(target)

    async with append_only_triggers_removed(services):
        await execute(services, update(Event).where(Event.seq == target.seq)
                      .values(summary={"forged": True}, hash=forged_hash))
    async with services.store.read() as session:
        report = await verify(session)

    assert not report.ok
    assert report.first_bad_seq == target.seq + 1
    assert report.reason is not None and "link" in report.reason


async def test_swapping_two_events_is_detected(services: Services) -> None:
    events = await make_history(services, 3)
    first, second = events[1], events[2]

    async with append_only_triggers_removed(services):
        for event, other in ((first, second), (second, first)):
            await execute(services, update(Event).where(Event.seq == event.seq).values(
                summary=other.summary, tag=other.tag, account=other.account))
    async with services.store.read() as session:
        report = await verify(session)

    assert not report.ok and report.first_bad_seq == first.seq


async def test_concurrent_flows_produce_a_gap_free_verifying_chain(services: Services) -> None:
    before = len(await all_events(services))
    count = 30

    created = await asyncio.gather(*(
        run_flow(services, system_actor("test"), RequestContext("cli"),
                 AccountCreate(f"concurrent {n}"))
        for n in range(count)
    ))

    events = await all_events(services)
    assert len({a.public_id for a in created}) == count
    assert [e.seq for e in events] == list(range(1, before + count + 1))
    assert sorted(str(e.account) for e in events if e.tag == "accounts:account:created") == sorted(
        a.public_id for a in created)
    for previous, event in pairwise(events):
        assert event.prev_hash == previous.hash
    async with services.store.read() as session:
        report = await verify(session)
    assert report.ok and report.verified == before + count
    head = await chain_head(services)
    assert head.last_seq == before + count
