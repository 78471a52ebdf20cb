"""`regshield serve`: one process that sets up a new data directory, says where it listens, answers
over real TCP, and stops cleanly on a signal."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import stat
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import dns.asyncquery
import dns.exception
import dns.message
import dns.name
import dns.rdatatype
import httpx
import pytest
from conftest import PASSWORD

from regshield.server import INSTANCE_LOCK
from regshield.store.engine import Store

REGSHIELD = str(Path(sys.executable).with_name("regshield"))
STARTUP_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


DNS_PORT = free_port()


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("REGSHIELD_")}


@dataclass
class Server:
    process: asyncio.subprocess.Process
    home: Path
    port: int
    announced: list[str] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def wait_until_listening(self, last: str = "HTTP API") -> None:
        assert self.process.stdout is not None
        while not any(last in line for line in self.announced):
            line = await asyncio.wait_for(self.process.stdout.readline(), STARTUP_TIMEOUT)
            if not line:
                stderr = await self.process.stderr.read() if self.process.stderr else b""
                pytest.fail(f"serve exited early: {stderr.decode()[-2000:]}")
            self.announced.append(line.decode().rstrip("\n"))


@pytest.fixture
async def server(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Server]:
    """`regshield serve` on a fresh home; a test may add environment (indirect parameter)."""
    home, port = tmp_path / "fresh-home", free_port()
    sandbox_port = free_port()
    process = await asyncio.create_subprocess_exec(
        REGSHIELD, "--home", str(home), "serve", "--http", f"127.0.0.1:{port}",
        "--dns", f"127.0.0.1:{DNS_PORT}",
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, start_new_session=True,
        env={**clean_env(), "REGSHIELD_SANDBOX_LISTEN": f"127.0.0.1:{sandbox_port}",
             "REGSHIELD_SANDBOX_DNS_LISTEN": f"127.0.0.1:{free_port()}",
             **getattr(request, "param", {})},
    )
    running = Server(process, home, port)
    try:
        yield running
    finally:
        if process.returncode is None:  # the test failed before stopping it: leave nothing
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()


async def cli(home: Path, *args: str, stdin: str = "",
              env: dict[str, str] | None = None) -> tuple[int, str, str]:
    # A serve started here runs its sandbox registry on a free port, not the default 7700.
    environment = {**clean_env(), "REGSHIELD_SANDBOX_LISTEN": f"127.0.0.1:{free_port()}",
                   "REGSHIELD_DNS_LISTEN": "off", "REGSHIELD_SANDBOX_DNS_LISTEN": "off",
                   **(env or {})}
    process = await asyncio.create_subprocess_exec(
        REGSHIELD, "--home", str(home), *args, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=environment,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(stdin.encode()), 120)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


async def answered(name: dns.name.Name, port: int) -> dns.message.Message:
    """The DNS answer for `name` once the outbox has published it (it runs every second)."""
    query = dns.message.make_query(name, dns.rdatatype.A, want_dnssec=True)
    for _ in range(100):
        response = await dns.asyncquery.udp(query, "127.0.0.1", port=port, timeout=2)
        if response.answer:
            return response
        await asyncio.sleep(0.1)
    pytest.fail(f"{name} was not served within 10 s")


def port_is_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


async def test_serve_initializes_announces_answers_over_tcp_and_stops_on_a_signal(
        server: Server) -> None:
    assert not server.home.exists()

    await server.wait_until_listening()

    announced = "\n".join(server.announced)
    assert f"initialized {server.home}" in announced
    assert f"{server.base}/api/v1" in announced
    assert f"{server.base}/api/v1/openapi.json" in announced
    assert stat.S_IMODE(server.home.stat().st_mode) == 0o700
    assert (server.home / "keys" / "master.json").exists()
    assert (server.home / "regshield.db").exists()

    async with httpx.AsyncClient(base_url=server.base, timeout=10) as http:
        document = await http.get("/api/v1/openapi.json")
        assert document.status_code == 200
        assert "/api/v1/auth/login" in document.json()["paths"]

        code, out, err = await cli(server.home, "user", "create", "root@example.net",
                                   "--role", "admin", "--password-stdin",
                                   stdin=PASSWORD + "\n")
        assert code == 0, err
        assert "role admin" in out

        login = await http.post("/api/v1/auth/login",
                                json={"email": "root@example.net", "password": PASSWORD})
        assert login.status_code == 200, login.text
        token = login.json()["token"]
        me = await http.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200
        assert me.json()["email"] == "root@example.net"
        # The built-in sandbox registry runs and regshield is linked to it.
        await server.wait_until_listening("registry   sandbox")
        assert any("sandbox registry  EPP over TLS" in line for line in server.announced)
        available = await http.get("/api/v1/availability", params={"name": "example.test"},
                                   headers={"Authorization": f"Bearer {token}"})
        assert available.status_code == 200, available.text
        assert available.json() == [{"name": "example.test", "available": True,
                                     "reason": None}]
        # A hosted zone is signed and answered by the embedded DNS server.
        staff = {"Authorization": f"Bearer {token}"}
        account = await http.post("/api/v1/accounts", json={"name": "Zone Holder"},
                                  headers=staff)
        assert account.status_code == 201, account.text
        zone = await http.post("/api/v1/zones", headers=staff, json={
            "name": "served.example", "account": account.json()["account_id"]})
        assert zone.status_code == 201, zone.text
        record = await http.put("/api/v1/zones/served.example/rrsets/www/A", headers=staff,
                                json={"ttl": 300, "records": ["192.0.2.80"]})
        assert record.status_code == 200, record.text
        await server.wait_until_listening("DNS")
        answer = await answered(dns.name.from_text("www.served.example."), DNS_PORT)
        assert [r.to_text() for r in answer.answer[0]] == ["192.0.2.80"]
        assert answer.answer[1].rdtype == dns.rdatatype.RRSIG
        wrong = await http.post("/api/v1/auth/login",
                                json={"email": "root@example.net", "password": "not it at all"})
        assert wrong.status_code == 401

    server.process.send_signal(signal.SIGINT)
    await asyncio.wait_for(server.process.wait(), timeout=20)

    assert server.process.returncode == 0, server.process.returncode
    assert server.process.stderr is not None
    stderr = (await server.process.stderr.read()).decode()
    assert "Traceback" not in stderr
    assert "Warning: " not in stderr, stderr[:2000]  # structured logs only, no Python warning
    assert not port_is_open(server.port)
    with pytest.raises(ProcessLookupError):
        os.killpg(server.process.pid, 0)  # nothing of its session is left running


async def test_serve_refuses_a_listen_address_that_is_taken(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, out, err = await cli(tmp_path / "home", "serve", "--http", f"127.0.0.1:{port}")

    assert code != 0
    assert "Traceback" not in err
    assert "listen" in err
    assert "regshield is running" not in out


async def test_a_second_serve_on_the_same_sqlite_database_is_refused(server: Server) -> None:
    """Two would each take the other's leases for a dead process's and run the same work
    twice. The first keeps running; once it is killed, the database is free at once."""
    await server.wait_until_listening()
    code, out, err = await cli(server.home, "serve", "--http", f"127.0.0.1:{free_port()}")
    assert code != 0
    assert "another `regshield serve` is running on this database" in err, err
    assert "Traceback" not in err and "regshield is running" not in out
    async with httpx.AsyncClient(base_url=server.base, timeout=10) as http:
        assert (await http.get("/api/v1/openapi.json")).status_code == 200

    os.killpg(server.process.pid, signal.SIGKILL)
    await server.process.wait()
    store = Store(f"sqlite+aiosqlite:///{server.home / 'regshield.db'}")
    try:
        async with store.exclusive(INSTANCE_LOCK) as free:
            assert free
        # The killed processes' locks of life are left; the next `serve` sweeps them.
        assert store.sweep_locks() >= 1
    finally:
        await store.close()
    assert not list((server.home / "regshield.db.locks").iterdir())


async def test_serve_stops_on_sigterm_from_a_service_manager(server: Server) -> None:
    await server.wait_until_listening()
    assert port_is_open(server.port)

    server.process.send_signal(signal.SIGTERM)
    await asyncio.wait_for(server.process.wait(), timeout=20)

    assert server.process.returncode == 0, server.process.returncode
    assert server.process.stderr is not None
    assert "Traceback" not in (await server.process.stderr.read()).decode()
    assert not port_is_open(server.port)


def children_of(pid: int) -> dict[int, str]:
    """The processes whose parent is `pid`, with their command lines."""
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat_fields = (entry / "stat").read_text().rpartition(")")[2].split()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(stat_fields[1]) == pid and stat_fields[0] not in ("Z", "X"):
            found[int(entry.name)] = command
    return found


def exited(pid: int) -> bool:
    """Gone, or a zombie waiting for whoever inherited it to reap it."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")


async def addresses_seen(name: dns.name.Name, queries: int, wait: float) -> list[list[str] | None]:
    """Ask for `name` from `queries` sockets (source ports) at once: each answer's addresses,
    None where no answer came within `wait` seconds."""
    async def one() -> list[str] | None:
        query = dns.message.make_query(name, dns.rdatatype.A)
        try:
            response = await dns.asyncquery.udp(query, "127.0.0.1", port=DNS_PORT,
                                                timeout=wait)
        except dns.exception.Timeout:
            return None
        return sorted(r.to_text() for rrset in response.answer
                      if rrset.rdtype == dns.rdatatype.A for r in rrset)
    return list(await asyncio.gather(*(one() for _ in range(queries))))


async def host_zone(server: Server, http: httpx.AsyncClient) -> dict[str, str]:
    """A staff user, an account and the zone served.example with www; the staff headers."""
    code, _, err = await cli(server.home, "user", "create", "root@example.net", "--role",
                             "admin", "--password-stdin", stdin=PASSWORD + "\n")
    assert code == 0, err
    login = await http.post("/api/v1/auth/login",
                            json={"email": "root@example.net", "password": PASSWORD})
    assert login.status_code == 200, login.text
    staff = {"Authorization": f"Bearer {login.json()['token']}"}
    account = await http.post("/api/v1/accounts", json={"name": "Zone Holder"}, headers=staff)
    assert account.status_code == 201, account.text
    zone = await http.post("/api/v1/zones", headers=staff, json={
        "name": "served.example", "account": account.json()["account_id"]})
    assert zone.status_code == 201, zone.text
    return staff


@pytest.mark.parametrize("server", [{"REGSHIELD_DNS_WORKERS": "2"}], indirect=True)
async def test_serve_answers_dns_in_every_worker_and_leaves_none_behind_when_killed(
        server: Server) -> None:
    await server.wait_until_listening("UDP and TCP")
    assert any("2 processes" in line for line in server.announced if "UDP and TCP" in line)
    everything = children_of(server.process.pid)
    workers = [pid for pid, command in everything.items() if "regshield.dns.workers" in command]
    assert len(workers) == 1, everything
    www = dns.name.from_text("www.served.example.")

    async with httpx.AsyncClient(base_url=server.base, timeout=10) as http:
        staff = await host_zone(server, http)
        for address in ("192.0.2.80", "192.0.2.81"):
            record = await http.put("/api/v1/zones/served.example/rrsets/www/A",
                                    headers=staff, json={"ttl": 300, "records": [address]})
            assert record.status_code == 200, record.text
            # Published by the main process; every process answers it within a bound.
            deadline = asyncio.get_running_loop().time() + 15
            while set(map(tuple, await addresses_seen(www, 40, 2))) != {(address,)}:
                assert asyncio.get_running_loop().time() < deadline, f"{address} not served"
                await asyncio.sleep(0.2)

    # Each process answers a share of the source ports: with one stopped, the other still
    # answers its share and only its share.
    for stopped in (server.process.pid, workers[0]):
        os.kill(stopped, signal.SIGSTOP)
        try:
            seen = await addresses_seen(www, 40, 1)
        finally:
            os.kill(stopped, signal.SIGCONT)
        assert ["192.0.2.81"] in seen, f"nobody answered while {stopped} was stopped"
        assert None in seen, f"{stopped} was stopped yet every query was answered"
        assert all(answer in (None, ["192.0.2.81"]) for answer in seen)

    server.process.kill()  # SIGKILL: the main process cleans nothing up
    await server.process.wait()
    deadline = asyncio.get_running_loop().time() + 5
    while not all(exited(pid) for pid in everything):
        assert asyncio.get_running_loop().time() < deadline, "a worker outlived serve"
        await asyncio.sleep(0.05)
