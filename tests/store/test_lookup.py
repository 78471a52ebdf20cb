"""`Store.lookup`: one read-only statement outside any transaction, for RDAP and WHOIS."""

from __future__ import annotations

import asyncio
import gc
import sqlite3

import pytest
from sqlalchemy import bindparam, literal_column, make_url, select, text

from regshield.services import Services
from regshield.store.models import Registrar

NAME_OF_REGISTRAR = select(Registrar.name).where(Registrar.id == bindparam("id"))


ON_LOOP = pytest.mark.parametrize("on_loop", [False, True], ids=["off-loop", "on-loop"])


@ON_LOOP
async def test_a_lookup_reads_committed_data_and_answers_none_for_nothing(
        services: Services, on_loop: bool) -> None:
    async with services.store.write() as session:
        registrar = await session.get(Registrar, 1)
        assert registrar is not None
        registrar.name = "Lookup Registrar"
    row = await services.store.lookup(NAME_OF_REGISTRAR, {"id": 1}, on_loop=on_loop)
    assert row is not None and row[0] == "Lookup Registrar"
    assert await services.store.lookup(NAME_OF_REGISTRAR, {"id": 2}, on_loop=on_loop) is None


@ON_LOOP
async def test_a_lookup_holds_no_transaction_open(services: Services, on_loop: bool) -> None:
    # A write right after a lookup finds no read transaction in its way, on either database.
    await services.store.lookup(NAME_OF_REGISTRAR, {"id": 1}, on_loop=on_loop)
    async with services.store.write() as session:
        registrar = await session.get(Registrar, 1)
        assert registrar is not None
        registrar.name = "After Lookup"
    row = await services.store.lookup(NAME_OF_REGISTRAR, {"id": 1}, on_loop=on_loop)
    assert row is not None and row[0] == "After Lookup"


async def test_a_lookup_on_a_connection_the_server_dropped_is_tried_once_more(
        services: Services) -> None:
    if services.store.is_sqlite:
        pytest.skip("an SQLite file has no server to drop connections")
    own_pid = select(literal_column("pg_backend_pid()"))
    before = await services.store.lookup(own_pid, {})
    assert before is not None
    async with services.store.read() as session:
        await session.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": before[0]})
    after = await services.store.lookup(own_pid, {})
    assert after is not None and after[0] != before[0]


@ON_LOOP
async def test_a_lookup_during_a_write_sees_what_was_committed_without_waiting(
        services: Services, on_loop: bool) -> None:
    async with services.store.write() as session:
        registrar = await session.get(Registrar, 1)
        assert registrar is not None
        before = registrar.name
        registrar.name = "Not Yet Committed"
        await session.flush()
        row = await asyncio.wait_for(
            services.store.lookup(NAME_OF_REGISTRAR, {"id": 1}, on_loop=on_loop), 2)
        assert row is not None and row[0] == before


async def test_an_sqlite_lookup_that_would_wait_for_a_lock_waits_off_the_event_loop(
        services: Services) -> None:
    """Lookups run on the event loop's thread on SQLite; one that meets a lock (here a
    connection holding the file exclusively) goes the asynchronous way and answers once the
    lock is gone, while the loop goes on serving."""
    if not services.store.is_sqlite:
        pytest.skip("the lookups on the event loop's thread are SQLite's")
    database = make_url(services.store.url).database
    assert database is not None
    holder = sqlite3.connect(database, isolation_level=None)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("UPDATE registrar SET name = name WHERE id = 1")
    # What is timed is the lookup, not the test process's collector: late in a full run its
    # heap is large, and a full collection there can stall the loop longer than the bound
    # (a 1.7 s stall was seen once, in a full run only).
    gc.disable()
    try:
        lookup = asyncio.ensure_future(
            services.store.lookup(NAME_OF_REGISTRAR, {"id": 1}, on_loop=True))
        loop = asyncio.get_running_loop()
        longest = 0.0
        for _ in range(20):
            started = loop.time()
            await asyncio.sleep(0.01)
            longest = max(longest, loop.time() - started)
        assert longest < 0.5 and not lookup.done()
        holder.execute("COMMIT")
    finally:
        gc.enable()
        holder.close()
    row = await asyncio.wait_for(lookup, 10)
    assert row is not None and row[0]
