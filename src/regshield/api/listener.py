"""The HTTP listener's connection guard: uvicorn's HTTP/1.1 protocol (httptools, the C parser)
with deadlines and a per-source cap, against slow clients (slowloris) and socket floods.

uvicorn arms its keep-alive timer only after an answer and disarms it on any byte, so a client
that sends a header line one byte every few seconds, or opens a socket and says nothing, holds
a connection for ever. Here every connection has one deadline at a time, set when the parser
moves from one part of a request to the next (never by a byte arriving):
- from its start, and from the end of each answer, the next request's headers must arrive in
  full within `[limits] http_header_timeout` seconds, however they trickle in;
- a request's body must arrive in full within `http_body_timeout` seconds of its headers;
- while the application answers, no deadline runs (that is the application's time);
- an idle keep-alive connection is closed after `http_keep_alive_timeout` (uvicorn's timer).
A connection past its deadline is closed without an answer. One source address holds at most
`http_connections_per_source` connections at once; one more is closed at once. Each closure is
counted for /metrics (`connections_refused{listener="http"}`).
"""

from __future__ import annotations

import asyncio
from collections import Counter

import structlog
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from regshield.config import LimitsSettings

log = structlog.get_logger("regshield.http")

HEADERS = "headers"
BODY = "body"
REASONS = {HEADERS: "header_timeout", BODY: "body_timeout"}  # as /metrics counts them


def guarded_protocol(limits: LimitsSettings,
                     refused: Counter[tuple[str, str]]) -> type[HttpToolsProtocol]:
    """An HttpToolsProtocol class for uvicorn's `http` setting, with `limits` and one count of
    open connections per source shared by every connection of the listener."""
    open_per_source: Counter[str] = Counter()
    seconds_for = {HEADERS: limits.http_header_timeout, BODY: limits.http_body_timeout}

    class GuardedProtocol(HttpToolsProtocol):
        _deadline: asyncio.TimerHandle | None = None
        _source: str | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._source = self.client[0] if self.client else None
            open_per_source[self._source or ""] += 1
            if open_per_source[self._source or ""] > limits.http_connections_per_source:
                refused["http", "per_source"] += 1
                transport.close()
                return
            self._await(HEADERS)

        def connection_lost(self, exc: Exception | None) -> None:
            key = self._source or ""
            open_per_source[key] -= 1
            if open_per_source[key] <= 0:
                del open_per_source[key]
            self._await(None)
            super().connection_lost(exc)

        def on_headers_complete(self) -> None:
            self._await(BODY)  # cleared at once by on_message_complete when there is none
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self._await(None)  # the application's turn
            super().on_message_complete()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._await(HEADERS)

        def _await(self, part: str | None) -> None:
            """Start the deadline for what the client owes now (None: nothing)."""
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None
            if part is not None:
                self._deadline = self.loop.call_later(seconds_for[part], self._expired, part)

        def _expired(self, part: str) -> None:
            self._deadline = None
            if self.transport.is_closing():
                return
            refused["http", REASONS[part]] += 1
            self.transport.close()

    return GuardedProtocol
