"""The HTTP application: /api/v1 and its OpenAPI document."""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from regshield import __version__
from regshield.api import openapi, problems
from regshield.api.body_limit import BodyLimit, RouteLimit
from regshield.api.rate_limit import ApiRateLimit
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
from regshield.flows.context import REQUEST_ID, new_request_id
from regshield.services import Services

API_PREFIX = "/api/v1"
IDENTITY_HEADERS = frozenset({b"x-request-id", b"x-content-type-options"})
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
        offered = next((value for key, value in scope["headers"] if key == b"x-request-id"),
                       b"").decode("latin-1")
        request_id = offered if REQUEST_ID.fullmatch(offered) else new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        added = [(b"x-request-id", request_id.encode()), (b"x-content-type-options", b"nosniff")]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                # Raw header pairs (lower-case names, as Starlette and ASGI send them): the
                # MutableHeaders way cost more than an RDAP answer from memory.
                headers = [(key, value) for key, value in message.get("headers", ())
                           if key.lower() not in IDENTITY_HEADERS]
                if not any(key.lower() == b"cache-control" for key, _ in headers):
                    headers.append((b"cache-control", b"no-store"))  # unless the route set one
                message = {**message, "headers": headers + added}
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


class Application(FastAPI):
    """The FastAPI application, with anonymous RDAP domain lookups (the busiest public path)
    answered ahead of its middleware stack and router, which cost more than the answer."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._cached_domains = RequestIdentity(rdap.CachedDomains())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if rdap.cacheable(scope) is not None:
            scope["app"] = self
            await self._cached_domains(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_app(services: Services) -> FastAPI:
    # No redirect from `/path/` to `/path`: an API client gets 404, never a 307 to follow.
    app = Application(
        title="regshield", version=__version__,
        description="Registrar system of record: accounts, identities, contacts, event log.",
        openapi_url=f"{API_PREFIX}/openapi.json", docs_url=f"{API_PREFIX}/docs", redoc_url=None,
        redirect_slashes=False,
    )
    app.state.services = services
    problems.install(app)

    # Outermost last: every answer, a 413 too, carries the request id.
    app.add_middleware(OneSegmentNames)
    app.add_middleware(ApiRateLimit, services=services, prefix=API_PREFIX)
    app.add_middleware(BodyLimit, routes=[
        RouteLimit("POST", ZONE_IMPORT, services.settings.zone_import_max_bytes)])
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
