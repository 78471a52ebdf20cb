"""What operators tune and watch on the embedded DNS server: `[dns.rrl]`, the TCP connection
limits, and the `regshield_dns_*` figures of GET /metrics, through real sockets."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import struct
import time
from collections.abc import AsyncIterator
from pathlib import Path

import dns.message
import dns.name
import dns.rcode
import httpx
import pytest
from dns_peers import LOOPBACK, build_signed_zone, running_server
from prometheus_client.parser import text_string_to_metric_families

from regshield.api.app import create_app
from regshield.config import Settings
from regshield.dns.publisher import Publisher
from regshield.dns.server import DnsServer
from regshield.dns.zonedata import ZoneTable
from regshield.errors import ConfigurationError
from regshield.server import _start_dns, _start_dns_workers
from regshield.services import Services

ZONE = build_signed_zone()
EXISTING = "www.regshield.test."


def with_config(settings: Settings, text: str) -> Settings:
    """`settings` with `text` as regshield.toml and the DNS listener on a free loopback port."""
    settings.home.mkdir(parents=True, exist_ok=True)
    (settings.home / "regshield.toml").write_text(text)
    return Settings.load(home=settings.home, database_url=settings.database_url,
                         environ={"REGSHIELD_DNS_LISTEN": "127.0.0.1:0"})


@pytest.fixture
async def serving(services: Services) -> AsyncIterator[tuple[Publisher, DnsServer]]:
    """The publisher and DNS listener as `regshield serve` starts them, the test zone served."""
    # One process: the counters read below are this process's (workers have their own).
    dns_settings = dataclasses.replace(services.settings.dns, workers=1)
    one_process = dataclasses.replace(
        services, settings=dataclasses.replace(services.settings, dns=dns_settings))
    publisher = Publisher(one_process)
    server = await _start_dns(one_process, publisher)
    assert server is not None
    assert await _start_dns_workers(one_process, publisher, server) is None
    publisher.table.put(ZONE.served)
    yield publisher, server
    services.dns_servers.remove(server)
    await server.close()
    await publisher.close()


async def metrics(services: Services) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The page of GET /metrics as a Prometheus agent on the same host reads it."""
    transport = httpx.ASGITransport(app=create_app(services), client=("127.0.0.1", 40001))
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        response = await client.get("/metrics")
    assert response.status_code == 200
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.text)
            for sample in family.samples}


def ask_udp(port: int, names: list[str], *, source: str = LOOPBACK,
            timeout: float = 0.3) -> list[dns.message.Message | None]:
    """Send each question at once from `source`, then collect what comes back by ID."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        sock.settimeout(timeout)
        for number, name in enumerate(names):
            query = dns.message.make_query(name, "A", want_dnssec=True)
            query.id = number
            sock.sendto(query.to_wire(), (LOOPBACK, port))
        answers: list[dns.message.Message | None] = [None] * len(names)
        try:
            while any(answer is None for answer in answers):
                response = dns.message.from_wire(sock.recv(65535))
                answers[response.id] = response
        except TimeoutError:
            pass
    return answers


def ask_tcp(port: int, name: str, *, source: str = LOOPBACK) -> dns.message.Message:
    with socket.create_connection((LOOPBACK, port), timeout=3,
                                  source_address=(source, 0)) as sock:
        wire = dns.message.make_query(name, "A").to_wire()
        sock.sendall(struct.pack("!H", len(wire)) + wire)
        size = struct.unpack("!H", receive(sock, 2))[0]
        return dns.message.from_wire(receive(sock, size))


def receive(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("closed by the server")
        data += chunk
    return data


# -- [dns.rrl] -------------------------------------------------------------------------------


def test_the_rrl_table_is_read_with_its_defaults(tmp_path: Path) -> None:
    (tmp_path / "regshield.toml").write_text(
        '[dns.rrl]\nresponses_per_second = 50\nslip = 0\nwindow = 5\n'
        'exempt_networks = ["192.0.2.0/24", "2001:db8::/32"]\n')
    rrl = Settings.load(home=tmp_path, environ={}).dns.rrl
    assert (rrl.enabled, rrl.responses_per_second, rrl.slip, rrl.window) == (True, 50, 0, 5)
    assert [str(network) for network in rrl.exempt_networks] == ["192.0.2.0/24",
                                                                 "2001:db8::/32"]
    (tmp_path / "regshield.toml").write_text("")
    defaults = Settings.load(home=tmp_path, environ={}).dns
    assert (defaults.rrl.enabled, defaults.rrl.responses_per_second, defaults.rrl.slip) == (
        True, 200, 2)
    assert defaults.tcp_connections_per_source == 16


@pytest.mark.parametrize(("text", "message"), [
    ("[dns.rrl]\nrate = 5\n", r"dns\.rrl: unknown settings: rate"),
    ("[dns.rrl]\nresponses_per_second = 0\n", r"dns\.rrl\.responses_per_second"),
    ("[dns.rrl]\nslip = -1\n", r"dns\.rrl\.slip"),
    ("[dns.rrl]\nwindow = 0\n", r"dns\.rrl\.window"),
    ("[dns.rrl]\nenabled = \"no\"\n", r"dns\.rrl\.enabled"),
    ("[dns.rrl]\nexempt_networks = [\"10.0.0.1/8\"]\n", r"dns\.rrl\.exempt_networks"),
    ("[dns]\nrrl = 5\n", r"dns\.rrl: expected a table"),
    ("[dns]\ntcp_connections_per_source = 0\n", r"dns\.tcp_connections_per_source"),
    ("[dns]\ntcp_clients = 3\n", r"dns: unknown settings: tcp_clients"),
])
def test_a_wrong_rrl_or_tcp_setting_is_refused_naming_it(tmp_path: Path, text: str,
                                                         message: str) -> None:
    (tmp_path / "regshield.toml").write_text(text)
    with pytest.raises(ConfigurationError, match=message):
        Settings.load(home=tmp_path, environ={})


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return with_config(settings, "[dns.rrl]\nresponses_per_second = 5\nslip = 0\n")


async def test_the_configured_rate_limits_udp_and_metrics_show_it(
    services: Services, serving: tuple[Publisher, DnsServer],
) -> None:
    _, server = serving
    answers = await asyncio.to_thread(ask_udp, server.port, [EXISTING] * 20)
    answered = [answer for answer in answers if answer is not None]
    assert len(answered) == 5  # the burst of one second at 5/s; slip 0 drops the rest
    assert all(answer.rcode() == dns.rcode.NOERROR and answer.answer for answer in answered)
    # TCP is never limited: a client told to retry there gets its answer.
    over_tcp = await asyncio.to_thread(ask_tcp, server.port, "nothing.regshield.test.")
    assert over_tcp.rcode() == dns.rcode.NXDOMAIN

    found = await metrics(services)

    assert found["regshield_dns_rrl_responses_total", (("action", "answered"),)] == 5
    assert found["regshield_dns_rrl_responses_total", (("action", "dropped"),)] == 15
    assert found["regshield_dns_rrl_responses_total", (("action", "slipped"),)] == 0
    udp = {labels: value for (name, labels), value in found.items()
           if name == "regshield_dns_queries_total" and ("transport", "udp") in labels}
    assert udp[(("rcode", "NOERROR"), ("transport", "udp"))] >= 5  # the readiness checks too
    assert udp[(("rcode", "none"), ("transport", "udp"))] == 15
    assert found["regshield_dns_queries_total",
                 (("rcode", "NXDOMAIN"), ("transport", "tcp"))] == 1
    assert found["regshield_dns_answer_cache_hits_total", ()] >= 4
    assert found["regshield_dns_answer_cache_misses_total", ()] >= 2
    assert found["regshield_dns_answer_cache_entries", ()] == server.answer_cache_size >= 2
    assert found["regshield_dns_tcp_connections_closed_total",
                 (("reason", "per_source_limit"),)] == 0


@pytest.mark.parametrize("config", [
    "[dns.rrl]\nresponses_per_second = 5\nslip = 0\nexempt_networks = [\"127.0.0.0/8\"]\n",
    "[dns.rrl]\nresponses_per_second = 5\nenabled = false\n",
])
async def test_exempt_networks_and_rrl_off_answer_every_query(
    services: Services, settings: Settings, config: str,
) -> None:
    configured = dataclasses.replace(services, settings=with_config(settings, config))
    publisher = Publisher(configured)
    publisher.table.put(ZONE.served)
    server = DnsServer(publisher.table, rrl=publisher.rate_limiter)
    await server.start(LOOPBACK, 0)
    try:
        answers = await asyncio.to_thread(ask_udp, server.port, [EXISTING] * 20)
    finally:
        await server.close()
        await publisher.close()
    assert all(answer is not None and answer.answer for answer in answers)


# -- TCP connection limits --------------------------------------------------------------------


def test_one_address_cannot_take_every_tcp_slot() -> None:
    server = DnsServer(ZoneTable([ZONE.served]))
    with running_server(server) as running:
        idle = []
        try:
            for _ in range(260):  # more than every slot (256), all idle
                idle.append(socket.create_connection((LOOPBACK, running.port), timeout=3))
            kept = wait_for_open(idle, expected=16)
            assert kept == 16
            # Another address still gets answered over TCP.
            response = ask_tcp(running.port, EXISTING, source="127.0.0.2")
            assert response.rcode() == dns.rcode.NOERROR and response.answer
            assert running.counters.tcp_closed["per_source_limit"] == 260 - 16
        finally:
            for sock in idle:
                sock.close()


def test_when_every_slot_is_taken_the_longest_idle_connection_makes_room() -> None:
    server = DnsServer(ZoneTable([ZONE.served]), max_tcp_clients=4,
                       tcp_connections_per_source=16)
    with running_server(server) as running:
        idle = []
        try:
            for _ in range(4):
                idle.append(socket.create_connection((LOOPBACK, running.port), timeout=3))
                time.sleep(0.05)  # an order of idleness: the first is the oldest
            assert wait_for_open(idle, expected=4) == 4
            response = ask_tcp(running.port, EXISTING, source="127.0.0.2")
            assert response.rcode() == dns.rcode.NOERROR and response.answer
            assert is_closed(idle[0])
            assert not any(is_closed(sock) for sock in idle[1:])
            assert running.counters.tcp_closed["idle_evicted"] == 1
        finally:
            for sock in idle:
                sock.close()


def wait_for_open(sockets: list[socket.socket], expected: int) -> int:
    """How many of `sockets` the server kept open, once it dealt with the others."""
    deadline = time.monotonic() + 5
    while True:
        kept = sum(not is_closed(sock) for sock in sockets)
        if kept <= expected or time.monotonic() > deadline:
            return kept
        time.sleep(0.05)


def is_closed(sock: socket.socket) -> bool:
    """Whether the server closed `sock` (it reads end-of-stream or a reset)."""
    sock.setblocking(False)
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except ConnectionError:
        return True
    finally:
        sock.setblocking(True)
