"""The HTTP application: /api/v1 and its OpenAPI document."""

from __future__ import annotations

import re

from fastapi import FastAPI, Request
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from regshield import __version__
from regshield.api import openapi, problems
from regshield.api.body_limit import BodyLimit, RouteLimit
from regshield.api.routers import (
    auth,
    consent,
    contact_form,
    contacts,
    directory,
    disclosure,
    domains,
    events,
    metrics,
    notices,
    rdap,
    verify,
    zones,
)
from regshield.flows.context import new_request_id
from regshield.services import Services

API_PREFIX = "/api/v1"
REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
ZONE_IMPORT = re.compile(re.escape(API_PREFIX) + r"/zones/[^/]+/import")


class RequestIdentity:
    """Give every request an id (the caller's X-Request-ID when well-formed) and every response
    that id and the security headers. Plain ASGI: Starlette's BaseHTTPMiddleware costs about a
    third of a simple request's CPU."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        offered = Headers(scope=scope).get("x-request-id", "")
        request_id = offered if REQUEST_ID.fullmatch(offered) else new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["X-Request-ID"] = request_id
                headers.setdefault("Cache-Control", "no-store")  # unless the route set one
                headers["X-Content-Type-Options"] = "nosniff"
            await send(message)

        await self.app(scope, receive, send_with_headers)


class OneSegmentNames:
    """A path parameter is one segment: an encoded slash (`%2F`) in an API path answers 404,
    instead of reaching whichever route the decoded path happens to match (no name, handle
    or identifier of the API holds a slash)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(API_PREFIX + "/") \
                and b"%2f" in scope.get("raw_path", b"").lower():
            request = Request(scope)
            response = problems.problem(request, 404, "not-found", "Not found",
                                        "no route matches this path (a name holds no '/')")
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def create_app(services: Services) -> FastAPI:
    # No redirect from `/path/` to `/path`: an API client gets 404, never a 307 to follow.
    app = FastAPI(
        title="regshield", version=__version__,
        description="Registrar system of record: accounts, identities, contacts, event log.",
        openapi_url=f"{API_PREFIX}/openapi.json", docs_url=f"{API_PREFIX}/docs", redoc_url=None,
        redirect_slashes=False,
    )
    app.state.services = services
    problems.install(app)

    # Outermost last: every answer, a 413 too, carries the request id.
    app.add_middleware(OneSegmentNames)
    app.add_middleware(BodyLimit, routes=[
        RouteLimit("POST", ZONE_IMPORT, services.settings.zone_import_max_bytes)])
    app.add_middleware(rdap.CachedDomains)  # anonymous RDAP domain lookups, before routing
    app.add_middleware(RequestIdentity)
    # Public pages outside the API, matched first (RDAP is the busiest): RDAP (/rdap/), the
    # contact form, verification links, metrics.
    for router in (rdap.router, contact_form.router, verify.router, metrics.router):
        app.include_router(router)
    for router in (auth.router, consent.router, contacts.router, directory.router,
                   disclosure.router, domains.router, events.router, notices.router,
                   zones.router):
        app.include_router(router, prefix=API_PREFIX)
    openapi.install(app)
    return app
