"""A domain this registrar sponsors (registered through the sandbox registry), a requester
signed in as a customer of another account, and a compliance officer who decides."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import pytest
from conftest import Identity, World
from domains.conftest import Holder, Registry, holder, registry
from domains.test_lifecycle import register

__all__ = ["holder", "registry"]

DOMAIN = "example.test"


@dataclass(frozen=True)
class Parties:
    holder: Holder
    requester: Identity
    officer: Identity
    domain: str = DOMAIN


@pytest.fixture
async def parties(api: httpx.AsyncClient, world: World, holder: Holder,
                  registry: Registry) -> Parties:
    registered = await register(api, holder, DOMAIN)
    assert registered.status_code == 201, registered.text
    requester = await world.user("member", await world.account())
    officer = await world.user("compliance")
    return Parties(holder, requester, officer)
