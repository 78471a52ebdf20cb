"""RDAP at /rdap/ (RFC 7480, 9082, 9083; ICANN gTLD RDAP profile, February 2024).

Lookups: `domain/{name}` (A-label or U-label), `nameserver/{name}` (a host a sponsored domain
delegates to), `entity/{handle}` (the registrar by its IANA ID; a contact by its handle for
staff), `help`; search: `domains?name=` (a name, or a prefix ending in `*`).

Who asks decides what is shown (rules/redaction.py through rdds/record.py): no credential is
the anonymous persona; a bearer token of staff who may read every account's contacts is the
staff persona; another authenticated user whose disclosure request for the domain was approved
sees the contacts it covers (`persona_of` in rdds/record.py records the access), and otherwise
reads as anonymous. Search is for staff only: anyone else gets 403 (RFC 7480 §5.3 allows 403
or 404; a search reveals nothing about one name, so refusing it openly leaks nothing).

Every answer, errors included, is an RDAP document (`application/rdap+json`, CORS `*`), and
HEAD answers as GET without the body. Each query, whether it is answered or not, first takes
one token of the per-source limit (`services.limiter("rdap")`, per user when authenticated); a
refusal is 429 with Retry-After. A preflight (OPTIONS) and a refused method take none.
Anything unexpected is an RDAP 500 with no detail.

A domain lookup reads in one session with a few queries and runs no flow; only a disclosed
lookup writes, the event of its access.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote

import structlog
from fastapi import APIRouter, Request, Response
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.types import Receive, Scope, Send

from regshield.api.rdap_memory import (
    CANONICAL,
    DOMAIN_PATH,
    body_headers,
    document_headers,
    not_modified,
    not_sponsored,
    too_many,
)
from regshield.errors import (
    AuthenticationRequired,
    NotFound,
    PermissionDenied,
    RegshieldError,
    ValidationFailed,
)
from regshield.flows.contacts import contact_read
from regshield.flows.context import Actor, RequestContext, new_request_id
from regshield.flows.personal_data import record_staff_read
from regshield.rdds.documents import (
    Document,
    Missing,
    document_cache,
    rdap_json,
    site_of,
)
from regshield.rdds.rdap import (
    MEDIA_TYPE,
    RdapError,
    Site,
    contact_response,
    domain_response,
    domain_search_response,
    error_response,
    help_response,
    lookup_name,
    nameserver_response,
    registrar_response,
    search_pattern,
)
from regshield.rdds.record import (
    PresentedContact,
    load_domain,
    nameserver_in_use,
    persona_of,
    present,
    registrar_facts,
    search_domains,
    sees_everything,
)
from regshield.rules.redaction import ContactRole, Persona
from regshield.security.authentication import actor_for_bearer
from regshield.services import Services

PREFIX: Final = "/rdap"
LOOKUP_METHODS: Final = ["GET", "HEAD"]
ANY_METHOD: Final = ["GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"]
ALLOWED: Final = "GET, HEAD, OPTIONS"
SEARCH_LIMIT: Final = 100
LOOKUP_TYPES: Final = frozenset({"domain", "nameserver", "entity"})
HANDLE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
CORS: Final = {"Access-Control-Allow-Origin": "*"}
PREFLIGHT: Final = {
    **CORS,
    "Access-Control-Allow-Methods": ALLOWED,
    "Access-Control-Allow-Headers": "Authorization, Accept",
    "Access-Control-Max-Age": "86400",
}

log = structlog.get_logger("regshield.rdap")
router = APIRouter(include_in_schema=False)


@dataclass(frozen=True)
class Requester:
    """Who asks: the actor of a valid bearer token (None for anonymous) and the context that
    events of this request carry."""

    actor: Actor | None
    context: RequestContext

    @property
    def is_staff(self) -> bool:
        return sees_everything(self.actor)


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def _site(services: Services) -> Site:
    return site_of(services.settings)


def _query_url(request: Request, site: Site) -> str:
    """The URL of this query under the configured base (the Host header is not trusted)."""
    path = request.url.path[len(PREFIX):].lstrip("/")
    url = site.url(quote(path, safe="/"))
    return f"{url}?{request.url.query}" if request.url.query else url


def _render(request: Request, status: int, body: dict[str, Any],
            headers: dict[str, str] | None = None) -> Response:
    response = Response(rdap_json(body), status_code=status, media_type=MEDIA_TYPE,
                        headers={**CORS, **(headers or {})})
    if request.method == "HEAD":
        response.body = b""  # Content-Length stays that of the GET answer
    return response


def _error(request: Request, error: RdapError) -> Response:
    return _render(request, error.status,
                   error_response(error.status, error.title, error.description), error.headers)


def _bearer(request: Request) -> str | None:
    value = request.headers.get("authorization")
    if value is None:
        return None
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise RdapError(401, "Unauthorized", "Send an API token as Authorization: Bearer rs_...",
                        headers={"WWW-Authenticate": 'Bearer realm="regshield"'})
    return token.strip()


async def _limit(services: Services, source: str | None, user: str | None) -> None:
    decision = await services.limiter("rdap").check(source, user=user)
    if not decision.allowed:
        raise too_many(decision)


async def _requester(request: Request, services: Services) -> Requester:
    """Authenticate the optional bearer token and take one query from the caller's limit."""
    source = request.client.host if request.client else None
    context = RequestContext(channel="api", source_address=source,
                             request_id=getattr(request.state, "request_id", None)
                             or new_request_id())
    try:
        token = _bearer(request)
        actor = await actor_for_bearer(services, token) if token is not None else None
    except (RdapError, AuthenticationRequired) as refused:
        await _limit(services, source, None)  # a wrong token costs its network a query
        if isinstance(refused, RdapError):
            raise
        raise RdapError(401, "Unauthorized", refused.detail,
                        headers=refused.headers()) from None
    await _limit(services, source, actor.user_public_id if actor else None)
    return Requester(actor, context)


def _only_parameters(request: Request, *allowed: str) -> None:
    unknown = sorted({key for key in request.query_params if key not in allowed})
    if unknown:
        raise RdapError(400, "Unknown query parameters",
                        f"This query takes no parameter named {', '.join(unknown)[:200]}.")
    repeated = sorted({key for key in allowed if len(request.query_params.getlist(key)) > 1})
    if repeated:
        raise RdapError(400, "Repeated query parameters",
                        f"Give {', '.join(repeated)} once.")


Work = Callable[[Services, Requester, Site, str], Awaitable[dict[str, Any]]]


async def _answer(request: Request, work: Work, *parameters: str,
                  requester: Requester | None = None) -> Response:
    """Run one query: limits (unless the `requester` was already counted), parameters, the
    work, and any failure as an RDAP error."""
    try:
        services = _services(request)
        if requester is None:
            requester = await _requester(request, services)
        _only_parameters(request, *parameters)
        site = _site(services)
        return _render(request, 200, await work(services, requester, site,
                                                _query_url(request, site)))
    except RdapError as error:
        return _error(request, error)
    except NotFound as missing:
        return _error(request, RdapError(404, "Not found", missing.detail))
    except PermissionDenied as denied:
        return _error(request, RdapError(403, "Forbidden", denied.detail))
    except ValidationFailed as failed:
        return _error(request, RdapError(400, "Malformed query", *(
            f"{e.field} {e.message}" for e in failed.errors)))
    except RegshieldError as failed:
        status = failed.http_status if 400 <= failed.http_status < 600 else 500
        return _error(request, RdapError(status, failed.title, failed.detail))
    except PoolTimeout:
        log.warning("rdap.busy", path=request.url.path[:200])
        return _error(request, RdapError(503, "Service busy",
                                         "Every database connection is in use; try again "
                                         "shortly.", headers={"Retry-After": "1"}))
    except Exception as exc:
        log.error("rdap.unexpected_error", error_type=type(exc).__name__,
                  request_id=getattr(request.state, "request_id", None),
                  path=request.url.path[:200])
        return _error(request, RdapError(500, "Internal error",
                                         "The query failed; try again later."))


@router.api_route(f"{PREFIX}/domain/{{name}}", methods=LOOKUP_METHODS)
async def domain(request: Request, name: str) -> Response:
    return await _answer(request, _domain_lookup(name))


def _domain_lookup(name: str) -> Work:
    async def work(services: Services, requester: Requester, site: Site,
                   query_url: str) -> dict[str, Any]:
        query = lookup_name(name)
        settings = services.settings
        record = await load_domain(services.store, services.sealer, query.name.ascii,
                                   registrar_url=settings.registrar_url)
        if record is None:
            raise not_sponsored(query.name.ascii)
        persona, disclosed = await persona_of(services, requester.actor,
                                              requester.context, record, "rdap")
        presentation = present(record, persona, public_url=settings.public_url,
                               disclosed=disclosed)
        return domain_response(presentation, site, query_url=query_url,
                               now=services.clock.now(), unicode_query=query.unicode_query)

    return work


@router.api_route(f"{PREFIX}/nameserver/{{name}}", methods=LOOKUP_METHODS)
async def nameserver(request: Request, name: str) -> Response:
    async def work(services: Services, requester: Requester, site: Site,
                   query_url: str) -> dict[str, Any]:
        query = lookup_name(name)
        async with services.store.read() as session:
            in_use = await nameserver_in_use(session, query.name.ascii)
        if not in_use:
            raise RdapError(404, "Not found",
                            f"No domain this registrar sponsors uses {query.name.ascii}.")
        return nameserver_response(query.name, site, query_url=query_url)

    return await _answer(request, work)


@router.api_route(f"{PREFIX}/entity/{{handle}}", methods=LOOKUP_METHODS)
async def entity(request: Request, handle: str) -> Response:
    async def work(services: Services, requester: Requester, site: Site,
                   query_url: str) -> dict[str, Any]:
        if not HANDLE.fullmatch(handle):
            raise RdapError(400, "Malformed query",
                            "An entity handle is 1 to 64 letters, digits, dots, hyphens or "
                            "underscores.")
        async with services.store.read() as session:
            facts = await registrar_facts(session, registrar_url=services.settings.registrar_url)
        if facts.iana_id is not None and handle == str(facts.iana_id):
            return registrar_response(facts, site, query_url=query_url)
        if not requester.is_staff:
            # Contacts are personal data: only staff look them up by handle.
            raise RdapError(404, "Not found", "No such entity.")
        assert requester.actor is not None
        view = await contact_read(services, requester.actor, handle,
                                  context=requester.context, via="rdap")
        contact = PresentedContact(ContactRole.REGISTRANT, view.handle, view.data.as_dict(),
                                   None)
        return contact_response(contact, site, query_url=query_url)

    return await _answer(request, work)


@router.api_route(f"{PREFIX}/domains", methods=LOOKUP_METHODS)
async def domains(request: Request) -> Response:
    async def work(services: Services, requester: Requester, site: Site,
                   query_url: str) -> dict[str, Any]:
        if not requester.is_staff:  # search_domains refuses too; this answers before parsing
            raise RdapError(403, "Forbidden",
                            "Domain search is open to authenticated registrar staff only.")
        text = request.query_params.get("name")
        if not text:
            raise RdapError(400, "Malformed query", "A domain search needs name=<pattern>.")
        pattern = search_pattern(text)
        settings = services.settings
        async with services.store.read() as session:
            records, truncated = await search_domains(
                session, services.sealer, requester.actor, registrar_url=settings.registrar_url,
                limit=SEARCH_LIMIT, exact=pattern.exact, ascii_prefix=pattern.ascii_prefix,
                unicode_prefix=pattern.unicode_prefix)
        await record_staff_read(services, requester.actor, requester.context,
                                [c.handle for record in records for c in record.contacts],
                                via="rdap-search", domains=[record.name for record in records])
        presentations = [present(record, Persona.STAFF, public_url=settings.public_url)
                         for record in records]
        return domain_search_response(presentations, site, query_url=query_url,
                                      now=services.clock.now(), limit=SEARCH_LIMIT,
                                      truncated=truncated)

    return await _answer(request, work, "name")


@router.api_route(f"{PREFIX}/help", methods=LOOKUP_METHODS)
async def help_page(request: Request) -> Response:
    async def work(services: Services, requester: Requester, site: Site,
                   query_url: str) -> dict[str, Any]:
        return help_response(site, query_url=query_url)

    return await _answer(request, work)


@router.api_route(PREFIX, methods=ANY_METHOD)
async def base(request: Request) -> Response:
    return await anything_else(request, "")


@router.api_route(f"{PREFIX}/{{rest:path}}", methods=ANY_METHOD)
async def anything_else(request: Request, rest: str) -> Response:
    """CORS preflight for every RDAP path; an RDAP error for everything that is no query."""
    if request.method == "OPTIONS":
        return Response(status_code=204, headers=PREFLIGHT)
    if request.method not in LOOKUP_METHODS:
        return _error(request, RdapError(405, "Method not allowed",
                                         "RDAP answers GET and HEAD.",
                                         headers={"Allow": ALLOWED}))

    async def work(services: Services, requester: Requester, site: Site,
                   query_url: str) -> dict[str, Any]:
        kind = rest.split("/", 1)[0]
        if kind in LOOKUP_TYPES:
            raise RdapError(400, "Malformed query", f"A {kind} lookup takes exactly one name.")
        raise RdapError(404, "Not found", "This server answers domain, nameserver, entity, "
                                          "domains (search) and help queries.")

    return await _answer(request, work)




class CachedDomains:
    """Anonymous domain lookups answered from the rendered documents (rdds/documents.py).

    Plain ASGI, called by the application ahead of its middleware and router for a request
    that `cacheable` accepts: a `GET` or `HEAD` of `domain/<name>` with no credentials, no query
    parameters and the name in its canonical form. Such a query takes one token of the source's
    limit, as every query does, and is answered with the stored bytes, a strong ETag,
    Last-Modified and Cache-Control, or 304 when the requester's copy is current
    (If-None-Match, else If-Modified-Since). A name without a document (unknown, or not rendered
    yet) is answered by the dynamic lookup without a second token. Everything else (a bearer
    token: staff, disclosure requesters) goes to the router as before.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        name = cacheable(scope)
        assert name is not None, "the application sends only cacheable lookups here"
        services: Services = scope["app"].state.services
        client = scope.get("client")
        source = client[0] if client else None
        try:
            await _limit(services, source, None)
        except RdapError as refused:
            await _error(Request(scope, receive), refused)(scope, receive, send)
            return
        except Exception as exc:  # ahead of the application's error handling: answer as it
            log.error("rdap.unexpected_error", error_type=type(exc).__name__,
                      path=scope["path"][:200])
            await _error(Request(scope, receive), RdapError(
                500, "Internal error", "The query failed; try again later."))(
                scope, receive, send)
            return
        try:
            document = await document_cache(services).document(name)
        except Exception:  # the store is unreachable: the dynamic path answers (or says so)
            log.warning("rdap.document_unavailable", exc_info=True)
            document = Missing.NOT_RENDERED
        if isinstance(document, Document):
            await _send_document(scope, send, document)
            return
        if document is Missing.UNKNOWN:
            # The dynamic path's answer, without reading the store again: 400 for a name that
            # is not one, else 404.
            try:
                lookup_name(name)
                raise not_sponsored(name)
            except RdapError as error:
                await _error(Request(scope, receive), error)(scope, receive, send)
            return
        request = Request(scope, receive)
        context = RequestContext(channel="api", source_address=source,
                                 request_id=getattr(request.state, "request_id", None)
                                 or new_request_id())
        response = await _answer(request, _domain_lookup(name),
                                 requester=Requester(None, context))
        await response(scope, receive, send)


def cacheable(scope: Scope) -> str | None:
    """The name of an anonymous domain lookup that documents may answer, else None."""
    if scope["type"] != "http" or scope["method"] not in LOOKUP_METHODS:
        return None
    path: str = scope["path"]
    if not path.startswith(DOMAIN_PATH) or scope.get("query_string"):
        return None
    if any(key == b"authorization" for key, _ in scope["headers"]):
        return None
    name = path[len(DOMAIN_PATH):]
    return name if CANONICAL.fullmatch(name) else None


async def _send_document(scope: Scope, send: Send, document: Document) -> None:
    headers = document_headers(document)
    if _not_modified(scope, document):
        await send({"type": "http.response.start", "status": 304, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": headers + body_headers(document)})
    await send({"type": "http.response.body",
                "body": b"" if scope["method"] == "HEAD" else document.body})


def _not_modified(scope: Scope, document: Document) -> bool:
    none_match = since = None
    for key, value in scope["headers"]:
        if key == b"if-none-match":
            none_match = value
        elif key == b"if-modified-since":
            since = value
    return not_modified(document, none_match, since)
