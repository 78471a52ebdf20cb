"""Validation (WAPS 1): a registrant's fields are checked before a contact can exist, so a
registration or a change of registrant can only name valid data; a bad field is refused with
its name and reason, and nothing is registered."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from contact_samples import contact_body
from domains.conftest import Holder, Registry
from domains.test_lifecycle import DOMAINS, register


@pytest.mark.parametrize(("changes", "field", "code"), [
    ({"email": "jane@@example.net"}, "email", "invalid_email"),
    ({"email": "jane example.net"}, "email", "invalid_email"),
    ({"phone": "12345"}, "phone", "invalid_phone"),
    ({"phone": "+49 30"}, "phone", "invalid_phone"),
    ({"postal_code": "1011"}, "postal_code", "invalid_postal_code"),  # DE: five digits
    ({"country": "US", "postal_code": "ABCDE", "phone": "+1 202 555 0143"}, "postal_code",
     "invalid_postal_code"),
    ({"country": "XX"}, "country", "unknown_country"),
    ({"country": "DEU"}, "country", "unknown_country"),
])
async def test_a_registrant_with_a_bad_field_is_refused_naming_it(
        api: httpx.AsyncClient, holder: Holder, changes: dict[str, Any], field: str,
        code: str) -> None:
    response = await api.post("/api/v1/contacts", headers=holder.headers,
                              json=contact_body(**changes))

    assert response.status_code == 422, response.text
    assert {"field": field, "code": code} in [
        {"field": e["field"], "code": e["code"]} for e in response.json()["errors"]]


async def test_every_bad_field_is_named_at_once(api: httpx.AsyncClient,
                                                holder: Holder) -> None:
    response = await api.post("/api/v1/contacts", headers=holder.headers, json=contact_body(
        email="nope", phone="0", country="ZZ", postal_code=""))

    assert response.status_code == 422
    assert {e["field"] for e in response.json()["errors"]} >= {
        "email", "phone", "country", "postal_code"}


async def test_a_registration_without_a_valid_registrant_is_refused(
        api: httpx.AsyncClient, holder: Holder, registry: Registry) -> None:
    missing = await api.post(DOMAINS, headers=holder.headers,
                             json={"name": "example.test", "years": 1})
    unknown = await register(api, holder, registrant="RS-ZZZZZZZZZZ")

    assert missing.status_code == 422 and unknown.status_code == 422
    assert "registrant" in {e["field"] for e in missing.json()["errors"]}
    assert [e["field"] for e in unknown.json()["errors"]] == ["registrant"]
    assert registry.domain("example.test") is None

