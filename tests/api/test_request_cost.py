"""What an API request costs beyond its own work (docs/performance.md, "API cost")."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

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
