"""Clients behind a reverse proxy (api/forwarded.py, `[http] trusted_proxies`): the address a
trusted proxy forwards is the client for every per-source rule, through a real listener; a
client that writes X-Forwarded-For itself, directly or through the proxy, changes nothing."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import uvicorn_listening

from regshield.api.forwarded import forwarded_client
from regshield.config import Listen, Settings
from regshield.errors import ConfigurationError
from regshield.server import http_config
from regshield.services import Services

PROXIES = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("2001:db8:f::/48"))


def xff(*values: str) -> list[tuple[bytes, bytes]]:
    return [(b"host", b"rdap.test"), *((b"x-forwarded-for", value.encode()) for value in values)]


@pytest.mark.parametrize(("peer", "headers", "client"), [
    # Not a proxy: the header is the client's own words.
    ("198.51.100.7", xff("127.0.0.1"), "198.51.100.7"),
    # The proxy forwards what it saw.
    ("10.0.0.2", xff("203.0.113.9"), "203.0.113.9"),
    # A client's own header comes first: the proxy's entry, rightmost, is believed.
    ("10.0.0.2", xff("127.0.0.1, 192.0.2.66, 203.0.113.9"), "203.0.113.9"),
    ("10.0.0.2", xff("127.0.0.1", "203.0.113.9"), "203.0.113.9"),
    # Two proxies in a row.
    ("10.0.0.2", xff("6.6.6.6, 203.0.113.9, 10.1.2.3"), "203.0.113.9"),
    # Proxies all the way: the leftmost.
    ("10.0.0.2", xff("10.9.9.9, 10.1.2.3"), "10.9.9.9"),
    # Garbage stops the walk at the last address read.
    ("10.0.0.2", xff("203.0.113.9, not-an-address, 10.1.2.3"), "10.1.2.3"),
    ("10.0.0.2", xff("unknown"), "10.0.0.2"),
    # No header: the proxy itself.
    ("10.0.0.2", xff(), "10.0.0.2"),
    # Ports and brackets as some proxies write them; IPv6; IPv4-mapped.
    ("10.0.0.2", xff("203.0.113.9:51000"), "203.0.113.9"),
    ("2001:db8:f::1", xff("[2001:db8:1::7]:443"), "2001:db8:1::7"),
    ("::ffff:10.0.0.2", xff("::ffff:203.0.113.9"), "203.0.113.9"),
])
def test_the_client_is_the_first_address_left_of_the_trusted_proxies(
        peer: str, headers: list[tuple[bytes, bytes]], client: str) -> None:
    assert forwarded_client(peer, headers, PROXIES) == client


def test_without_trusted_proxies_the_header_is_never_read() -> None:
    assert forwarded_client("10.0.0.2", xff("203.0.113.9"), ()) == "10.0.0.2"


def test_a_long_chain_is_read_only_from_its_right_end() -> None:
    chain = ", ".join(["203.0.113.1"] + ["10.0.0.9"] * 40)
    # Past MAX_HOPS trusted entries the walk stops at a proxy, never at the client's claim.
    assert forwarded_client("10.0.0.2", xff(chain), PROXIES) == "10.0.0.9"


def test_the_setting_is_read_from_the_file_and_the_environment(tmp_path: Path) -> None:
    settings = Settings.load(home=tmp_path, environ={
        "REGSHIELD_HTTP_TRUSTED_PROXIES": "10.0.0.0/8, 2001:db8:f::/48"})
    assert settings.http_trusted_proxies == PROXIES
    (tmp_path / "regshield.toml").write_text('[http]\ntrusted_proxies = ["10.0.0.0/8"]\n')
    assert Settings.load(home=tmp_path, environ={}).http_trusted_proxies == PROXIES[:1]
    with pytest.raises(ConfigurationError, match=r"http\.trusted_proxies.*10\.0\.0\.1/8"):
        Settings.load(home=tmp_path, environ={"REGSHIELD_HTTP_TRUSTED_PROXIES": "10.0.0.1/8"})


@pytest.fixture
async def listening(services: Services) -> AsyncIterator[Callable[[str], Awaitable[int]]]:
    """Start a real listener on 127.0.0.1 trusting `proxies` (comma-separated), with an RDAP
    limit of two at once and a cap of two connections per source."""
    async with contextlib.AsyncExitStack() as stack:

        async def start(proxies: str) -> int:
            settings = services.settings
            trusted = tuple(ipaddress.ip_network(text) for text in proxies.split(",") if text)
            configured = replace(services, _limits=None, settings=replace(
                settings, http_trusted_proxies=trusted,
                rdds=replace(settings.rdds, burst=2, per_minute=1),
                limits=replace(settings.limits, store="process",
                               http_connections_per_source=2)))
            stack.push_async_callback(configured.limits.close)
            return await stack.enter_async_context(
                uvicorn_listening(http_config(configured, Listen("127.0.0.1", 0))))

        yield start


async def get(port: int, path: str, forwarded: str | None = None) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = f"GET {path} HTTP/1.1\r\nHost: rdap.test\r\nConnection: close\r\n"
    if forwarded is not None:
        head += f"X-Forwarded-For: {forwarded}\r\n"
    writer.write(head.encode() + b"\r\n")
    status = int((await asyncio.wait_for(reader.readline(), 10)).split()[1])
    await asyncio.wait_for(reader.read(), 10)
    writer.close()
    return status


async def test_each_client_behind_a_trusted_proxy_has_its_own_limit(
        listening: Callable[[str], Awaitable[int]]) -> None:
    port = await listening("127.0.0.0/8")

    first = [await get(port, "/rdap/help", "203.0.113.1") for _ in range(3)]
    other = [await get(port, "/rdap/help", "203.0.113.2") for _ in range(2)]
    # A client naming someone else in its own header is still itself.
    forged = await get(port, "/rdap/help", "203.0.113.2, 203.0.113.1")

    assert first == [200, 200, 429]
    assert other == [200, 200]
    assert forged == 429


async def test_a_forged_header_from_an_untrusted_peer_is_ignored(
        listening: Callable[[str], Awaitable[int]]) -> None:
    port = await listening("10.0.0.0/8")  # this test's connections come from 127.0.0.1

    statuses = [await get(port, "/rdap/help", f"203.0.113.{i}") for i in range(3)]

    assert statuses == [200, 200, 429]  # one bucket: the peer's


async def test_metrics_are_not_the_local_hosts_for_a_client_behind_a_local_proxy(
        listening: Callable[[str], Awaitable[int]]) -> None:
    """A proxy on the same host forwards internet traffic from 127.0.0.1: /metrics, open to
    the local host, must see the forwarded client, not the proxy."""
    port = await listening("127.0.0.0/8")

    assert await get(port, "/metrics") == 200  # the proxy host itself
    assert await get(port, "/metrics", "203.0.113.1") in (401, 403)


async def test_connections_from_a_trusted_proxy_are_not_capped_per_source(
        listening: Callable[[str], Awaitable[int]]) -> None:
    for proxies, held_open in (("127.0.0.0/8", 5), ("10.0.0.0/8", 2)):
        port = await listening(proxies)
        connections = [await asyncio.open_connection("127.0.0.1", port) for _ in range(5)]
        await asyncio.sleep(0.2)
        open_ = 0
        for reader, writer in connections:
            writer.write(b"GET /rdap/help HTTP/1.1\r\nHost: rdap.test\r\n\r\n")
            try:
                line = await asyncio.wait_for(reader.readline(), 5)
            except (ConnectionError, TimeoutError):
                line = b""
            open_ += line.startswith(b"HTTP/1.1")
            writer.close()
        assert open_ == held_open, proxies
