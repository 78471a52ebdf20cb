"""The transactional outbox: side effects are queued with the change that causes them, run by the
worker with retries and backoff, and every outcome is an event on the hash chain."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from sql_statements import statements
from sqlalchemy import func, select

from regshield.clock import FakeClock
from regshield.config import Settings
from regshield.eventlog.chain import verify
from regshield.flows.context import RequestContext, system_actor
from regshield.flows.runner import Tx, run_flow
from regshield.outbox.worker import LEASE, MAX_ATTEMPTS, MAX_BACKOFF, OutboxWorker, backoff
from regshield.services import Services
from regshield.store.models import Event, OutboxItem


class Boom(Exception):
    pass


@dataclass(frozen=True)
class Notify:
    """A test flow: records a change and queues its side effect."""

    recipient: str
    dedupe_key: str | None = None
    fail_after_enqueue: bool = False
    kind: str = "notify"

    async def run(self, tx: Tx) -> str:
        tx.enqueue(self.kind, {"to": self.recipient}, dedupe_key=self.dedupe_key)
        tx.record("test:notification:queued", account=None, to=self.recipient)
        if self.fail_after_enqueue:
            raise Boom("the flow changed its mind")
        return self.recipient


async def queue(services: Services, flow: Notify) -> str:
    return await run_flow(services, system_actor("test"), RequestContext("cli"), flow)


async def outbox_rows(services: Services) -> list[OutboxItem]:
    async with services.store.read() as session:
        return list((await session.execute(select(OutboxItem).order_by(OutboxItem.id)))
                    .scalars().all())


async def events(services: Services, tag_prefix: str = "") -> list[Event]:
    async with services.store.read() as session:
        rows = (await session.execute(select(Event).order_by(Event.seq))).scalars().all()
    return [e for e in rows if e.tag.startswith(tag_prefix)]


class Recorder:
    """A handler that remembers what it ran, or fails with a message quoting personal data."""

    def __init__(self, failures: int = 0) -> None:
        self.calls: list[dict[str, Any]] = []
        self.failures = failures

    async def __call__(self, _services: Services, payload: dict[str, Any]) -> None:
        self.calls.append(payload)
        if len(self.calls) <= self.failures:
            raise Boom(f"mailbox of {payload['to']} refused")


async def test_side_effect_is_written_in_the_flows_transaction(services: Services) -> None:
    await queue(services, Notify("jane@example.net"))

    [row] = await outbox_rows(services)
    assert row.kind == "notify"
    assert row.payload == {"to": "jane@example.net"}
    assert row.attempts == 0 and row.completed_at is None and not row.failed
    assert [e.tag for e in await events(services, "test:")] == ["test:notification:queued"]


async def test_flow_that_raises_after_enqueue_leaves_no_outbox_row_and_no_event(
        services: Services) -> None:
    before = await events(services)

    with pytest.raises(Boom):
        await queue(services, Notify("jane@example.net", fail_after_enqueue=True))

    assert await outbox_rows(services) == []
    assert [e.seq for e in await events(services)] == [e.seq for e in before]
    async with services.store.read() as session:
        assert (await verify(session)).ok


async def test_worker_runs_a_queued_effect_once_and_records_completion(
        services: Services, clock: FakeClock) -> None:
    await queue(services, Notify("jane@example.net"))
    handler = Recorder()
    worker = OutboxWorker(services, handlers={"notify": handler})

    assert await worker.run_once() == 1
    assert await worker.run_once() == 0
    clock.advance(timedelta(days=1))
    assert await worker.run_once() == 0

    assert handler.calls == [{"to": "jane@example.net"}]
    [row] = await outbox_rows(services)
    assert row.completed_at is not None and row.attempts == 1 and not row.failed
    [done] = await events(services, "outbox:")
    assert done.tag == "outbox:notify:completed"
    assert done.actor == "system:outbox" and done.channel == "system"
    assert done.summary == {"item": row.id, "attempts": 1}
    async with services.store.read() as session:
        assert (await verify(session)).ok


async def test_items_that_ran_are_recorded_together_and_a_failure_at_once(
        services: Services) -> None:
    for index in range(20):
        await queue(services, Notify(f"user{index}@example.net"))
    handler = Recorder()

    async def fails_for_one(services: Services, payload: dict[str, Any]) -> None:
        if payload["to"] == "user7@example.net":
            raise Boom("mailbox refused")
        await handler(services, payload)

    with statements(services) as sent:
        assert await OutboxWorker(services, handlers={"notify": fails_for_one}).run_once() == 20

    rows = await outbox_rows(services)
    assert [row.completed_at is not None for row in rows] == [i != 7 for i in range(20)]
    assert rows[7].last_error == "Boom: mailbox refused" and rows[7].claimed_by is None
    assert all(row.claimed_by is None for row in rows)
    done = await events(services, "outbox:")
    assert sorted(e.summary["item"] for e in done if e.tag == "outbox:notify:completed") == [
        row.id for i, row in enumerate(rows) if i != 7]
    assert [e.summary["item"] for e in done if e.tag == "outbox:notify:retrying"] == [rows[7].id]
    # The claim, the failure, and the 19 completions in one or two more transactions (they
    # are recorded together for at most SETTLE_EVERY_SECONDS), not 19.
    writes = [s for s in sent if s.startswith("UPDATE outbox")]
    assert 3 <= len(writes) <= 4, writes
    async with services.store.read() as session:
        assert (await verify(session)).ok


async def test_a_look_ahead_sees_the_batchs_items_of_its_kind_before_any_runs(
        services: Services) -> None:
    for index in range(3):
        await queue(services, Notify(f"user{index}@example.net"))
    await queue(services, Notify("other@example.net", kind="other"))
    order: list[str] = []

    async def look(_services: Services, payloads: list[dict[str, Any]]) -> None:
        order.append(f"ahead {[payload['to'] for payload in payloads]}")

    async def handle(_services: Services, payload: dict[str, Any]) -> None:
        order.append(payload["to"])

    worker = OutboxWorker(services, handlers={"notify": handle, "other": handle},
                          ahead={"notify": look})
    assert await worker.run_once() == 4
    assert order == ["ahead ['user0@example.net', 'user1@example.net', 'user2@example.net']",
                     "user0@example.net", "user1@example.net", "user2@example.net",
                     "other@example.net"]


async def test_a_look_ahead_that_fails_leaves_the_items_to_run_as_they_would(
        services: Services) -> None:
    await queue(services, Notify("jane@example.net"))

    async def look(_services: Services, _payloads: list[dict[str, Any]]) -> None:
        raise Boom("the look ahead could not read")

    handler = Recorder()
    worker = OutboxWorker(services, handlers={"notify": handler}, ahead={"notify": look})
    assert await worker.run_once() == 1
    assert handler.calls == [{"to": "jane@example.net"}]
    [row] = await outbox_rows(services)
    assert row.completed_at is not None and not row.failed


async def test_a_stop_records_the_items_that_ran_before_it(services: Services) -> None:
    for index in range(3):
        await queue(services, Notify(f"user{index}@example.net"))
    third = asyncio.Event()

    async def hangs_on_the_third(_services: Services, payload: dict[str, Any]) -> None:
        if payload["to"] == "user2@example.net":
            third.set()
            await asyncio.sleep(3600)

    worker = OutboxWorker(services, handlers={"notify": hangs_on_the_third})
    running = asyncio.create_task(worker.run_once())
    await asyncio.wait_for(third.wait(), timeout=10)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running

    rows = await outbox_rows(services)
    assert [row.completed_at is not None for row in rows] == [True, True, False]
    assert rows[2].claimed_by == services.life.identity  # leased: run again after the stop
    assert len(await events(services, "outbox:notify:completed")) == 2


async def test_colon_in_kind_keeps_the_event_tag_three_parts(services: Services) -> None:
    await queue(services, Notify("jane@example.net", kind="mail:send"))

    await OutboxWorker(services, handlers={"mail:send": Recorder()}).run_once()

    assert [e.tag for e in await events(services, "outbox:")] == ["outbox:mail.send:completed"]


async def test_failing_handler_is_retried_after_backoff_then_succeeds(
        services: Services, clock: FakeClock) -> None:
    await queue(services, Notify("jane@example.net"))
    handler = Recorder(failures=2)
    worker = OutboxWorker(services, handlers={"notify": handler})

    assert await worker.run_once() == 1  # attempt 1 fails
    [row] = await outbox_rows(services)
    assert row.attempts == 1 and row.completed_at is None and not row.failed
    clock.advance(backoff(1) - timedelta(microseconds=1))
    assert await worker.run_once() == 0  # not due before its backoff has passed
    clock.advance(timedelta(microseconds=1))
    assert await worker.run_once() == 1  # attempt 2 fails
    clock.advance(backoff(2))
    assert await worker.run_once() == 1  # attempt 3 succeeds

    assert len(handler.calls) == 3
    [row] = await outbox_rows(services)
    assert row.completed_at is not None and row.attempts == 3
    assert [e.tag for e in await events(services, "outbox:")] == [
        "outbox:notify:retrying", "outbox:notify:retrying", "outbox:notify:completed"]


async def test_backoff_grows_and_is_capped() -> None:
    delays = [backoff(n) for n in range(1, 30)]
    assert delays == sorted(delays)
    assert delays[0] > timedelta(0)
    assert delays[1] > delays[0]
    assert max(delays) == MAX_BACKOFF


async def test_handler_that_keeps_failing_is_marked_failed_after_max_attempts(
        services: Services, clock: FakeClock) -> None:
    await queue(services, Notify("jane@example.net"))
    handler = Recorder(failures=10 * MAX_ATTEMPTS)
    worker = OutboxWorker(services, handlers={"notify": handler})

    for _ in range(MAX_ATTEMPTS):
        assert await worker.run_once() == 1
        clock.advance(MAX_BACKOFF)
    clock.advance(timedelta(days=30))
    assert await worker.run_once() == 0

    assert len(handler.calls) == MAX_ATTEMPTS
    [row] = await outbox_rows(services)
    assert row.failed and row.completed_at is None and row.attempts == MAX_ATTEMPTS
    outcomes = await events(services, "outbox:")
    assert [e.tag for e in outcomes] == (
        ["outbox:notify:retrying"] * (MAX_ATTEMPTS - 1) + ["outbox:notify:failed"])
    for event in outcomes:
        # The exception type only: its message quotes the recipient's address.
        assert event.summary["error"] == "Boom"
        assert "jane@example.net" not in repr(event.summary)
        assert "refused" not in repr(event.summary)
    async with services.store.read() as session:
        assert (await verify(session)).ok


async def test_effect_without_a_handler_is_retried_and_recorded_as_such(
        services: Services) -> None:
    await queue(services, Notify("jane@example.net", kind="unknown"))

    assert await OutboxWorker(services, handlers={}).run_once() == 1

    [event] = await events(services, "outbox:")
    assert event.tag == "outbox:unknown:retrying"
    assert event.summary["error"] == "NoHandler"


async def test_second_effect_with_the_same_dedupe_key_is_dropped(
        services: Services, clock: FakeClock) -> None:
    await queue(services, Notify("jane@example.net", dedupe_key="welcome:usr_1"))
    clock.advance(timedelta(seconds=1))
    # The second flow still commits its own change; only the duplicate effect is dropped.
    assert await queue(services, Notify("jane@example.net", dedupe_key="welcome:usr_1")) \
        == "jane@example.net"

    [row] = await outbox_rows(services)
    assert row.dedupe_key == "welcome:usr_1"
    assert len(await events(services, "test:notification:queued")) == 2
    handler = Recorder()
    await OutboxWorker(services, handlers={"notify": handler}).run_once()
    assert handler.calls == [{"to": "jane@example.net"}]


async def test_duplicate_dedupe_key_is_dropped_even_after_the_first_ran(
        services: Services) -> None:
    await queue(services, Notify("jane@example.net", dedupe_key="welcome:usr_1"))
    handler = Recorder()
    worker = OutboxWorker(services, handlers={"notify": handler})
    await worker.run_once()

    await queue(services, Notify("jane@example.net", dedupe_key="welcome:usr_1"))
    assert await worker.run_once() == 0

    assert len(handler.calls) == 1
    assert len(await outbox_rows(services)) == 1


async def test_same_dedupe_key_twice_in_one_flow_is_one_effect(services: Services) -> None:
    @dataclass(frozen=True)
    class NotifyTwice:
        async def run(self, tx: Tx) -> None:
            tx.enqueue("notify", {"to": "a"}, dedupe_key="k")
            tx.enqueue("notify", {"to": "a"}, dedupe_key="k")
            tx.record("test:notification:queued", account=None)

    await run_flow(services, system_actor("test"), RequestContext("cli"), NotifyTwice())

    assert len(await outbox_rows(services)) == 1


async def test_effects_without_dedupe_key_are_never_merged(services: Services) -> None:
    await queue(services, Notify("jane@example.net"))
    await queue(services, Notify("jane@example.net"))

    async with services.store.read() as session:
        count = (await session.execute(select(func.count()).select_from(OutboxItem))).scalar_one()
    assert count == 2


@contextlib.asynccontextmanager
async def another_process(settings: Settings) -> AsyncIterator[Services]:
    """Another process on the same database (its own store and connections), holding its life
    until the block ends: then it ends as a process does, and its lock goes with it."""
    other = Services.open(settings)
    try:
        await other.life.hold()
        yield other
    finally:
        await other.close()


async def test_a_lease_of_a_process_that_died_is_released_and_run_at_once(
        services: Services, settings: Settings) -> None:
    # Another process claims a row and dies before settling it.
    await queue(services, Notify("jane@example.net"))
    async with another_process(settings) as other:
        assert [item for item, *_ in await OutboxWorker(other, handlers={})._claim(10)]
        [leased] = await outbox_rows(services)
        assert leased.claimed_by == other.life.identity

    await services.life.hold()
    handler = Recorder()
    worker = OutboxWorker(services, handlers={"notify": handler})
    assert await worker.run_once() == 0  # leased: not due yet
    assert await worker.release_dead() == 1
    assert await worker.run_once() == 1

    assert handler.calls == [{"to": "jane@example.net"}]
    [row] = await outbox_rows(services)
    assert row.completed_at is not None and row.claimed_by is None and row.attempts == 2
    released = await events(services, "outbox:leases:")
    assert [(e.tag, e.summary) for e in released] == [
        ("outbox:leases:released", {"items": [row.id]})]
    async with services.store.read() as session:
        assert (await verify(session)).ok


async def test_a_lease_is_kept_while_its_process_lives_and_released_when_it_ends(
        services: Services, settings: Settings) -> None:
    await queue(services, Notify("jane@example.net"))
    started = asyncio.Event()

    async def stuck(_services: Services, _payload: dict[str, Any]) -> None:
        started.set()
        await asyncio.Event().wait()

    worker = OutboxWorker(services, handlers={"notify": Recorder()})
    async with another_process(settings) as other:
        task = asyncio.create_task(
            OutboxWorker(other, handlers={"notify": stuck}).run_forever(idle_seconds=0.05))
        try:
            await asyncio.wait_for(started.wait(), 10)
            assert await worker.release_dead() == 0
            assert await worker.run_once() == 0
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    assert await worker.release_dead() == 1
    assert await worker.run_once() == 1
    [row] = await outbox_rows(services)
    assert row.completed_at is not None


async def test_a_process_that_holds_no_life_leaves_its_leases_to_run_out(
        services: Services, clock: FakeClock) -> None:
    # A command-line tool records no identity: nobody can tell whether it still runs.
    await queue(services, Notify("jane@example.net"))
    await OutboxWorker(services, handlers={})._claim(10)
    [row] = await outbox_rows(services)
    assert row.claimed_by is None
    worker = OutboxWorker(services, handlers={"notify": Recorder()})
    assert await worker.release_dead() == 0
    clock.advance(LEASE)
    assert await worker.run_once() == 1


async def test_a_process_without_life_tells_a_live_process_from_a_dead_one(
        services: Services, settings: Settings) -> None:
    # A command-line tool beside a running `serve` must not take what `serve` is running, and
    # may take over what a killed one had claimed (on SQLite too: its lock is a file lock).
    await queue(services, Notify("jane@example.net"))
    async with another_process(settings) as running:
        await OutboxWorker(running, handlers={})._claim(10)
        assert await OutboxWorker(services, handlers={}).release_dead() == 0
    [row] = await outbox_rows(services)
    assert row.claimed_by is not None and row.completed_at is None
    assert services.life.identity is None
    assert await OutboxWorker(services, handlers={}).release_dead() == 1
