"""The HTTP listener's connection guard: uvicorn's HTTP/1.1 protocol (h11) with deadlines and
a per-source cap, against slow clients (slowloris) and socket floods.

uvicorn arms its keep-alive timer only after an answer and disarms it on any byte, so a client
that sends a header line one byte every few seconds, or opens a socket and says nothing, holds
a connection for ever. Here every connection has one deadline at a time:
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
from typing import Any

import h11
import structlog
from uvicorn.protocols.http.h11_impl import H11Protocol

from regshield.config import LimitsSettings

log = structlog.get_logger("regshield.http")


def guarded_protocol(limits: LimitsSettings,
                     refused: Counter[tuple[str, str]]) -> type[H11Protocol]:
    """An H11Protocol class for uvicorn's `http` setting, with `limits` and one count of open
    connections per source shared by every connection of the listener."""
    open_per_source: Counter[str] = Counter()

    class GuardedH11Protocol(H11Protocol):
        _deadline: asyncio.TimerHandle | None = None
        _waiting_for: object = None  # the h11 state the deadline is for
        _source: str | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._source = self.client[0] if self.client else None
            open_per_source[self._source or ""] += 1
            if open_per_source[self._source or ""] > limits.http_connections_per_source:
                refused["http", "per_source"] += 1
                transport.close()
                return
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            key = self._source or ""
            open_per_source[key] -= 1
            if open_per_source[key] <= 0:
                del open_per_source[key]
            self._disarm()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            self._arm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm()

        def _arm(self) -> None:
            """Set the deadline for what the client owes now: headers, a body, or nothing
            (the application is answering, or the connection is done)."""
            if self.transport is None or self.transport.is_closing():
                self._disarm()
                return
            state = self.conn.their_state
            if state is h11.IDLE and (self.cycle is None or self.cycle.response_complete):
                seconds: float | None = limits.http_header_timeout
            elif state is h11.SEND_BODY:
                seconds = limits.http_body_timeout
            else:
                seconds = None
            if state is self._waiting_for and self._deadline is not None:
                return  # the same deadline keeps running: trickling bytes do not extend it
            self._disarm()
            if seconds is not None:
                self._waiting_for = state
                self._deadline = self.loop.call_later(seconds, self._expired, state)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None
            self._waiting_for = None

        def _expired(self, state: Any) -> None:
            self._deadline = None
            if self.transport.is_closing() or self.conn.their_state is not state:
                return
            reason = "header_timeout" if state is h11.IDLE else "body_timeout"
            refused["http", reason] += 1
            self.transport.close()

    return GuardedH11Protocol
