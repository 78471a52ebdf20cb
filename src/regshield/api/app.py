"""The HTTP application: /api/v1 and its OpenAPI document."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response

from regshield import __version__
from regshield.api import problems
from regshield.api.routers import auth, contacts, directory, events
from regshield.flows.context import new_request_id
from regshield.services import Services

API_PREFIX = "/api/v1"
REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def create_app(services: Services) -> FastAPI:
    app = FastAPI(
        title="regshield", version=__version__,
        description="Registrar system of record: accounts, identities, contacts, event log.",
        openapi_url=f"{API_PREFIX}/openapi.json", docs_url=f"{API_PREFIX}/docs", redoc_url=None,
    )
    app.state.services = services
    problems.install(app)

    @app.middleware("http")
    async def request_identity(request: Request,
                               call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        offered = request.headers.get("x-request-id", "")
        request.state.request_id = offered if REQUEST_ID.fullmatch(offered) else new_request_id()
        response = await call_next(request)
        response.headers["X-Request-ID"] = request.state.request_id
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    for router in (auth.router, contacts.router, directory.router, events.router):
        app.include_router(router, prefix=API_PREFIX)
    return app
