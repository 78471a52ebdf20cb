"""A flood that takes every database connection gets the next request a prompt 503 with
Retry-After ("busy"), not a request queued for half a minute and then called an internal
error; nothing of the refused request is written."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from conftest import World
from contact_samples import CONTACTS, contact_body
from sqlalchemy import func, select
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection

from regshield.services import Services
from regshield.store.models import Contact

WAIT = 0.2  # seconds a request waits for a connection here (POOL_WAIT_SECONDS in service)


@asynccontextmanager
async def every_connection_taken(services: Services) -> AsyncIterator[None]:
    """Hold every connection the store's pool will give, as a flood of slow requests would."""
    pool = services.store.engine.pool
    pool._timeout = WAIT  # type: ignore[attr-defined]  # the test's patience, not 5 s
    held: list[AsyncConnection] = []
    try:
        while True:
            try:
                connection = services.store.engine.connect()
                await connection.start()
            except PoolTimeout:
                break
            held.append(connection)
            assert len(held) < 1000, "the pool never ran out"
        yield
    finally:
        for connection in held:
            await connection.close()


async def test_a_request_that_finds_every_connection_taken_is_answered_busy(
        api: httpx.AsyncClient, services: Services, world: World) -> None:
    owner = await world.user("owner", await world.account())
    async with every_connection_taken(services):
        response = await api.post(CONTACTS, json=contact_body(), headers=owner.headers)

    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] == "1"
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["type"].endswith(":busy")
    async with services.store.read() as session:
        assert await session.scalar(select(func.count()).select_from(Contact)) == 0
    # Once connections are free again, the same request goes through.
    again = await api.post(CONTACTS, json=contact_body(), headers=owner.headers)
    assert again.status_code == 201, again.text

