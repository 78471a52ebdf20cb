"""`Store.exclusive`: one process (one store) at a time does a named piece of work, on both
databases; on SQLite through file locks beside the database, which leave nothing behind."""

from __future__ import annotations

from regshield.config import Settings
from regshield.services import Services


async def test_one_store_at_a_time_holds_a_name_and_others_are_told_at_once(
        services: Services, settings: Settings) -> None:
    other = Services.open(settings)
    try:
        async with services.store.exclusive("work") as first:
            assert first
            async with other.store.exclusive("work") as second:
                assert not second  # told without waiting
            async with other.store.exclusive("other work") as unrelated:
                assert unrelated
            async with services.store.exclusive("work") as again:
                assert not again  # a second holder in the same process too
        async with other.store.exclusive("work") as after:
            assert after
    finally:
        await other.close()
    if services.store.is_sqlite:
        locks = settings.home / "regshield.db.locks"
        assert not list(locks.iterdir())
        assert services.store.sweep_locks() == 0
