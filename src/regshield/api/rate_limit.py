"""The API's general rate limit: every request under /api/v1 takes one token from its source
network's bucket and, when it carries a bearer token, one from that token's bucket
(`services.limiter("api")`, shared by every process; `[limits] api_per_minute`, `api_burst`).
A request over either answers 429 `throttled` with Retry-After before any other work (no
database read, no token check), so a flood costs one bucket update per request.

The source's bucket is checked first by the HTTP listener (api/listener.py), before the
application starts, whenever this process decides it at once (`RateLimiter.check_now`: a
lease with requests left, a refusal already known): a refusal is then written by the listener
itself (`ApiRefusals`), the same 429 the application gives, at a fraction of its cost, and an
admission marks the request's scope (`SOURCE_CHECKED`) so that `ApiRateLimit` takes only the
token's. A flood from one source that has spent its burst costs the parser and a bucket
lookup per request.

The token's bucket is keyed by the keyed hash of what the client sent, checked or not: a
stolen or guessed token gains nothing, as every request also counts against its source.
Plain ASGI, as the other middleware (api/app.py).
"""

from __future__ import annotations

from typing import Final

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from regshield.api import problems
from regshield.api.rdap_memory import ADMITTED, Admitted, Answer, Header, request_id_for
from regshield.security.limits import Decision
from regshield.services import Services

# A scope key the listener sets: the request's source has taken its token already. Set by
# the server only: nothing a client sends reaches a scope's keys.
SOURCE_CHECKED: Final = "regshield.api_source_checked"


def throttled(path: str, request_id: str | None,
              decision: Decision) -> problems.ProblemResponse:
    """The 429 of a request over the API's limit, the same from the application and the
    listener."""
    wait = decision.retry_after
    return problems.ProblemResponse(
        {"type": problems.PROBLEM_TYPE + "throttled", "title": "Too many requests",
         "status": 429,
         "detail": f"the API's request limit for this source or token is reached; try again "
                   f"in {wait} second{'' if wait == 1 else 's'}",
         "instance": path, "request_id": request_id, "retry_after": wait},
        status_code=429, headers={"Retry-After": str(wait)})


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
        decision = None if scope.get(SOURCE_CHECKED) else await limiter.check(source)
        if decision is None or decision.allowed:
            scheme, _, token = Headers(scope=scope).get("authorization", "").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                decision = await limiter.check(source, user=f"token:{token.strip()}")
        if decision is None or decision.allowed:
            await self.app(scope, receive, send)
            return
        response = throttled(scope["path"], scope.get("state", {}).get("request_id"), decision)
        await response(scope, receive, send)


class ApiRefusals:
    """The listener's side of the API's limit (see the module docstring)."""

    def __init__(self, services: Services, prefix: str) -> None:
        self.limiter = services.limiter("api")
        self.prefix = (prefix + "/").encode()

    def answer(self, method: bytes, url: bytes, headers: list[Header],
               source: str | None) -> Answer | Admitted | None:
        """The 429 of an API request whose source is over its limit, `ADMITTED` when its
        source's token is taken, None when the application must decide (not an API request,
        a path with escapes, a decision that needs the shared store)."""
        if not url.startswith(self.prefix) or b"%" in url:
            return None
        try:
            path = url.partition(b"?")[0].decode("ascii")
        except UnicodeDecodeError:
            return None
        decision = self.limiter.check_now(source)
        if decision is None:
            return None
        if decision.allowed:
            return ADMITTED
        offered = next((value for key, value in headers if key == b"x-request-id"), None)
        request_id = request_id_for(offered)
        response = throttled(path, request_id.decode(), decision)
        return Answer(429, [*response.raw_headers, (b"cache-control", b"no-store"),
                            (b"x-request-id", request_id),
                            (b"x-content-type-options", b"nosniff")],
                      b"" if method == b"HEAD" else bytes(response.body))
