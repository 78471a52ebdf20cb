"""RDAP over the real application: domains registered through the API against the sandbox
registry, looked up at /rdap/ by anonymous, staff and disclosed requesters."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from conftest import Identity, World
from contact_samples import contact_body
from domains.conftest import Holder, Registry, holder, registry  # noqa: F401
from domains.test_lifecycle import register
from sqlalchemy import select

from regshield.flows.registrar import RegistrarUpdate
from regshield.services import Services
from regshield.store.models import Domain

IANA_ID = 9995
ABUSE_EMAIL = "abuse@registrar.example"
ABUSE_PHONE = "+49 30 1234000"
TECH = {"name": "Tom Tech", "organization": "Ops Ltd", "email": "tom@ops.example",
        "phone": "+44 20 79460000", "street": ["1 Hosting Way"], "city": "London",
        "postal_code": "SW1A 1AA", "country": "gb"}


@dataclass
class Published:
    """A registered domain with a registrant and a tech contact, and a staff member."""

    name: str
    holder: Holder
    tech: str
    staff: Identity


async def set_domain(services: Services, name: str, **values: Any) -> None:
    """Change stored columns of a domain directly (for states no API reaches in a test)."""
    async with services.store.write() as session:
        domain = (await session.execute(select(Domain).where(Domain.name == name))).scalar_one()
        for key, value in values.items():
            setattr(domain, key, value)


@pytest.fixture
async def published(api: httpx.AsyncClient, holder: Holder,  # noqa: F811
                    registry: Registry, world: World) -> Published:  # noqa: F811
    await world.flow(RegistrarUpdate("Shield Registrar GmbH", IANA_ID, ABUSE_EMAIL,
                                     ABUSE_PHONE))
    tech = await api.post("/api/v1/contacts", headers=holder.headers,
                          json=contact_body(**TECH))
    assert tech.status_code == 201, tech.text
    response = await register(api, holder, tech=tech.json()["handle"])
    assert response.status_code == 201, response.text
    staff = await world.user("support")
    return Published("example.test", holder, tech.json()["handle"], staff)
