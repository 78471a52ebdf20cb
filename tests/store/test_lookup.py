"""`Store.lookup`: one read-only statement outside any transaction, for RDAP and WHOIS."""

from __future__ import annotations

import pytest
from sqlalchemy import bindparam, literal_column, select, text

from regshield.services import Services
from regshield.store.models import Registrar

NAME_OF_REGISTRAR = select(Registrar.name).where(Registrar.id == bindparam("id"))


async def test_a_lookup_reads_committed_data_and_answers_none_for_nothing(
        services: Services) -> None:
    async with services.store.write() as session:
        registrar = await session.get(Registrar, 1)
        assert registrar is not None
        registrar.name = "Lookup Registrar"
    row = await services.store.lookup(NAME_OF_REGISTRAR, {"id": 1})
    assert row is not None and row[0] == "Lookup Registrar"
    assert await services.store.lookup(NAME_OF_REGISTRAR, {"id": 2}) is None


async def test_a_lookup_holds_no_transaction_open(services: Services) -> None:
    # A write right after a lookup finds no read transaction in its way, on either database.
    await services.store.lookup(NAME_OF_REGISTRAR, {"id": 1})
    async with services.store.write() as session:
        registrar = await session.get(Registrar, 1)
        assert registrar is not None
        registrar.name = "After Lookup"
    row = await services.store.lookup(NAME_OF_REGISTRAR, {"id": 1})
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
