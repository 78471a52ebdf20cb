"""An independent RDAP client from PyPI (whoisit) reads regshield's RDAP over real HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import httpx
import pytest
import uvicorn
import whoisit

from rdap.conftest import ABUSE_EMAIL, IANA_ID, Published
from regshield.api.app import create_app
from regshield.services import Services

NOWHERE = "https://rdap.invalid/"  # the bootstrap's other registries, never asked


class QuietServer(uvicorn.Server):
    """uvicorn without its signal handlers: the test stops it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@pytest.fixture
async def rdap_url(services: Services) -> AsyncIterator[str]:
    """regshield's HTTP application served by uvicorn on a loopback port; its RDAP base."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    config = uvicorn.Config(create_app(services), log_config=None, access_log=False,
                            lifespan="off", server_header=False)
    server = QuietServer(config)
    task = asyncio.create_task(server.serve(sockets=[listener]))
    for _ in range(200):
        if server.started:
            break
        await asyncio.sleep(0.02)
    assert server.started
    yield f"http://127.0.0.1:{port}/rdap/"
    server.should_exit = True
    await asyncio.wait_for(task, timeout=10)
    listener.close()


@pytest.fixture
def bootstrapped(rdap_url: str) -> Iterator[None]:
    """whoisit's IANA bootstrap (RFC 9224), naming this server for the TLD `test`."""
    data = {
        "timestamp": int(time.time()),
        "dns": {"services": [[["test"], [rdap_url]]]},
        "asn": {"services": [[["64496-64511"], [NOWHERE]]]},
        "ipv4": {"services": [[["192.0.2.0/24"], [NOWHERE]]]},
        "ipv6": {"services": [[["2001:db8::/32"], [NOWHERE]]]},
        "object": {"services": [[["regshield"], ["RS"], [NOWHERE]]]},
    }
    whoisit.clear_bootstrapping()
    whoisit.load_bootstrap_data(json.dumps(data), allow_insecure=True)
    yield
    whoisit.clear_bootstrapping()


async def test_whoisit_parses_a_domain_lookup(published: Published, bootstrapped: None
                                              ) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        parsed = await whoisit.domain_async("example.test", async_client=client,
                                            allow_insecure_ssl=True)

    assert parsed["name"] == "example.test"
    assert sorted(parsed["status"]) == ["client delete prohibited",
                                        "client transfer prohibited"]
    assert parsed["nameservers"] == ["ns1.example.net", "ns2.example.net"]
    assert parsed["dnssec"] is False
    assert parsed["registration_date"] == datetime(2026, 11, 27, 12, 1, tzinfo=UTC)
    assert parsed["expiration_date"].date().isoformat() == "2028-11-27"
    (registrar,) = parsed["entities"]["registrar"]
    assert registrar["name"] == "Shield Registrar GmbH"
    assert registrar["handle"] == str(IANA_ID)
    (abuse,) = parsed["entities"]["abuse"]
    assert abuse["email"] == ABUSE_EMAIL
    (registrant,) = parsed["entities"]["registrant"]
    assert registrant.get("name", "") == "" and "Jane" not in json.dumps(registrant)
    assert {n["title"] for n in parsed["notices"]} >= {"Status Codes",
                                                      "RDDS Inaccuracy Complaint Form"}


async def test_whoisit_reports_an_unknown_domain_as_not_found(
        published: Published, bootstrapped: None) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        with pytest.raises(whoisit.errors.ResourceDoesNotExist):
            await whoisit.domain_async("unknown.test", async_client=client,
                                       allow_insecure_ssl=True)


async def test_over_real_http_traversal_is_refused_and_head_has_no_body(
        published: Published, rdap_url: str) -> None:
    async with httpx.AsyncClient(base_url=rdap_url.removesuffix("/rdap/"), timeout=10) as http:
        for path in ("/rdap/domain/..%2f..", "/rdap/domain/..%2F..%2Fapi%2Fv1%2Fcontacts",
                     "/rdap/domain/%2e%2e%2f%2e%2e", "/rdap/domain/a%2fb.test",
                     "/rdap/entity/..%5c..", "/rdap/domain/%C0%AE%C0%AE.test"):
            response = await http.get(path)
            assert response.status_code in (400, 404), (path, response.text)
            assert response.headers["content-type"] == "application/rdap+json"
            assert response.json()["errorCode"] == response.status_code
        got = await http.get("/rdap/domain/example.test")
        head = await http.head("/rdap/domain/example.test")
    assert got.status_code == head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == got.headers["content-length"] != "0"
