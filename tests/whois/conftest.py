"""A domain registered through the sandbox registry, and a WHOIS server on loopback over it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from contact_samples import contact_body
from domains.conftest import Holder, Registry, holder, registry  # noqa: F401
from domains.test_lifecycle import register
from notify.conftest import smtp_server  # noqa: F401

from regshield.rdds.whois import WhoisServer
from regshield.services import Services

DOMAIN = "example.test"
# The registrant of DOMAIN: every value but the state and the country is personal data that
# anonymous WHOIS and the relay must never show.
REGISTRANT = contact_body(name="Jane Registrant", organization="Registrant Holding GmbH",
                          email="jane.registrant@example.net", phone="+49 30 98765432",
                          street=["Invalidenstrasse 116", "Hinterhaus"], city="Potsdam",
                          postal_code="14467", state="BB", country="de")


@pytest.fixture
async def registered(api: httpx.AsyncClient, holder: Holder,  # noqa: F811
                     registry: Registry) -> str:  # noqa: F811
    """DOMAIN, registered at the sandbox registry with REGISTRANT as its registrant and the
    holder's own contact as its technical contact."""
    created = await api.post("/api/v1/contacts", headers=holder.headers, json=REGISTRANT)
    assert created.status_code == 201, created.text
    response = await register(api, holder, DOMAIN, registrant=created.json()["handle"],
                              tech=holder.contact)
    assert response.status_code == 201, response.text
    return DOMAIN


@pytest.fixture
async def whois_server(services: Services) -> AsyncIterator[WhoisServer]:
    server = WhoisServer(services)
    await server.start("127.0.0.1", 0)
    yield server
    await server.close()
