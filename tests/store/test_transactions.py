"""`Store.write` and `Store.read`: a cancellation never cuts a transaction's end off.

A stopping server cancels its tasks wherever they are. Each test cancels a task at one point
of its transaction (as the connection begins, as a statement runs, as the commit runs), from
an engine event, so that the cancellation lands there and nowhere else."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from regshield.services import Services
from regshield.store.models import Registrar

# Where a cancellation lands: the connection's BEGIN, a statement, the commit, and the
# connection's return to the pool (its reset), each an engine or pool event.
POINTS = {"begin": "begin", "statement": "before_cursor_execute", "commit": "commit",
          "reset": "reset"}


_CANCEL_ME: contextvars.ContextVar[asyncio.Task[Any] | None] = contextvars.ContextVar(
    "cancel_me", default=None)


@contextmanager
def cancelled_at(services: Services, point: str) -> Iterator[Callable[[Any], Any]]:
    """Start tasks (with the function given) that are cancelled the first time their
    connection reaches `point`, from whichever task of theirs the driver's work runs in."""
    engine = services.store.engine.sync_engine
    fired: list[asyncio.Task[Any]] = []

    def cancel(*_args: Any, **_kwargs: Any) -> None:
        task = _CANCEL_ME.get()
        if task is not None and task not in fired:
            fired.append(task)
            task.cancel()  # raised at the task's next wait: the driver's work at this point

    def start(work: Any) -> asyncio.Task[Any]:
        async def marked() -> Any:
            current = asyncio.current_task()
            _CANCEL_ME.set(current)
            return await work

        return asyncio.create_task(marked())

    event.listen(engine, POINTS[point], cancel)
    try:
        yield start
    finally:
        event.remove(engine, POINTS[point], cancel)
    assert fired, f"no task reached {point}"


async def _rename(services: Services, name: str) -> None:
    async with services.store.write() as session:
        registrar = await session.get(Registrar, 1)
        assert registrar is not None
        registrar.name = name


async def _name(services: Services) -> str:
    async with services.store.read() as session:
        registrar = await session.get(Registrar, 1)
        assert registrar is not None
        return registrar.name


@pytest.mark.parametrize("point", list(POINTS))
async def test_a_cancelled_write_is_whole_or_absent_and_leaves_nothing_held(
        services: Services, caplog: pytest.LogCaptureFixture, point: str) -> None:
    caplog.set_level(logging.ERROR, logger="sqlalchemy.pool")
    before = await _name(services)
    with cancelled_at(services, point) as start:
        task = start(_rename(services, "Renamed"))
        with pytest.raises(asyncio.CancelledError):
            await task

    # Cancelled once committing, the change is written whole; before that, not at all.
    written = point in ("commit", "reset")
    assert await _name(services) == ("Renamed" if written else before)
    assert services.store.engine.pool.checkedout() == 0
    # No lock is left behind (on SQLite a writer would wait out the busy timeout).
    await asyncio.wait_for(_rename(services, "After"), timeout=5)
    assert await _name(services) == "After"
    assert not [record.getMessage() for record in caplog.records
                if record.name.startswith("sqlalchemy")]


@pytest.mark.parametrize("point", list(POINTS))
async def test_a_cancelled_read_returns_its_connection(
        services: Services, caplog: pytest.LogCaptureFixture, point: str) -> None:
    caplog.set_level(logging.ERROR, logger="sqlalchemy.pool")
    with cancelled_at(services, point) as start:
        task = start(_name(services))
        with pytest.raises(asyncio.CancelledError):
            await task

    assert services.store.engine.pool.checkedout() == 0
    await asyncio.wait_for(_rename(services, "After"), timeout=5)
    assert not [record.getMessage() for record in caplog.records
                if record.name.startswith("sqlalchemy")]



async def test_a_snapshot_reads_one_state_of_the_store(services: Services) -> None:
    # PostgreSQL: REPEATABLE READ, set before the transaction's first statement.
    async with services.store.snapshot() as session:
        first = await _name_in(session)
        await _rename(services, "Changed meanwhile")
        assert await _name_in(session) == first
        if not services.store.is_sqlite:
            level = (await session.execute(text("SHOW transaction_isolation"))).scalar()
            assert level == "repeatable read"
    assert await _name(services) == "Changed meanwhile"


async def _name_in(session: AsyncSession) -> str:
    name = (await session.execute(select(Registrar.name).where(Registrar.id == 1))).scalar()
    assert name is not None
    return name


async def test_writes_cancelled_at_every_step_leave_no_lock_behind(services: Services) -> None:
    # Cancelled at each of its waits in turn: the next writer must not find the database
    # locked. (SQLite kept a connection dropped in the middle of a statement open, with its
    # writer's lock, until the statement's cursor was collected; writers then waited out the
    # busy timeout, 30 s.)
    for turns in [*range(60)] * 3:  # where each wait ends varies from run to run
        task = asyncio.create_task(_rename(services, f"Renamed {turns}"))
        for _ in range(turns):
            await asyncio.sleep(0)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await asyncio.wait_for(_rename(services, "After"), timeout=5)
        assert services.store.engine.pool.checkedout() == 0
