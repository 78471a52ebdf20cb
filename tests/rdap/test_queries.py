"""RDAP queries other than a plain domain lookup: bad input, HEAD, CORS, help, nameserver,
entity and search, and who may ask what."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from domains.test_lifecycle import register

import regshield.api.routers.rdap as rdap_router
from rdap.conftest import IANA_ID, Published
from regshield.clock import FakeClock

PROFILE = {"rdap_level_0", "icann_rdap_technical_implementation_guide_1",
           "icann_rdap_response_profile_1"}

# Each is answered 400 or 404 with an RDAP error body, never 500.
BAD_PATHS = [
    "/rdap/domain/" + "a" * 64 + ".test",  # label too long
    "/rdap/domain/" + ".".join(["abcdefghi"] * 30) + ".test",  # name too long
    "/rdap/domain/" + "x" * 5000,  # overlong input
    "/rdap/domain/" + "ü" * 2000 + ".test",
    "/rdap/domain/-bad-.test",
    "/rdap/domain/exa%20mple.test",
    "/rdap/domain/ex_ample.test",
    "/rdap/domain/example..test",
    "/rdap/domain/.",
    "/rdap/domain/..",
    "/rdap/domain/..%2f..",
    "/rdap/domain/..%2F..%2F..%2Fetc%2Fpasswd",
    "/rdap/domain/%2e%2e%2f%2e%2e",
    "/rdap/domain/a%2fb.test",
    "/rdap/domain/a%5cb.test",
    "/rdap/domain/example.test%00",
    "/rdap/domain/%ff%fe.test",
    "/rdap/domain/xn--bcher-kva.t%C3%ABst",  # A-label and U-label mixed
    "/rdap/domain/b%C3%BCcher.xn--p1ai",  # U-label and A-label mixed
    "/rdap/domain/xn--zzzz-.test",  # not a valid A-label
    "/rdap/domain/xn--bcher-kva.test%E2%80%AE",  # right-to-left override
    "/rdap/domain/%F0%9F%99%82.test",  # an emoji
    "/rdap/domain/1.2.3.4",
    "/rdap/domain/[::1]",
    "/rdap/domain/example.test?foo=bar",  # unknown parameter
    "/rdap/domain/example.test?name=example.test",
    "/rdap/domain/",
    "/rdap/domain/example.test/extra",
    "/rdap/nameserver/..%2f..",
    "/rdap/nameserver/ns1..example.net",
    "/rdap/entity/..%2f..",
    "/rdap/entity/%00",
    "/rdap/entity/" + "A" * 200,
    "/rdap/help?x=1",
    "/rdap/autnum/64496",
    "/rdap/ip/192.0.2.1",
    "/rdap/",
    "/rdap/%2e%2e/%2e%2e/api/v1/contacts",
]


def assert_rdap_error(response: httpx.Response, status: int | tuple[int, ...]) -> None:
    statuses = status if isinstance(status, tuple) else (status,)
    assert response.status_code in statuses, (response.request.url, response.text)
    assert response.headers["content-type"] == "application/rdap+json"
    assert response.headers["access-control-allow-origin"] == "*"
    body = response.json()
    assert body["errorCode"] == response.status_code
    assert set(body["rdapConformance"]) == PROFILE
    assert isinstance(body["title"], str) and body["description"]
    assert "Traceback" not in response.text


async def test_bad_input_is_answered_400_or_404_with_an_rdap_error_and_never_500(
        api: httpx.AsyncClient, published: Published, clock: FakeClock) -> None:
    for path in BAD_PATHS:
        clock.advance(timedelta(seconds=10))  # within the per-source query limit
        response = await api.get(path)
        assert_rdap_error(response, (400, 404))


async def test_mixed_labels_and_unknown_parameters_are_400(
        api: httpx.AsyncClient, published: Published) -> None:
    for path in ("/rdap/domain/xn--bcher-kva.t%C3%ABst", "/rdap/domain/example.test?foo=1",
                 "/rdap/domain/example.test/extra", "/rdap/domain/..%2f.."):
        assert_rdap_error(await api.get(path), 400)
    mixed = await api.get("/rdap/domain/xn--bcher-kva.t%C3%ABst")
    assert "A-labels and U-labels" in mixed.json()["description"][0]


async def test_head_answers_with_the_status_and_headers_of_get(
        api: httpx.AsyncClient, published: Published) -> None:
    for path in ("/rdap/domain/example.test", "/rdap/domain/unknown.test", "/rdap/help",
                 "/rdap/domain/-bad-.test", "/rdap/autnum/1", f"/rdap/entity/{IANA_ID}",
                 "/rdap/nameserver/ns1.example.net"):
        got = await api.get(path)
        head = await api.head(path)
        assert head.status_code == got.status_code, path
        assert head.content == b""
        for header in ("content-type", "content-length", "access-control-allow-origin"):
            assert head.headers[header] == got.headers[header], (path, header)


async def test_a_cors_preflight_is_answered_for_every_rdap_path(
        api: httpx.AsyncClient, published: Published) -> None:
    for path in ("/rdap/domain/example.test", "/rdap/help", "/rdap/domains"):
        response = await api.options(path, headers={
            "Origin": "https://client.example", "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization"})
        assert response.status_code == 204, path
        assert response.headers["access-control-allow-origin"] == "*"
        assert "GET" in response.headers["access-control-allow-methods"]
        assert "authorization" in response.headers["access-control-allow-headers"].lower()


async def test_other_methods_are_refused_with_an_rdap_error(
        api: httpx.AsyncClient, published: Published) -> None:
    response = await api.post("/rdap/domain/example.test", json={})
    assert_rdap_error(response, 405)
    assert response.headers["allow"] == "GET, HEAD, OPTIONS"


async def test_help_links_to_usage_and_policy_documents(
        api: httpx.AsyncClient, published: Published) -> None:
    response = await api.get("/rdap/help")

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/rdap+json"
    body = response.json()
    assert set(body["rdapConformance"]) == PROFILE
    rels = {link["rel"] for notice in body["notices"] for link in notice["links"]}
    assert {"terms-of-service", "help"} <= rels
    assert body["links"]


async def test_a_nameserver_of_a_sponsored_domain_is_found_and_others_are_not(
        api: httpx.AsyncClient, published: Published) -> None:
    found = await api.get("/rdap/nameserver/NS1.example.net.")
    assert found.status_code == 200, found.text
    body = found.json()
    assert (body["objectClassName"], body["ldhName"]) == ("nameserver", "ns1.example.net")
    assert set(body["rdapConformance"]) == PROFILE
    assert_rdap_error(await api.get("/rdap/nameserver/ns9.example.net"), 404)
    assert_rdap_error(await api.get("/rdap/nameserver/example.net"), 404)


async def test_the_registrar_is_an_entity_and_contacts_are_entities_for_staff_only(
        api: httpx.AsyncClient, published: Published) -> None:
    registrar = await api.get(f"/rdap/entity/{IANA_ID}")
    assert registrar.status_code == 200, registrar.text
    body = registrar.json()
    assert body["roles"] == ["registrar"]
    assert body["publicIds"] == [{"type": "IANA Registrar ID", "identifier": str(IANA_ID)}]

    handle = published.holder.contact
    assert_rdap_error(await api.get(f"/rdap/entity/{handle}"), 404)
    assert_rdap_error(await api.get(f"/rdap/entity/{handle}",
                                    headers=published.holder.headers), 404)
    as_staff = await api.get(f"/rdap/entity/{handle}", headers=published.staff.headers)
    assert as_staff.status_code == 200, as_staff.text
    contact = as_staff.json()
    assert contact["handle"] == handle
    assert ["fn", {}, "text", "Jane Example"] in contact["vcardArray"][1]
    assert_rdap_error(await api.get("/rdap/entity/RS-ZZZZZZZZZZ",
                                    headers=published.staff.headers), 404)


async def test_a_wrong_token_is_refused_rather_than_read_as_anonymous(
        api: httpx.AsyncClient, published: Published) -> None:
    for value in ("Bearer rs_not-a-token", "Basic dXNlcjpwYXNz", "Bearer "):
        response = await api.get("/rdap/domain/example.test", headers={"Authorization": value})
        assert_rdap_error(response, 401)


def names(body: dict[str, Any]) -> list[str]:
    return [d["ldhName"] for d in body["domainSearchResults"]]


async def test_search_is_for_staff_and_matches_a_prefix(
        api: httpx.AsyncClient, published: Published,
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert (await register(api, published.holder, name="example-two.test")).status_code == 201
    assert (await register(api, published.holder, name="bücher.test")).status_code == 201

    assert_rdap_error(await api.get("/rdap/domains?name=exa*"), 403)
    assert_rdap_error(await api.get("/rdap/domains?name=exa*",
                                    headers=published.holder.headers), 403)
    staff = published.staff.headers
    prefix = await api.get("/rdap/domains?name=EXA*", headers=staff)
    assert prefix.status_code == 200, prefix.text
    body = prefix.json()
    assert names(body) == ["example-two.test", "example.test"]
    assert set(body["rdapConformance"]) == PROFILE and "redacted" not in body
    assert all(d["objectClassName"] == "domain" for d in body["domainSearchResults"])
    assert ["fn", {}, "text", "Jane Example"] in next(
        e for e in body["domainSearchResults"][1]["entities"]
        if e["roles"] == ["registrant"])["vcardArray"][1]
    exact = await api.get("/rdap/domains?name=example.test", headers=staff)
    assert names(exact.json()) == ["example.test"]
    by_u_label = await api.get("/rdap/domains?name=B%C3%BC*", headers=staff)
    assert names(by_u_label.json()) == ["xn--bcher-kva.test"]
    none = await api.get("/rdap/domains?name=zzz*", headers=staff)
    assert none.status_code == 200 and names(none.json()) == []
    assert_rdap_error(await api.get("/rdap/domains?nsLdhName=ns1.example.net",
                                    headers=staff), 400)
    for bad in ("", "?name=exa*mple*", "?name=%25*", "?name=a&name=b",
                "?name=" + "x" * 3000 + "*", "?name=%E2%80%AE*"):
        assert_rdap_error(await api.get(f"/rdap/domains{bad}", headers=staff), 400)

    monkeypatch.setattr(rdap_router, "SEARCH_LIMIT", 1)
    truncated = (await api.get("/rdap/domains?name=exa*", headers=staff)).json()
    assert names(truncated) == ["example-two.test"]
    notice = next(n for n in truncated["notices"] if n["title"] == "Search Policy")
    assert notice["type"] == "result set truncated due to excessive load"
    assert notice["description"][0].startswith("Result set truncated due to load")
