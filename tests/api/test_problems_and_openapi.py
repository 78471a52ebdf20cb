"""API plumbing: every error is an RFC 9457 problem document, requests carry an id that comes
back in the response, and the OpenAPI document describes the API and its bearer tokens."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from conftest import World

import regshield.api.routers.events as events_router
from regshield.api.app import create_app
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
