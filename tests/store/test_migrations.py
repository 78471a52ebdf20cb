"""The migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import Connection

from regshield.services import Services
from regshield.store.models import Base


def _differences(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


async def test_migrated_schema_matches_the_models(services: Services) -> None:
    async with services.store.engine.connect() as connection:
        differences = await connection.run_sync(_differences)
    assert differences == []


async def test_migrating_again_changes_nothing(services: Services) -> None:
    await services.store.migrate()
    async with services.store.read() as session:
        version = (await session.execute(text("SELECT version_num FROM alembic_version"))).all()
    assert version == [("0018",)]


async def test_sqlite_runs_in_wal_mode_with_foreign_keys(services: Services) -> None:
    if not services.store.is_sqlite:
        pytest.skip("a SQLite setting")
    async with services.store.read() as session:
        journal = (await session.execute(text("PRAGMA journal_mode"))).scalar_one()
        foreign_keys = (await session.execute(text("PRAGMA foreign_keys"))).scalar_one()
    assert (journal, foreign_keys) == ("wal", 1)
