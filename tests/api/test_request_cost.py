"""What an API request costs beyond its own work (docs/performance.md, "API cost")."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from typing import Any

import httpx
from conftest import World
from contact_samples import CONTACTS, contact_body
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from sql_statements import statements

from regshield.api.app import create_app
from regshield.services import Services


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for dependency in dependant.dependencies:
        if dependency.call is not None:
            yield dependency.call
        yield from _calls(dependency)


def _api_routes(routes: list[Any]) -> Iterator[APIRoute]:
    """Every endpoint, also those of included routers (which FastAPI keeps as routers)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif (router := getattr(route, "original_router", None)) is not None:
            yield from _api_routes(router.routes)


def _runs_on_the_loop(call: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(call) or inspect.iscoroutinefunction(
        getattr(call, "__call__", None))  # noqa: B004 (an instance with an async __call__)


async def test_no_endpoint_or_dependency_runs_in_the_thread_pool(services: Services) -> None:
    """FastAPI runs a plain `def` endpoint or dependency in its thread pool: two thread hops
    per request for what is an attribute read."""
    app = create_app(services)
    routes = list(_api_routes(app.routes))
    assert len(routes) > 20
    offenders = sorted({f"{route.path}: {getattr(call, '__name__', call)}"
                        for route in routes
                        for call in (route.endpoint, *_calls(route.dependant))
                        if not _runs_on_the_loop(call)})
    assert offenders == []


async def test_reading_a_contact_takes_two_statements_and_no_transaction(
        api: httpx.AsyncClient, services: Services, world: World) -> None:
    """The token with its holder, then the contact with its account and sealed key."""
    owner = await world.user("owner", await world.account())
    created = await api.post(CONTACTS, json=contact_body(), headers=owner.headers)
    assert created.status_code == 201, created.text
    path = f"{CONTACTS}/{created.json()['handle']}"

    with statements(services) as seen:
        response = await api.get(path, headers=owner.headers)

    assert response.status_code == 200
    assert response.json()["name"] == contact_body()["name"]
    assert len(seen) == 2, seen
    assert seen[0].startswith("SELECT api_tokens.id")
    assert seen[1].startswith("SELECT contacts.handle")


async def test_creating_a_contact_takes_one_statement_per_row_and_the_chain_three(
        api: httpx.AsyncClient, services: Services, world: World) -> None:
    """The token (with the actor's account); then in one transaction the data key, the
    contact, and the event chain's head locked, the event, the head moved."""
    owner = await world.user("owner", await world.account())
    warm = await api.post(CONTACTS, json=contact_body(), headers=owner.headers)
    assert warm.status_code == 201, warm.text  # the token's first use is recorded

    with statements(services) as seen:
        response = await api.post(CONTACTS, json=contact_body(), headers=owner.headers)

    assert response.status_code == 201, response.text
    sent = [" ".join(s.split()[:3]) for s in seen if not s.startswith("BEGIN")]
    assert sent == ["SELECT api_tokens.id AS", "INSERT INTO data_keys", "INSERT INTO contacts",
                    "SELECT event_chain.last_seq, event_chain.last_hash",
                    "INSERT INTO events", "UPDATE event_chain SET"], seen
