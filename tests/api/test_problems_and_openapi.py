"""API plumbing: every error is an RFC 9457 problem document, requests carry an id that comes
back in the response, and the OpenAPI document describes the API and its bearer tokens."""

from __future__ import annotations

import functools
import importlib
import inspect
import json
import pkgutil
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import PASSWORD, World
from domains.conftest import Registry, registry, stepped_up_owner

import regshield
import regshield.api.routers.events as events_router
from regshield.api.app import create_app
from regshield.api.openapi import documented_routes, referenced_names
from regshield.api.problems import PROBLEM_TYPES, PROBLEM_TYPES_BY_SLUG
from regshield.api.problems import markdown as problems_markdown
from regshield.clock import FakeClock
from regshield.errors import RegshieldError
from regshield.policy.security import security_policy
from regshield.services import Services

PROBLEM = "urn:regshield:problem:"
PROBLEM_JSON = "application/problem+json"
DOCUMENTED_PATHS = (
    "/api/v1/auth/login", "/api/v1/auth/mfa/totp", "/api/v1/auth/mfa/totp/confirm",
    "/api/v1/contacts", "/api/v1/contacts/{handle}", "/api/v1/events",
)


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    body: dict[str, Any] = response.json()
    assert body["type"] == PROBLEM + slug
    assert body["status"] == status
    assert body["title"] and body["detail"]
    assert body["instance"] == response.request.url.path
    assert body["request_id"] == response.headers["x-request-id"]
    return body


async def test_unknown_route_is_a_404_problem(api: httpx.AsyncClient) -> None:
    response = await api.get("/api/v1/no-such-thing")

    assert_problem(response, 404, "not-found")


async def test_path_outside_the_api_is_a_404_problem(api: httpx.AsyncClient) -> None:
    assert_problem(await api.get("/wp-admin/setup.php"), 404, "not-found")


async def test_a_trailing_slash_is_a_404_problem_not_a_redirect(
        api: httpx.AsyncClient, world: World) -> None:
    admin = await world.user("admin")

    for method in ("GET", "DELETE"):
        response = await api.request(method, "/api/v1/contacts/", headers=admin.headers)
        assert_problem(response, 404, "not-found")
        assert "location" not in response.headers


async def test_a_name_with_an_encoded_slash_is_a_404_problem_not_another_route(
        api: httpx.AsyncClient, world: World) -> None:
    admin = await world.user("admin")

    # decoded, the path would be /domains/x/renew (POST only): a 405 no document declares
    response = await api.delete("/api/v1/domains/x%2Frenew", headers=admin.headers)

    assert_problem(response, 404, "not-found")


async def test_wrong_method_is_a_405_problem_naming_the_allowed_methods(
        api: httpx.AsyncClient) -> None:
    response = await api.delete("/api/v1/auth/login")

    assert_problem(response, 405, "method-not-allowed")
    assert "POST" in response.headers["allow"]


async def test_request_without_a_bearer_token_is_a_401_with_a_challenge(
        api: httpx.AsyncClient) -> None:
    response = await api.get("/api/v1/events")

    assert_problem(response, 401, "authentication-required")
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("authorization", [
    "Bearer rs_not-a-real-token",
    "Bearer something-else",
    "Bearer " + "rs_" + "x" * 300,
])
async def test_invalid_bearer_token_is_a_401_with_a_challenge(
        api: httpx.AsyncClient, authorization: str) -> None:
    response = await api.get("/api/v1/events", headers={"Authorization": authorization})

    assert_problem(response, 401, "authentication-failed")
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_other_authorization_scheme_is_a_401_with_a_challenge(
        api: httpx.AsyncClient) -> None:
    response = await api.get("/api/v1/events", headers={"Authorization": "Basic dXNlcjpwdw=="})

    assert response.status_code == 401
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_malformed_json_is_a_422_problem_with_errors(api: httpx.AsyncClient) -> None:
    response = await api.post("/api/v1/auth/login", content=b'{"email": "a@example.net",',
                              headers={"Content-Type": "application/json"})

    body = assert_problem(response, 422, "validation-failed")
    assert body["errors"]
    for error in body["errors"]:
        assert set(error) == {"field", "code", "message"}
        assert error["code"] and error["message"]


async def test_wrongly_typed_body_is_a_422_problem_naming_every_field(
        api: httpx.AsyncClient) -> None:
    response = await api.post("/api/v1/auth/login", json={"email": ["not", "a", "string"]})

    body = assert_problem(response, 422, "validation-failed")
    assert {e["field"] for e in body["errors"]} == {"email", "password"}
    assert "email" in body["detail"] and "password" in body["detail"]


async def test_offered_request_id_is_echoed(api: httpx.AsyncClient) -> None:
    response = await api.get("/api/v1/no-such-thing", headers={"X-Request-ID": "trace-42.a_b"})

    assert response.headers["x-request-id"] == "trace-42.a_b"
    assert response.json()["request_id"] == "trace-42.a_b"


@pytest.mark.parametrize("offered", [
    "has spaces in it", "x" * 65, "inject\\r\\nSet-Cookie", "<script>", "",
])
async def test_unacceptable_request_id_is_replaced(api: httpx.AsyncClient, offered: str) -> None:
    response = await api.get("/api/v1/no-such-thing", headers={"X-Request-ID": offered})

    replaced = response.headers["x-request-id"]
    assert replaced != offered
    assert replaced.startswith("req_") and len(replaced) > len("req_")
    assert response.json()["request_id"] == replaced


async def test_every_response_gets_a_fresh_request_id_and_is_not_cached(
        api: httpx.AsyncClient) -> None:
    first = await api.get("/api/v1/openapi.json")
    second = await api.get("/api/v1/openapi.json")

    assert first.headers["x-request-id"] != second.headers["x-request-id"]
    assert first.headers["cache-control"] == "no-store"
    assert first.headers["x-content-type-options"] == "nosniff"


async def test_openapi_lists_the_documented_paths_and_a_bearer_scheme(
        api: httpx.AsyncClient) -> None:
    response = await api.get("/api/v1/openapi.json")

    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.")
    for path in DOCUMENTED_PATHS:
        assert path in document["paths"], path
    schemes = document["components"]["securitySchemes"]
    bearer_schemes = [name for name, scheme in schemes.items()
                      if scheme.get("type") == "http" and scheme.get("scheme") == "bearer"]
    assert bearer_schemes
    events_security = document["paths"]["/api/v1/events"]["get"]["security"]
    assert any(name in requirement for requirement in events_security
               for name in bearer_schemes)
    assert "security" not in document["paths"]["/api/v1/auth/login"]["post"]


@pytest.fixture
async def fragile_api(services: Services,
                      monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[httpx.AsyncClient]:
    """The API, with the event listing broken by an unexpected exception."""
    async def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("database password is hunter2 at /srv/secret.py line 12")

    monkeypatch.setattr(events_router, "event_list", broken)
    transport = httpx.ASGITransport(app=create_app(services), raise_app_exceptions=False,
                                    client=("192.0.2.10", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://regshield.test") as client:
        yield client


async def test_unexpected_exception_is_a_500_problem_without_internals(
        fragile_api: httpx.AsyncClient, world: World) -> None:
    admin = await world.user("admin")

    response = await fragile_api.get("/api/v1/events",
                                     headers={**admin.headers, "X-Request-ID": "trace-500"})

    assert response.status_code == 500
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    body = response.json()
    assert body["type"] == PROBLEM + "internal-error"
    assert body["status"] == 500
    assert body["request_id"] == "trace-500"
    assert response.headers["x-request-id"] == "trace-500"
    assert response.headers["cache-control"] == "no-store"
    for leak in ("Traceback", "RuntimeError", "hunter2", "secret.py", 'File "'):
        assert leak not in response.text


# --- the document tells the truth about errors -------------------------------------------------

READ_METHODS = ("get", "head")
OPERATION_METHODS = ("get", "put", "post", "delete", "patch")
STEP_UP_PROBLEM = "step-up-required"


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method, path, operation) for path, item in document["paths"].items()
            for method, operation in item.items() if method in OPERATION_METHODS]


def resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].removeprefix("#/components/schemas/")
        schema = document["components"]["schemas"][name]
    return schema


JSON_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,), "array": (list,), "string": (str,), "integer": (int,),
    "number": (int, float), "boolean": (bool,), "null": (type(None),)}


def violations(document: dict[str, Any], schema: dict[str, Any], value: Any,
               where: str = "$") -> list[str]:
    """What in `value` breaks `schema` (the JSON Schema keywords the problem schemas use)."""
    schema = resolve(document, schema)
    found: list[str] = []
    for part in schema.get("allOf", []):
        found += violations(document, part, value, where)
    if "anyOf" in schema and all(violations(document, part, value, where)
                                 for part in schema["anyOf"]):
        found.append(f"{where}: matches none of anyOf")
    kind = schema.get("type")
    if kind is not None:
        kinds = kind if isinstance(kind, list) else [kind]
        accepted = tuple(t for k in kinds for t in JSON_TYPES[k])
        if not isinstance(value, accepted) or (isinstance(value, bool)
                                               and "boolean" not in kinds):
            return [*found, f"{where}: {value!r} is not {kind}"]
    if isinstance(value, dict):
        found += [f"{where}.{name}: required" for name in schema.get("required", [])
                  if name not in value]
        for name, member in schema.get("properties", {}).items():
            if name in value:
                found += violations(document, member, value[name], f"{where}.{name}")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            found.append(f"{where}: fewer than {schema['minItems']} items")
        for index, item in enumerate(value):
            found += violations(document, schema.get("items", {}), item, f"{where}[{index}]")
    if isinstance(value, int) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            found.append(f"{where}: {value} < {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            found.append(f"{where}: {value} > {schema['maximum']}")
    return found


def assert_documented(document: dict[str, Any], method: str, path: str,
                      response: httpx.Response) -> dict[str, Any] | None:
    """The answer's status is declared on the operation, and an error's body is a problem
    that the schema declared for that status accepts."""
    declared = document["paths"][path][method]["responses"]
    status = str(response.status_code)
    assert status in declared, (method, path, status, response.text[:300])
    if response.status_code < 400:
        return None
    assert response.headers["content-type"].startswith(PROBLEM_JSON), (method, path, status)
    schema = declared[status]["content"][PROBLEM_JSON]["schema"]
    body: dict[str, Any] = response.json()
    assert not violations(document, schema, body), (method, path, status, body,
                                                     violations(document, schema, body))
    assert body["status"] == response.status_code
    if response.status_code == 429:
        assert int(response.headers["retry-after"]) >= 1
    return body


@pytest.fixture
async def document(api: httpx.AsyncClient) -> dict[str, Any]:
    response = await api.get("/api/v1/openapi.json")
    assert response.status_code == 200
    served: dict[str, Any] = response.json()
    return served


async def test_every_error_answer_is_declared_as_a_problem_and_no_fastapi_error_remains(
        document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas and "ValidationError" not in schemas
    assert "HTTPValidationError" not in json.dumps(document)
    for method, path, operation in operations(document):
        responses = operation["responses"]
        assert "500" in responses, (method, path)
        for status, response in responses.items():
            if int(status) >= 400:
                assert set(response["content"]) == {PROBLEM_JSON}, (method, path, status)
            elif status != "204":
                assert response.get("content"), (method, path, status)  # a body to check
        takes_input = "requestBody" in operation or operation.get("parameters")
        if takes_input:
            assert "422" in responses, (method, path)
            schema = responses["422"]["content"][PROBLEM_JSON]["schema"]
            assert resolve(document, schema) is schemas["ValidationProblem"]
        if "requestBody" in operation:
            assert {"400", "413", "422"} <= set(responses), (method, path)
        if operation.get("security"):
            assert {"401", "403"} <= set(responses), (method, path)
            assert "WWW-Authenticate" in responses["401"]["headers"]
        if any(p["in"] == "path" for p in operation.get("parameters", [])):
            assert "404" in responses, (method, path)
        if any(p["name"].lower() == "x-otp" for p in operation.get("parameters", [])):
            assert STEP_UP_PROBLEM in responses["403"]["description"], (method, path)
            assert "429" in responses, (method, path)
        if "429" in responses:
            assert "Retry-After" in responses["429"]["headers"]
        if method not in READ_METHODS and operation.get("security"):
            assert "409" in responses, (method, path)


async def test_the_problem_schema_is_rfc_9457_with_the_errors_list(
        document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    problem = schemas["Problem"]
    assert set(problem["required"]) == {"type", "title", "status", "detail", "instance",
                                        "request_id"}
    assert problem["properties"]["detail"]["type"] == "string"
    errors = resolve(document, schemas["ValidationProblem"])["allOf"][1]
    assert errors["required"] == ["errors"]
    assert resolve(document, errors["properties"]["errors"]["items"])["required"] == [
        "field", "code", "message"]


async def test_the_registry_operations_that_may_stay_pending_document_202(
        document: dict[str, Any]) -> None:
    for path, method in [("/api/v1/domains", "post"), ("/api/v1/transfers", "post"),
                         ("/api/v1/domains/{name}/registrar-lock", "post"),
                         ("/api/v1/domains/{name}/registrar-lock", "delete"),
                         ("/api/v1/domains/{name}/ds", "put"),
                         ("/api/v1/registry-lock/verify", "post")]:
        responses = document["paths"][path][method]["responses"]
        assert "202" in responses, (method, path)
        assert {"502", "503", "504"} <= set(responses), (method, path)


async def test_logout_is_documented_as_revoking_the_token(
        api: httpx.AsyncClient, document: dict[str, Any], world: World) -> None:
    operation = document["paths"]["/api/v1/auth/logout"]["post"]
    assert "revoke" in operation["description"] and "do not retry" in operation["description"]
    assert "204" in operation["responses"]
    member = await world.user("owner", await world.account())

    response = await api.post("/api/v1/auth/logout", headers=member.headers)
    assert_documented(document, "post", "/api/v1/auth/logout", response)
    assert response.status_code == 204
    again = await api.post("/api/v1/auth/logout", headers=member.headers)
    assert_documented(document, "post", "/api/v1/auth/logout", again)
    assert_problem(again, 401, "authentication-failed")


def all_error_classes() -> list[type[RegshieldError]]:
    for module in pkgutil.walk_packages(regshield.__path__, "regshield."):
        importlib.import_module(module.name)
    found: list[type[RegshieldError]] = []
    pending: list[type[RegshieldError]] = [RegshieldError]
    while pending:
        current = pending.pop()
        found.append(current)
        pending += current.__subclasses__()
    return found


def test_every_problem_type_raised_is_listed_with_its_status_and_title() -> None:
    for error in all_error_classes():
        listed = PROBLEM_TYPES_BY_SLUG.get(error.type_slug)
        assert listed is not None, error
        assert (listed.status, listed.title) == (error.http_status, error.title), error
    assert len(PROBLEM_TYPES_BY_SLUG) == len(PROBLEM_TYPES)


def test_docs_problems_page_is_the_list() -> None:
    page = (Path(__file__).parents[2] / "docs" / "problems.md").read_text()
    assert page == problems_markdown(), (
        "docs/problems.md is out of date: python -m regshield.api.problems > docs/problems.md")
    for error in all_error_classes():
        assert f"## {error.type_slug}\n" in page
        assert f"`{PROBLEM}{error.type_slug}`" in page


async def test_every_problem_type_the_api_answers_is_in_the_document(
        document: dict[str, Any]) -> None:
    listed = document["components"]["schemas"]["Problem"]["properties"]["type"]["description"]
    text = json.dumps(document)
    for kind in PROBLEM_TYPES:
        assert f"`{kind.uri}`" in listed, kind.slug
        # 405 answers a method that no operation declares; `http-error` has no status of its own
        if not kind.cli_only and kind.status not in (0, 405):
            assert f"`{kind.slug}`" in text, kind.slug


# --- real answers, checked against the document ------------------------------------------------

async def test_real_error_answers_match_the_schema_declared_for_their_status(
        api: httpx.AsyncClient, document: dict[str, Any], world: World,
        clock: FakeClock) -> None:
    admin = await world.user("admin")
    owner = await world.user("owner", await world.account())

    def check(method: str, path: str, response: httpx.Response, status: int,
              slug: str) -> dict[str, Any]:
        assert_documented(document, method, path, response)
        body = assert_problem(response, status, slug)
        assert body["title"] == PROBLEM_TYPES_BY_SLUG[slug].title
        return body

    check("post", "/api/v1/auth/login", await api.post(
        "/api/v1/auth/login", content=b'{"email": "\xff\xfe"}',
        headers={"Content-Type": "application/json"}), 400, "malformed-body")
    check("get", "/api/v1/events", await api.get("/api/v1/events"),
          401, "authentication-required")
    check("get", "/api/v1/events", await api.get(
        "/api/v1/events", headers={"Authorization": "Bearer rs_nope"}),
        401, "authentication-failed")
    check("post", "/api/v1/accounts", await api.post(
        "/api/v1/accounts", json={"name": "Mine"}, headers=owner.headers),
        403, "permission-denied")
    check("put", "/api/v1/me/registry-lock", await api.put(
        "/api/v1/me/registry-lock", headers=owner.headers,
        json={"lock_email": "lock@example.net", "lock_password": PASSWORD}),
        403, STEP_UP_PROBLEM)
    check("get", "/api/v1/contacts/{handle}", await api.get(
        "/api/v1/contacts/C-NOSUCH", headers=admin.headers), 404, "not-found")
    signed_in = await api.post("/api/v1/auth/login",
                               json={"email": owner.email, "password": PASSWORD})
    login_token = {"Authorization": f"Bearer {signed_in.json()['token']}"}
    check("post", "/api/v1/auth/mfa/totp/confirm", await api.post(
        "/api/v1/auth/mfa/totp/confirm", json={"otp": "123456"}, headers=login_token),
        409, "conflict")
    too_large = check("post", "/api/v1/contacts", await api.post(
        "/api/v1/contacts", content=b"{" + b" " * (2 * 1024 * 1024) + b"}",
        headers={**admin.headers, "Content-Type": "application/json"}),
        413, "body-too-large")
    assert too_large["max_bytes"] == 1024 * 1024
    invalid = check("post", "/api/v1/contacts", await api.post(
        "/api/v1/contacts", json={"name": ["not", "a", "name"]}, headers=admin.headers),
        422, "validation-failed")
    assert {"field": "name", "code": invalid["errors"][0]["code"],
            "message": invalid["errors"][0]["message"]} in invalid["errors"]
    check("get", "/api/v1/events", await api.get(
        "/api/v1/events", params={"after": str(2 ** 63)}, headers=admin.headers),
        422, "validation-failed")
    for _ in range(security_policy(clock.now()).login_failures_per_user):
        failed = await api.post("/api/v1/auth/login",
                                json={"email": owner.email, "password": "wrong"})
        check("post", "/api/v1/auth/login", failed, 401, "authentication-failed")
    throttled = check("post", "/api/v1/auth/login", await api.post(
        "/api/v1/auth/login", json={"email": owner.email, "password": PASSWORD}),
        429, "throttled")
    assert throttled["retry_after"] == int((await api.post(
        "/api/v1/auth/login", json={"email": owner.email, "password": PASSWORD}
    )).headers["retry-after"])


def fill(path: str) -> str:
    """A path of the document with every parameter named so that nothing matches."""
    return re.sub(r"\{[^}]+\}", "nosuch-example.test", path)


def query(operation: dict[str, Any]) -> str:
    """Every query parameter of the operation, with a value of its type naming nothing."""
    values: list[tuple[str, str]] = []
    for parameter in operation.get("parameters", []):
        if parameter["in"] != "query":
            continue
        schema = parameter["schema"]
        kinds = {part.get("type") for part in schema.get("anyOf", [schema])}
        if "integer" in kinds:
            number = next(p for p in schema.get("anyOf", [schema]) if p.get("type") == "integer")
            values.append((parameter["name"], str(number.get("minimum", 1))))
        elif "boolean" in kinds:
            values.append((parameter["name"], "true"))
        else:
            values.append((parameter["name"], "nosuch-example.test"))
    return "?" + "&".join(f"{name}={value}" for name, value in values) if values else ""


__all__ = ["registry"]  # the sandbox registry fixture, used below


async def test_every_operation_answers_only_documented_statuses_to_bad_requests(
        api: httpx.AsyncClient, document: dict[str, Any], world: World, registry: Registry,
        clock: FakeClock) -> None:
    """Each operation, asked without a credential, with a wrong one, and by staff and a
    customer (stepped up or not) with names that do not exist, an empty body, an undecodable
    body, broken JSON and a body over the limit: every answer is declared on the operation,
    and no answer is a 5xx."""
    admin = await world.user("admin")
    owner = await stepped_up_owner(world, api, clock)
    wrong = {"Authorization": "Bearer rs_" + "x" * 43}
    json_type = {"Content-Type": "application/json"}
    for method, path, operation in operations(document):
        if path == "/api/v1/auth/logout":
            continue  # it would revoke the tokens used below (its own test is above)
        url = fill(path) + query(operation)
        has_body = "requestBody" in operation
        attempts: list[tuple[dict[str, str], bytes | None]] = [
            ({}, b"{}" if has_body else None), (wrong, b"{}" if has_body else None)]
        for who in (admin.headers, owner.headers, owner.otp()):
            attempts.append((who, b"{}" if has_body else None))
            if has_body:
                attempts += [(who, b'{"x": "\xff"}'), (who, b"[1, 2"),
                             (who, b"{" + b" " * (1024 * 1024 + 1) + b"}")]
        for headers, content in attempts:
            response = await api.request(method.upper(), url, content=content,
                                         headers={**headers, **json_type})
            assert response.status_code < 500, (method, path, response.text[:300])
            assert_documented(document, method, path, response)


RAISED = re.compile(r"(?:raise|refuse\(|return) (\w+)\(")
CALLED = re.compile(r"(?<![\w.])(\w+)\(")


@functools.cache
def source_of(target: Any) -> str | None:
    """The source text of a function or class, read once (each route reads many again)."""
    try:
        return inspect.getsource(target)
    except (OSError, TypeError):
        return None


def raised_by(target: Any, errors: dict[str, type[RegshieldError]],
              seen: set[int]) -> set[str]:
    """The error classes `target`'s source raises (or refuses with, or returns to be raised),
    and those of the regshield functions and classes it calls, read from the source text."""
    if id(target) in seen:
        return set()
    seen.add(id(target))
    source = source_of(target)
    if source is None:
        return set()
    found = {name for name in RAISED.findall(source) if name in errors}
    module = inspect.getmodule(target)
    for name in set(CALLED.findall(source)):
        value = getattr(module, name, None)
        if (inspect.isfunction(value) or inspect.isclass(value)) and value is not target \
                and str(getattr(value, "__module__", "")).startswith("regshield."):
            found |= raised_by(value, errors, seen)
    return found


@pytest.mark.parametrize("backend", ["sqlite"])  # read from the source: one store is enough
def test_every_error_class_a_route_can_reach_is_documented_on_it(services: Services) -> None:
    """Read from the source (not the bytecode names api/openapi.py follows): each error a
    route's flows and reads raise has its status on the route's operation."""
    errors = {error.__name__: error for error in all_error_classes()}
    app = create_app(services)
    document = app.openapi()
    reaching = 0
    for route in documented_routes(app):
        raised: set[str] = set()
        for name in referenced_names(route.endpoint):
            value = route.endpoint.__globals__.get(name)
            if (inspect.isfunction(value) or inspect.isclass(value)) \
                    and str(getattr(value, "__module__", "")).startswith("regshield.flows"):
                raised |= raised_by(value, errors, set())
        reaching += bool(raised)
        for method in route.methods:
            responses = document["paths"][route.path_format][method.lower()]["responses"]
            for name in raised:
                status = errors[name].http_status
                assert str(status) in responses, (method, route.path_format, name, status)
    assert reaching > len(document["paths"]) // 2  # the reading itself works
