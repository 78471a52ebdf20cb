"""The sandbox registry under a flood, through raw TLS sockets: an announced frame length past
the limit is refused from its header alone, connections are capped per source address and in
total (another address is still served), and a session that never logs in is closed."""

from __future__ import annotations

import asyncio
import ssl
import struct
from pathlib import Path

from registry.sandbox.test_server import Client, running_sandbox
from regshield.registry.codec import ResultCode
from regshield.registry.commands import DomainCheck
from regshield.registry.responses import parse_greeting, parse_response
from regshield.registry.sandbox.server import SandboxServer


async def tls_client(server: SandboxServer, source: str = "127.0.0.1") -> Client:
    """A TLS connection from `source`, greeted."""
    context = ssl.create_default_context(cafile=str(server.certificate))
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", server.port, ssl=context, server_hostname="localhost",
        local_addr=(source, 0))
    client = Client(reader, writer)
    parse_greeting(await client.receive())
    return client


async def refused(server: SandboxServer, source: str) -> bool:
    """Whether a connection from `source` is closed before it is greeted."""
    try:
        client = await tls_client(server, source)
    except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
        return True
    await client.close()
    return False


async def test_an_oversized_frame_length_is_refused_from_its_header_alone(
        tmp_path: Path) -> None:
    async with running_sandbox(tmp_path, max_frame_bytes=64 * 1024) as box:
        for announced in (64 * 1024 + 1, 0xFFFFFFFF):
            client = await tls_client(box.server)
            # Only the header: an answer now shows that the server did not wait for (or
            # make room for) the body it announces.
            client.writer.write(struct.pack(">I", announced))
            last = parse_response(await client.receive())
            assert last.code == ResultCode.COMMAND_FAILED_CLOSING
            assert "exceeds the limit of 65536 bytes" in last.message
            assert await client.closed()
            await client.close()
        again = await box.session()
        assert (await again.send(DomainCheck(("alive.test",)))).code == ResultCode.COMPLETED
        assert box.server.refused == {("sandbox", "frame"): 2}  # for GET /metrics


async def test_one_source_holds_at_most_its_share_while_another_is_served(
        tmp_path: Path) -> None:
    async with running_sandbox(tmp_path, connections_per_source=2) as box:
        held = [await tls_client(box.server) for _ in range(2)]
        try:
            assert await refused(box.server, "127.0.0.1")
            assert box.server.refused == {("sandbox", "per_source"): 1}
            other = await tls_client(box.server, "127.0.0.2")
            await other.close()
            await held[0].close()
            await asyncio.sleep(0.1)  # the server sees the hang-up
            assert not await refused(box.server, "127.0.0.1")
        finally:
            for client in held:
                await client.close()


async def test_connections_are_capped_in_total(tmp_path: Path) -> None:
    async with running_sandbox(tmp_path, max_connections=3) as box:
        held = [await tls_client(box.server, f"127.0.0.{n}") for n in (1, 2, 3)]
        try:
            assert await refused(box.server, "127.0.0.4")
            assert box.server.refused == {("sandbox", "no_slot"): 1}
        finally:
            for client in held:
                await client.close()


async def test_a_session_that_does_not_log_in_in_time_is_closed(tmp_path: Path) -> None:
    async with running_sandbox(tmp_path, login_timeout=0.3) as box:
        client = await tls_client(box.server)
        last = parse_response(await client.receive())
        assert last.code == ResultCode.COMMAND_FAILED_CLOSING
        assert "no login" in last.message
        assert await client.closed()
        await client.close()
        assert box.server.refused == {("sandbox", "login_timeout"): 1}
        # A session that logs in is held to the idle timeout instead.
        session = await box.session()
        await asyncio.sleep(0.5)
        assert (await session.send(DomainCheck(("alive.test",)))).code == \
            ResultCode.COMPLETED
