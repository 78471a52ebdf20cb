"""The notices reuse the domain tests' sandbox registry and account holder, and the notify
tests' SMTP server."""

from collections.abc import AsyncIterator

import httpx
import pytest
from domains.conftest import holder, registry
from notify.conftest import smtp_server

from regshield.api.app import API_PREFIX, create_app
from regshield.api.routers import notices
from regshield.services import Services

__all__ = ["holder", "notices_api", "registry", "smtp_server"]


@pytest.fixture
async def notices_api(services: Services) -> AsyncIterator[httpx.AsyncClient]:
    """The API with the notices router, mounting it when the application does not yet."""
    app = create_app(services)
    paths = {getattr(route, "path", None) for route in app.routes}
    if f"{API_PREFIX}/domains/{{name}}/notices" not in paths:
        app.include_router(notices.router, prefix=API_PREFIX)
    transport = httpx.ASGITransport(app=app, client=("192.0.2.10", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://regshield.test") as client:
        yield client
