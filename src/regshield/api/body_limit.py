"""The request body limit: a body larger than its route allows is refused with 413 before it is
read. A declared `Content-Length` over the limit is answered at once, without reading a byte of
the body; a body without one (chunked) is counted as it streams in and cut off as soon as it
passes the limit. Plain ASGI, so that it runs before FastAPI buffers a body to parse it.

Every route allows `DEFAULT_MAX_BODY_BYTES` (1 MiB); a route that needs more (the zone import)
is named with its own limit when the application is built (api/app.py).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from regshield.api.problems import PROBLEM_TYPE

DEFAULT_MAX_BODY_BYTES: Final = 1024 * 1024


@dataclass(frozen=True)
class RouteLimit:
    """A larger (or smaller) limit for the requests whose method and whole path match."""

    method: str
    path: re.Pattern[str]
    max_bytes: int


class BodyTooLarge(Exception):
    """Raised into the application when a streamed body passes its limit."""


class BodyLimit:
    def __init__(self, app: ASGIApp, *, max_bytes: int = DEFAULT_MAX_BODY_BYTES,
                 routes: Sequence[RouteLimit] = ()) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.routes = tuple(routes)

    def limit_for(self, method: str, path: str) -> int:
        for route in self.routes:
            if route.method == method and route.path.fullmatch(path):
                return route.max_bytes
        return self.max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["method"], scope["path"])
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            await _refuse(scope, send, limit)
            return
        received = 0
        exceeded = False
        started = False

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise BodyTooLarge(f"the request body passed {limit} bytes")
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded:
                return  # whatever the application answers to a cut body, the answer is 413
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not exceeded:  # the cut body's error, however the application wrapped it
                raise
        if exceeded and not started:
            await _refuse(scope, send, limit)


async def _refuse(scope: Scope, send: Send, limit: int) -> None:
    request_id = scope.get("state", {}).get("request_id")
    body = json.dumps({
        "type": PROBLEM_TYPE + "body-too-large", "title": "Request body too large",
        "status": 413, "detail": f"the request body must be at most {limit} bytes",
        "instance": scope["path"], "request_id": request_id, "max_bytes": limit,
    }).encode()
    await send({"type": "http.response.start", "status": 413, "headers": [
        (b"content-type", b"application/problem+json"),
        (b"content-length", str(len(body)).encode()),
        # The unread body cannot be skipped to reach a next request on this connection.
        (b"connection", b"close"),
    ]})
    await send({"type": "http.response.body", "body": body})
