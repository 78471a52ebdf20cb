"""Unbounded input is refused before it costs anything: a body over 1 MiB is answered 413
before it is read (the zone import has a limit of its own), and no integer query parameter
reaches the store as a number it cannot hold."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import replace

import httpx
import pytest
import uvicorn
from conftest import World
from fastapi.routing import APIRoute, iter_route_contexts

from regshield.api.app import API_PREFIX, create_app
from regshield.api.body_limit import DEFAULT_MAX_BODY_BYTES
from regshield.config import MIB
from regshield.services import Services

HUGE = 300 * MIB
CHUNK = 64 * 1024
SEND_AT_MOST = 64 * MIB
TIMEOUT = 10.0


@pytest.fixture
async def listening(services: Services) -> AsyncIterator[int]:
    """The real application under uvicorn, on a loopback port of its own."""
    server = uvicorn.Server(uvicorn.Config(
        create_app(services), host="127.0.0.1", port=0, log_config=None, access_log=False,
        lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "uvicorn did not start"
        await asyncio.sleep(0.02)
    yield int(server.servers[0].sockets[0].getsockname()[1])
    server.should_exit = True
    await asyncio.wait_for(task, TIMEOUT)


class Connection:
    """A raw client connection that keeps every byte the server sent, even when the server
    resets the connection after answering (it does not read a body it refused)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.received = b""
        self.sent = 0

    @classmethod
    async def open(cls, port: int) -> Connection:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        return cls(sock)

    async def send(self, data: bytes) -> None:
        await asyncio.get_running_loop().sock_sendall(self.sock, data)
        self.sent += len(data)

    async def answer(self) -> tuple[int, dict[str, str], bytes]:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(TIMEOUT):
            while True:
                head, found, rest = self.received.partition(b"\r\n\r\n")
                if found:
                    status_line, *lines = head.decode("latin-1").split("\r\n")
                    headers = {k.lower(): v.strip() for k, _, v in
                               (line.partition(":") for line in lines if line)}
                    if len(rest) >= int(headers["content-length"]):
                        return int(status_line.split()[1]), headers, rest
                try:
                    chunk = await loop.sock_recv(self.sock, 65536)
                except ConnectionError:
                    chunk = b""
                if not chunk:
                    pytest.fail(f"the connection ended after {self.received[:300]!r}")
                self.received += chunk

    def close(self) -> None:
        self.sock.close()


def _request_head(path: str, framing: str) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"{framing}\r\n\r\n").encode()


def _refused_as_too_large(status: int, headers: dict[str, str], body: bytes) -> None:
    assert status == 413
    assert headers["content-type"] == "application/problem+json"
    problem = json.loads(body)
    assert problem["type"].endswith("body-too-large") and problem["status"] == 413
    assert problem["max_bytes"] == DEFAULT_MAX_BODY_BYTES and headers["x-request-id"]


async def test_a_declared_300_megabyte_login_body_is_refused_before_a_byte_is_read(
        listening: int) -> None:
    connection = await Connection.open(listening)
    try:
        # Only the head goes out: the answer comes without the server waiting for the body.
        await connection.send(_request_head(f"{API_PREFIX}/auth/login",
                                            f"Content-Length: {HUGE}"))
        _refused_as_too_large(*await connection.answer())
    finally:
        connection.close()


async def test_a_chunked_body_is_cut_off_once_it_passes_one_mebibyte(listening: int) -> None:
    connection = await Connection.open(listening)

    async def stream_forever() -> None:
        """Chunks without end (the terminating chunk never comes), until the answer."""
        await connection.send(_request_head(f"{API_PREFIX}/auth/login",
                                            "Transfer-Encoding: chunked"))
        with contextlib.suppress(ConnectionError):
            while connection.sent < SEND_AT_MOST:
                await connection.send(f"{CHUNK:x}\r\n".encode() + b"{" * CHUNK + b"\r\n")

    streaming = asyncio.create_task(stream_forever())
    try:
        answer = await connection.answer()
        assert connection.sent < SEND_AT_MOST, "the server read the whole stream first"
        _refused_as_too_large(*answer)
    finally:
        streaming.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await streaming
        connection.close()


async def test_the_zone_import_has_a_limit_of_its_own(services: Services) -> None:
    services.settings = replace(services.settings, zone_import_max_bytes=4 * MIB)
    transport = httpx.ASGITransport(app=create_app(services), client=("192.0.2.10", 40000))
    zone_file = "www 300 IN A 192.0.2.1\n" * (2 * MIB // 23)
    async with httpx.AsyncClient(transport=transport, base_url="http://regshield.test") as api:
        # 2 MiB: past the general limit, within the import's (then refused for want of a token).
        imported = await api.post(f"{API_PREFIX}/zones/example.test/import",
                                  json={"zone_file": zone_file})
        assert imported.status_code == 401, imported.text
        elsewhere = await api.post(f"{API_PREFIX}/contacts", json={"name": zone_file})
        assert elsewhere.status_code == 413
        assert elsewhere.json()["max_bytes"] == DEFAULT_MAX_BODY_BYTES
        too_big = await api.post(f"{API_PREFIX}/zones/example.test/import",
                                 json={"zone_file": zone_file * 2})
        assert too_big.status_code == 413 and too_big.json()["max_bytes"] == 4 * MIB


async def test_events_after_a_number_beyond_any_sequence_is_a_problem_naming_it(
        api: httpx.AsyncClient, world: World) -> None:
    auditor = await world.user("auditor")
    answer = await api.get(f"{API_PREFIX}/events", params={"after": str(2**64)},
                           headers=auditor.headers)
    assert answer.status_code == 422
    assert [error["field"] for error in answer.json()["errors"]] == ["after"]


async def test_no_integer_query_parameter_answers_500(
        api: httpx.AsyncClient, services: Services, world: World) -> None:
    admin = await world.user("admin")
    checked = 0
    for context in iter_route_contexts(create_app(services).routes):
        route, path = context.original_route, context.path
        if not (isinstance(route, APIRoute) and path and path.startswith(API_PREFIX)):
            continue
        for parameter in route.dependant.query_params:
            if parameter.field_info.annotation is not int:
                continue
            url = path.replace("{name}", "example.test")
            for value in (2**64, -(2**64), 2**63):
                answer = await api.request(sorted(context.methods or {"GET"})[0], url,
                                           params={parameter.alias: str(value)},
                                           headers=admin.headers)
                assert answer.status_code == 422, f"{path}?{parameter.alias}={value}: " \
                                                  f"{answer.status_code} {answer.text[:200]}"
                fields = [e["field"] for e in answer.json()["errors"]]
                assert parameter.alias in fields, (path, fields)
            checked += 1
    assert checked >= 6
