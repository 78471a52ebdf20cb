"""The OpenAPI document, with the error answers the server really gives.

FastAPI documents a 422 of its own shape (`HTTPValidationError`, `application/json`) and no
other error. Every error here is an RFC 9457 problem (`api/problems.py`), so `document` takes
FastAPI's document and, for each operation, derives the error statuses from what the route
depends on, never from a list kept by hand per route:

| the route ...                                          | may answer                         |
|--------------------------------------------------------|------------------------------------|
| anything                                               | 500                                |
| takes a credential (the bearer dependency)             | 401, 403                           |
| reads `X-OTP` (`SteppedUpActorDep`)                    | 401, 403 `step-up-required`, 429   |
| takes a body                                           | 400, 413, 422                      |
| takes any parameter                                    | 422                                |
| has path or query parameters, or is a change with input | 404                               |
| is a change (not GET), or runs a flow to record a read | 409                                |
| runs code that names an error class (`errors.py` and its subclasses) | its status and type  |
| talks to a registry (`REGISTRY`)                       | 502, 503, 504                      |
| may leave a registry operation pending (`HTTP_202_ACCEPTED`) | 202, with the success body   |

"Runs" and "talks to" are read from the names the endpoint's code uses, and those of what it
calls in its own module and in the rest of `regshield` outside `api/` (flows, rules, security,
store ...), transitively: a flow that can raise `Throttled` makes its route document 429, one
that names `StepUpRequired` documents 403 `step-up-required`, and so on. Naming an error is
not always raising it (an `except NotFound`), so this errs on the side of documenting. The
statuses a route declares itself (`responses=`) are kept, with their descriptions; their bodies
become problems.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator
from types import CodeType, FunctionType
from typing import Any, Final

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts

from regshield.api.deps import bearer, stepped_up_actor_of
from regshield.api.problems import PROBLEM_TYPE, PROBLEM_TYPES
from regshield.errors import RegshieldError

PROBLEM_JSON: Final = "application/problem+json"
# What reaches a registry before the answer (flows/operations.py `execute_all`, the check
# command of `domain_check`, the mail of a registry-lock code): the registry link's errors,
# 502, 503 and 504, are raised behind `services.registries.pool(...)`, an attribute that the
# walk of names below does not follow.
REGISTRY: Final = frozenset({"execute_all", "domain_check", "send_lock_code"})
READS: Final = frozenset({"GET", "HEAD"})
FOLLOWED: Final = "regshield."
API: Final = "regshield.api."
# The types each status carries, in the document's descriptions.
_TYPES_BY_STATUS: dict[int, list[str]] = {}
for _problem in PROBLEM_TYPES:
    if _problem.status and not _problem.cli_only:
        _TYPES_BY_STATUS.setdefault(_problem.status, []).append(_problem.slug)

DEFAULT_DESCRIPTIONS: Final[dict[int, str]] = {
    400: "The body could not be read as JSON",
    401: "No credential, or one that is unknown, expired or revoked",
    403: "The credential may not do this",
    404: "No such object (or one of another account)",
    409: "The object's state does not allow this",
    413: "The body is larger than the route allows; refused before it is read",
    422: "Invalid input: `errors` lists every failing field",
    429: "Too many attempts; wait `Retry-After` seconds",
    500: "Unexpected failure; nothing was changed",
    502: "The registry answered in a way that cannot be used",
    503: "The registry (or the mail for a registry-lock code) cannot be reached; nothing "
         "was sent",
    504: "The registry connection was lost after the command was sent; the outcome is "
         "reconciled later",
}
SCHEMA_FOR_STATUS: Final[dict[int, str]] = {
    413: "BodyTooLargeProblem", 422: "ValidationProblem", 429: "ThrottledProblem"}


def problem_schemas() -> dict[str, Any]:
    """The problem document (RFC 9457) and its three extended forms."""
    types = ", ".join(f"`{p.uri}`" for p in PROBLEM_TYPES)
    problem = {
        "title": "Problem",
        "type": "object",
        "description": "An RFC 9457 problem document (docs/problems.md lists every type).",
        "required": ["type", "title", "status", "detail", "instance", "request_id"],
        "properties": {
            "type": {"type": "string", "description": (
                f"The problem type: `{PROBLEM_TYPE}<slug>`. One of: {types}."),
                "examples": [PROBLEM_TYPE + "not-found"]},
            "title": {"type": "string", "description": "The type's short summary"},
            "status": {"type": "integer", "minimum": 100, "maximum": 599,
                       "description": "The HTTP status"},
            "detail": {"type": "string", "description": "What happened, for people"},
            "instance": {"type": "string", "description": "The request's path"},
            "request_id": {"type": "string",
                           "description": "The request's id (also `X-Request-ID`)"},
        },
        "additionalProperties": True,
    }
    field_error = {
        "title": "FieldError",
        "type": "object",
        "required": ["field", "code", "message"],
        "properties": {
            "field": {"type": "string",
                      "description": "A dotted path (`street.0`; `body` for the whole body)"},
            "code": {"type": "string", "description": "Why, for programs"},
            "message": {"type": "string", "description": "Why, for people"},
        },
    }

    def extended(title: str, required: str, member: dict[str, Any]) -> dict[str, Any]:
        return {"title": title, "allOf": [
            {"$ref": "#/components/schemas/Problem"},
            {"type": "object", "required": [required], "properties": {required: member}}]}

    return {
        "Problem": problem,
        "FieldError": field_error,
        "ValidationProblem": extended("ValidationProblem", "errors", {
            "type": "array", "minItems": 1,
            "items": {"$ref": "#/components/schemas/FieldError"},
            "description": "Every failing field at once"}),
        "ThrottledProblem": extended("ThrottledProblem", "retry_after", {
            "type": "integer", "minimum": 1, "description": "Seconds to wait"}),
        "BodyTooLargeProblem": extended("BodyTooLargeProblem", "max_bytes", {
            "type": "integer", "minimum": 0, "description": "The route's body limit"}),
    }


def _dependants(dependant: Dependant) -> Iterator[Dependant]:
    yield dependant
    for sub in dependant.dependencies:
        yield from _dependants(sub)


def _codes(code: CodeType) -> Iterator[CodeType]:
    yield code
    for constant in code.co_consts:
        if isinstance(constant, CodeType):
            yield from _codes(constant)


def _followed(value: Any, module: str) -> list[FunctionType]:
    """The functions to read next: a helper of the router's module, or a function or a flow
    class (its methods) of `regshield.flows`."""
    owner = getattr(value, "__module__", "") or ""
    if not (owner == module or (owner.startswith(FOLLOWED) and not owner.startswith(API))):
        return []
    if isinstance(value, FunctionType):
        return [value]
    if isinstance(value, type):
        return [inspect.unwrap(member) for member in vars(value).values()
                if isinstance(inspect.unwrap(member), FunctionType)]
    return []


@functools.cache
def referenced_names(endpoint: Callable[..., Any] | None) -> frozenset[str]:
    """The global and attribute names the endpoint's code uses, and those of what it calls in
    its own module and in `regshield.flows` (transitively): the flows it runs, the helpers
    they use."""
    function = inspect.unwrap(endpoint) if endpoint is not None else None
    if not isinstance(function, FunctionType):
        return frozenset()
    module = function.__module__
    names: set[str] = set()
    pending = [function]
    seen: set[FunctionType] = set()
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        for code in _codes(current.__code__):
            for name in code.co_names:
                names.add(name)
                pending += _followed(current.__globals__.get(name), module)
    return frozenset(names)


def statuses_of(route: RouteContext) -> dict[int, list[str]]:
    """The error statuses a route can answer, each with the problem types it may carry."""
    dependants = list(_dependants(route.dependant))
    calls = {d.call for d in dependants if d.call is not None}
    authenticated = bearer in calls
    stepped_up = stepped_up_actor_of in calls
    has_body = any(d.body_params for d in dependants)
    path_params = any(d.path_params for d in dependants)
    query_params = any(d.query_params for d in dependants)
    parameters = path_params or query_params or any(d.header_params for d in dependants)
    change = not set(route.methods or ()) <= READS
    names = referenced_names(route.endpoint)

    found: dict[int, list[str]] = {500: ["internal-error", "configuration-error",
                                         "dns-parent-unknown", "hsm-unavailable"]}

    def add(status: int, *slugs: str) -> None:
        kinds = found.setdefault(status, [])
        kinds += [slug for slug in slugs if slug not in kinds]

    add(429, "throttled")  # the API's rate limit, per source and per token (api/rate_limit.py)
    add(503, "busy")  # every database connection taken (api/problems.py)
    if authenticated:
        add(401, "authentication-required", "authentication-failed")
        add(403, "permission-denied")
    if stepped_up:
        add(401, "authentication-failed")
        add(403, "step-up-required")
        add(429, "throttled")
    if has_body:
        add(400, "malformed-body")
        add(413, "body-too-large")
    if has_body or parameters:
        add(422, "validation-failed")
    if path_params or query_params or (change and (has_body or parameters)):
        add(404, "not-found")
    if change or "run_flow" in names:  # a read that records (a staff read of personal data)
        add(409, "conflict")  # also a concurrent change that won a unique value (runner.py)
    if names & REGISTRY:
        add(502, *_TYPES_BY_STATUS[502])
        add(503, *_TYPES_BY_STATUS[503])
        add(504, *_TYPES_BY_STATUS[504])
    for declared in route.responses:
        status = int(declared)
        if status >= 400 and status not in found:
            add(status, *_TYPES_BY_STATUS.get(status, []))
    for error in _error_classes():  # an error class the code it runs names
        if error.__name__ in names and error.http_status != 500:
            add(error.http_status, error.type_slug)
    return found


def _error_classes() -> list[type[RegshieldError]]:
    found: list[type[RegshieldError]] = []
    pending: list[type[RegshieldError]] = [RegshieldError]
    while pending:
        current = pending.pop()
        found.append(current)
        pending += current.__subclasses__()
    return found


def _response(status: int, slugs: list[str], description: str | None) -> dict[str, Any]:
    schema = SCHEMA_FOR_STATUS.get(status, "Problem")
    types = ", ".join(f"`{slug}`" for slug in slugs)
    text = description or DEFAULT_DESCRIPTIONS.get(status, "A problem")
    if not description and status == 403 and "step-up-required" in slugs:
        text += ("; `step-up-required`: send the request again with a current one-time code "
                 "as `X-OTP`")
    response: dict[str, Any] = {
        "description": f"{text}. Problem types: {types}." if slugs else f"{text}.",
        "content": {PROBLEM_JSON: {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }
    if status == 401:
        response["headers"] = {"WWW-Authenticate": {
            "description": "`Bearer realm=\"regshield\"`", "schema": {"type": "string"}}}
    if status == 429:
        response["headers"] = {"Retry-After": {
            "description": "Seconds to wait before trying again",
            "schema": {"type": "integer", "minimum": 1}}}
    return response


def documented_routes(app: FastAPI) -> list[RouteContext]:
    """The operations' routes, as the document sees them (prefixes applied)."""
    return [route for route in iter_route_contexts(app.routes)
            if isinstance(route.original_route, APIRoute) and route.include_in_schema]


def document(app: FastAPI, spec: dict[str, Any]) -> dict[str, Any]:
    """FastAPI's document `spec`, with every operation's errors as problems and the 202 of
    the routes that answer it (a registry operation still pending)."""
    components = spec.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas.update(problem_schemas())
    for route in documented_routes(app):
        item = spec["paths"][route.path_format]
        for method in route.methods or ():
            operation = item.get(method.lower())
            if operation is None:
                continue
            responses: dict[str, Any] = operation.setdefault("responses", {})
            success: dict[str, Any] = next(
                (r for s, r in sorted(responses.items()) if s.startswith("2") and "content" in r),
                {})
            if "HTTP_202_ACCEPTED" in referenced_names(route.endpoint) \
                    and "202" not in responses:
                responses["202"] = {"description": (
                    "Accepted; the registry has not confirmed yet (the outbox finishes it)")}
            for code, response in responses.items():
                # A success declared by its description only has the body of the main one.
                if code.startswith("2") and code != "204" and "content" not in response \
                        and "content" in success:
                    response["content"] = success["content"]
            for status, slugs in sorted(statuses_of(route).items()):
                declared = route.responses.get(status) or route.responses.get(str(status)) or {}
                responses[str(status)] = _response(status, slugs, declared.get("description"))
            operation["responses"] = dict(sorted(responses.items()))
    return spec


def install(app: FastAPI) -> None:
    """Serve `document(app, ...)` at the OpenAPI URL (made once, on first use)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document(app, generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
