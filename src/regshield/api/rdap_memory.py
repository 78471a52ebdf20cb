"""Anonymous RDAP domain lookups answered by the HTTP listener itself, from memory.

An anonymous `domain/<name>` lookup is the busiest public query and, once its document is
rendered (rdds/documents.py), the cheapest to answer: what it costs in the application is the
ASGI machinery around it (a task, a scope, the send calls), several times the answer. So the
listener (api/listener.py) offers each request's head to `MemoryAnswers.answer` before it
starts the application, and writes what that returns as the response. It answers only when
everything is decided without waiting:

- the request is one `CachedDomains` (api/routers/rdap.py) would take: `GET` or `HEAD` of
  `/rdap/domain/<name>`, the name canonical and spelled without escapes, no query, no
  Authorization header;
- the document is in this process's memory and memory is current (`DocumentCache.peek`),
  or memory knows every sponsored name and not this one (404, or 400 for a name that is not
  one: a flood of names never registered costs no read);
- the source's limit is decided by this process (`RateLimiter.check_now`: a lease with
  requests left, a refusal already known, or limits kept in the process). A refusal is the
  same 429 the application gives.

Otherwise it returns None, takes nothing from the limit, and the request goes the
application's way unchanged (`CachedDomains`, then the router), which waits for what is
missing. An answer is the application's answer: the same status, headers (with the request
id and `nosniff` that `RequestIdentity` adds) and body; the tests compare the two.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Final

from regshield.flows.context import REQUEST_ID, new_request_id
from regshield.rdds.documents import CACHE_CONTROL, Document, Missing, document_cache, rdap_json
from regshield.rdds.rdap import MEDIA_TYPE, RdapError, error_response, lookup_name
from regshield.security.limits import Decision
from regshield.services import Services

Header = tuple[bytes, bytes]

DOMAIN_PATH: Final = "/rdap/domain/"  # api/routers/rdap.py PREFIX + "/domain/"
# A name as documents are keyed: A-labels in lower case, no trailing dot. Any other spelling
# takes the dynamic path, which reads it as a name and links to the query as it was asked.
CANONICAL: Final = re.compile(r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+"
                              r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_DOMAIN_PATH: Final = DOMAIN_PATH.encode()
_LOOKUPS: Final = frozenset({b"GET", b"HEAD"})
_CORS: Final = (b"access-control-allow-origin", b"*")
_NOSNIFF: Final = (b"x-content-type-options", b"nosniff")


def too_many(decision: Decision) -> RdapError:
    """The RDAP error of a query over its source's limit."""
    seconds = decision.retry_after
    return RdapError(429, "Too many requests",
                     f"Query limit reached; try again in {seconds} "
                     f"second{'' if seconds == 1 else 's'}.",
                     headers={"Retry-After": str(seconds)})


def document_headers(document: Document) -> list[Header]:
    """The headers of every answer from a document (200 and 304), before the body's."""
    return [_CORS, (b"etag", document.etag.encode()),
            (b"last-modified", document.last_modified.encode()),
            (b"cache-control", CACHE_CONTROL.encode())]


def body_headers(document: Document) -> list[Header]:
    return [(b"content-type", MEDIA_TYPE.encode()),
            (b"content-length", str(document.size).encode())]


def not_modified(document: Document, none_match: bytes | None, since: bytes | None) -> bool:
    """RFC 9110 §13.1.2 (If-None-Match, weak comparison) and §13.1.3 (If-Modified-Since,
    only without If-None-Match)."""
    if none_match is not None:
        tags = {tag.strip().removeprefix("W/")
                for tag in none_match.decode("latin-1").split(",")}
        return "*" in tags or document.etag in tags
    if since is None:
        return False
    try:
        when = parsedate_to_datetime(since.decode("latin-1"))
    except (TypeError, ValueError):
        return False  # an unreadable date is ignored (RFC 9110 §13.1.3)
    if when.tzinfo is None:
        return False
    return document.rendered_at.replace(microsecond=0) <= when


class Admitted:
    """What an answerer returns for a request it lets through having taken its source's token
    from a limit (api/rate_limit.py `ApiRefusals`)."""


ADMITTED: Final = Admitted()


@dataclass(frozen=True)
class Answer:
    """A response for the listener to write: its status, headers and body (empty for HEAD,
    with the GET answer's Content-Length)."""

    status: int
    headers: list[Header]
    body: bytes


class MemoryAnswers:
    """The listener's answers to anonymous domain lookups (see the module docstring)."""

    def __init__(self, services: Services) -> None:
        self.limiter = services.limiter("rdap")
        self.documents = document_cache(services)

    def answer(self, method: bytes, url: bytes, headers: list[Header],
               source: str | None) -> Answer | None:
        """The response to a request whose head is `method`, `url` (as sent) and `headers`
        (names in lower case), from `source`; None when the application must answer it."""
        if method not in _LOOKUPS or not url.startswith(_DOMAIN_PATH):
            return None
        name = url[len(_DOMAIN_PATH):].decode("latin-1")
        if not CANONICAL.fullmatch(name):
            return None  # a query, an escape, a U-label or upper case: the application's way
        none_match = since = request_id = None
        for key, value in headers:
            if key == b"authorization":
                return None
            if key == b"if-none-match":
                none_match = value
            elif key == b"if-modified-since":
                since = value
            elif key == b"x-request-id":
                request_id = value
        document = self.documents.peek(name)
        if document is None:
            return None
        decision = self.limiter.check_now(source)
        if decision is None:
            return None
        identity = [(b"x-request-id", request_id_for(request_id)), _NOSNIFF]
        if not decision.allowed:
            return _error(too_many(decision), method, identity)
        if isinstance(document, Missing):  # no sponsored domain has this name
            try:
                lookup_name(name)
                raise not_sponsored(name)
            except RdapError as error:  # 400 for a name that is not one, else 404
                return _error(error, method, identity)
        if not_modified(document, none_match, since):
            return Answer(304, document_headers(document) + identity, b"")
        return Answer(200, document_headers(document) + body_headers(document) + identity,
                      b"" if method == b"HEAD" else document.body)


def not_sponsored(name: str) -> RdapError:
    return RdapError(404, "Not found", f"{name} is not a domain this registrar sponsors.")


def _error(error: RdapError, method: bytes, identity: list[Header]) -> Answer:
    """An RDAP error as the application answers it (api/routers/rdap.py `_error`)."""
    body = rdap_json(error_response(error.status, error.title, error.description))
    return Answer(error.status, [_CORS, *((key.lower().encode(), value.encode())
                                          for key, value in error.headers.items()),
                                 (b"content-length", str(len(body)).encode()),
                                 (b"content-type", MEDIA_TYPE.encode()),
                                 (b"cache-control", b"no-store"), *identity],
                  b"" if method == b"HEAD" else body)


def request_id_for(offered: bytes | None) -> bytes:
    """The caller's X-Request-ID when well-formed, else a new one (as `RequestIdentity`)."""
    if offered is not None and REQUEST_ID.fullmatch(offered.decode("latin-1")):
        return offered
    return new_request_id().encode()
