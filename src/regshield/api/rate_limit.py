"""The API's general rate limit: every request under /api/v1 takes one token from its source
network's bucket and, when it carries a bearer token, one from that token's bucket
(`services.limiter("api")`, shared by every process; `[limits] api_per_minute`, `api_burst`).
A request over either answers 429 `throttled` with Retry-After before any other work (no
database read, no token check), so a flood costs one bucket update per request.

The token's bucket is keyed by the keyed hash of what the client sent, checked or not: a
stolen or guessed token gains nothing, as every request also counts against its source.
Plain ASGI, as the other middleware (api/app.py).
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from regshield.api import problems
from regshield.services import Services


class ApiRateLimit:
    def __init__(self, app: ASGIApp, *, services: Services, prefix: str) -> None:
        self.app = app
        self.services = services
        self.prefix = prefix + "/"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        source = client[0] if client else None
        limiter = self.services.limiter("api")
        decision = await limiter.check(source)
        if decision.allowed:
            scheme, _, token = Headers(scope=scope).get("authorization", "").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                decision = await limiter.check(source, user=f"token:{token.strip()}")
        if decision.allowed:
            await self.app(scope, receive, send)
            return
        wait = decision.retry_after
        response = problems.problem(
            Request(scope), 429, "throttled", "Too many requests",
            f"the API's request limit for this source or token is reached; try again in "
            f"{wait} second{'' if wait == 1 else 's'}",
            extra={"retry_after": wait}, headers={"Retry-After": str(wait)})
        await response(scope, receive, send)
