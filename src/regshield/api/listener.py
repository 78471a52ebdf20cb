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

A request whose head `answer` answers at once is answered here, without starting the
application: the listener writes the response (with uvicorn's default headers and its
keep-alive handling) when the request is complete. `listener_answers` answers anonymous RDAP
lookups from memory (api/rdap_memory.py) and refuses API requests whose source is over its
limit (api/rate_limit.py); an API request it admits goes to the application marked as
checked (`SOURCE_CHECKED`). Only a request that is not queued behind another (pipelining
keeps its order) and a connection whose client is reading its answers (the write buffer
below uvicorn's high-water mark) are offered.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable

import structlog
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from regshield.api.forwarded import Network, forwarded_client, is_trusted
from regshield.api.rate_limit import SOURCE_CHECKED, ApiRefusals
from regshield.api.rdap_memory import ADMITTED, Admitted, Answer, Header, MemoryAnswers
from regshield.config import LimitsSettings
from regshield.services import Services

log = structlog.get_logger("regshield.http")

HEADERS = "headers"
BODY = "body"
REASONS = {HEADERS: "header_timeout", BODY: "body_timeout"}  # as /metrics counts them
# What answers a request from its head alone (method, URL as sent, headers, source), admits
# it having taken its source's token, or leaves it to the application (None).
Answerer = Callable[[bytes, bytes, list[Header], str | None], Answer | Admitted | None]


def listener_answers(services: Services, api_prefix: str) -> Answerer:
    """The listener's own answers: RDAP lookups from memory, the API's per-source refusals."""
    memory = MemoryAnswers(services).answer
    refusals = ApiRefusals(services, api_prefix).answer

    def answer(method: bytes, url: bytes, headers: list[Header],
               source: str | None) -> Answer | Admitted | None:
        return memory(method, url, headers, source) or refusals(method, url, headers, source)

    return answer


class _Answered:
    """In place of uvicorn's request cycle, a request the listener answers itself: complete
    as far as uvicorn's checks go, written when the request's message is complete."""

    response_complete = True

    class message_event:  # uvicorn sets the cycle's event when the connection ends
        @staticmethod
        def set() -> None:
            """Nothing waits for a request answered here."""

    def __init__(self, answer: Answer, keep_alive: bool) -> None:
        self.answer = answer
        self.keep_alive = keep_alive


class _Transport:
    """A connection's transport as uvicorn sees it, where a write once it is closed is
    dropped. When a connection ends (a deadline, the peer) while an earlier request on it is
    still being answered and a later one is queued behind it, uvicorn marks only the later
    one as disconnected; the earlier one's answer then met a closed transport, which uvloop
    refuses with an error (one error and a traceback in the log per such client, in a flood).
    asyncio's own transports drop such a write, as this does."""

    __slots__ = ("_transport",)

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._transport.is_closing():
            self._transport.write(data)

    def __getattr__(self, name: str) -> object:
        return getattr(self._transport, name)


def guarded_protocol(limits: LimitsSettings, refused: Counter[tuple[str, str]],
                     answer: Answerer | None = None,
                     trusted_proxies: tuple[Network, ...] = ()) -> type[HttpToolsProtocol]:
    """An HttpToolsProtocol class for uvicorn's `http` setting, with `limits` and one count of
    open connections per source shared by every connection of the listener, answering what
    `answer` answers without the application. A request from one of `trusted_proxies` is the
    request of the client its X-Forwarded-For names (api/forwarded.py), for the application
    and for `answer`; connections from those proxies are not capped per source."""
    open_per_source: Counter[str] = Counter()
    seconds_for = {HEADERS: limits.http_header_timeout, BODY: limits.http_body_timeout}

    class GuardedProtocol(HttpToolsProtocol):
        _deadline: asyncio.TimerHandle | None = None
        _source: str | None = None
        _proxied = False  # the peer is a trusted proxy

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(_Transport(transport))  # type: ignore[arg-type]
            self._source = self.client[0] if self.client else None
            self._proxied = is_trusted(self._source, trusted_proxies)
            if not self._proxied:
                open_per_source[self._source or ""] += 1
                if open_per_source[self._source or ""] > limits.http_connections_per_source:
                    refused["http", "per_source"] += 1
                    transport.close()
                    return
            self._await(HEADERS)

        def connection_lost(self, exc: Exception | None) -> None:
            key = self._source or ""
            if not self._proxied:
                open_per_source[key] -= 1
                if open_per_source[key] <= 0:
                    del open_per_source[key]
            self._await(None)
            super().connection_lost(exc)

        def on_headers_complete(self) -> None:
            self._await(BODY)  # cleared at once by on_message_complete when there is none
            source = self._source
            if self._proxied:
                source = forwarded_client(source, self.headers, trusted_proxies)
                self.scope["client"] = (source, 0) if source else None
            if answer is not None and (self.cycle is None or self.cycle.response_complete) \
                    and not self.flow.write_paused and not self.parser.should_upgrade():
                answered = answer(self.parser.get_method(), self.url, self.headers, source)
                if answered is ADMITTED:
                    self.scope[SOURCE_CHECKED] = True  # type: ignore[typeddict-unknown-key]
                elif isinstance(answered, Answer):
                    keep_alive = (self.parser.get_http_version() == "1.1"
                                  and self.parser.should_keep_alive())
                    self.cycle = _Answered(answered, keep_alive)  # type: ignore[assignment]
                    return
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self._await(None)  # the application's turn
            if isinstance(self.cycle, _Answered):
                self._write(self.cycle)
                return
            super().on_message_complete()

        def _write(self, cycle: _Answered) -> None:
            if self.transport.is_closing():  # the client is gone
                return
            answered = cycle.answer
            head = [STATUS_LINE[answered.status]]
            for name, value in (*self.server_state.default_headers, *answered.headers):
                head += [name, b": ", value, b"\r\n"]
            if not cycle.keep_alive:
                head.append(b"connection: close\r\n")
            head += [b"\r\n", answered.body]
            self.transport.write(b"".join(head))
            if not cycle.keep_alive:
                self.transport.close()
                return
            self.on_response_complete()

        def on_response_complete(self) -> None:
            # A request pipelined behind this one was read already: uvicorn now hands it to
            # the application, and the client owes nothing until its answer is written.
            pipelined = bool(self.pipeline)
            super().on_response_complete()
            if not self.transport.is_closing() and not pipelined:
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
