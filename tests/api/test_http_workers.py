"""`[http] workers`: `regshield serve` answering HTTP in several processes on one port, over real
sockets on loopback, with a PostgreSQL database (more than one process needs it)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import httpx
import pytest
from conftest import BACKENDS, PASSWORD, _reset_postgres
from test_serve import (
    REGSHIELD,
    Server,
    children_of,
    clean_env,
    cli,
    exited,
    free_port,
    port_is_open,
)

from regshield.api.workers import shared_socket
from regshield.config import Listen

needs_postgresql = pytest.mark.skipif("postgresql" not in BACKENDS,
                                      reason="more than one HTTP process needs PostgreSQL")
RDAP_BURST = 20
CHILD = "regshield.api.workers"


@dataclass
class Workers(Server):
    database_url: str = ""
    sandbox_port: int = 0
    dns_port: int = 0


@pytest.fixture
async def workers(tmp_path: Path, postgres_url: str,
                  request: pytest.FixtureRequest) -> AsyncIterator[Workers]:
    """`regshield serve` on PostgreSQL with `[http] workers = 2`, a small RDAP limit (a burst
    of RDAP_BURST, one more a minute), no DNS unless the test asks for it (indirect
    parameter "dns": on a free port, in its default number of processes)."""
    await _reset_postgres(postgres_url)
    home, port, sandbox_port = tmp_path / "home", free_port(), free_port()
    dns_port = free_port() if getattr(request, "param", None) == "dns" else 0
    process = await asyncio.create_subprocess_exec(
        REGSHIELD, "--home", str(home), "--database-url", postgres_url, "serve",
        "--http", f"127.0.0.1:{port}", "--dns", f"127.0.0.1:{dns_port}" if dns_port else "off",
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, start_new_session=True,
        env={**clean_env(), "REGSHIELD_HTTP_WORKERS": "2",
             "REGSHIELD_SANDBOX_LISTEN": f"127.0.0.1:{sandbox_port}",
             "REGSHIELD_SANDBOX_DNS_LISTEN": "off",
             "REGSHIELD_RDDS_BURST": str(RDAP_BURST), "REGSHIELD_RDDS_PER_MINUTE": "1",
             # Requests of one source that arrive together before a lease is held each
             # lease a tenth of the API burst (security/limits.py): out of the way here.
             "REGSHIELD_LIMITS_API_BURST": "10000000"},
    )
    running = Workers(process, home, port, database_url=postgres_url,
                      sandbox_port=sandbox_port, dns_port=dns_port)
    try:
        await running.wait_until_listening("registry   sandbox")
        yield running
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()


def http_children(server: Server) -> list[int]:
    return [pid for pid, command in children_of(server.process.pid).items()
            if CHILD in command]


async def status_of(port: int, path: str, wait: float = 5.0,
                    headers: dict[str, str] | None = None) -> int | None:
    """The status of GET `path` on a new connection (a new source port); None when no answer
    came within `wait` seconds."""
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port), wait)
    except TimeoutError:
        return None
    try:
        return await asyncio.wait_for(_ask(reader, writer, path, headers or {}), wait)
    except TimeoutError:
        return None
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _ask(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str,
               headers: dict[str, str]) -> int:
    return (await _fetch(reader, writer, path, headers))[0]


async def _fetch(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str,
                 headers: dict[str, str] | None = None) -> tuple[int, str]:
    """GET `path` on an open connection: the status and the body."""
    lines = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{lines}\r\n".encode())
    await writer.drain()
    status = int((await reader.readline()).split()[1])
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        if name.lower() == "content-length":
            length = int(value)
    return status, (await reader.readexactly(length)).decode()


def established(pid: int, port: int, *, remote: bool = False) -> int:
    """How many TCP connections `pid` holds with local port `port` (accepted by it), or with
    `port` at the other end (`remote`)."""
    inodes = set()
    for descriptor in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(descriptor)
            if target.startswith("socket:["):
                inodes.add(target[len("socket:["):-1])
    count = 0
    for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        ours = int(fields[2 if remote else 1].rpartition(":")[2], 16)
        if ours == port and fields[3] == "01" and fields[9] in inodes:  # ESTABLISHED
            count += 1
    return count


@needs_postgresql
async def test_every_process_answers_a_share_a_limit_holds_across_them_and_none_outlives_serve(
        workers: Server) -> None:
    assert any("HTTP API" in line and "2 processes" in line for line in workers.announced), \
        workers.announced
    [child] = http_children(workers)
    main = workers.process.pid
    openapi = "/api/v1/openapi.json"
    assert await status_of(workers.port, openapi) == 200

    # Both processes reach the shared store (the API's limit) before the RDAP limit is
    # counted: a first connection to the database slower than `[limits] store_timeout_ms`
    # would leave a process on its own buckets for a few seconds.
    assert [await status_of(workers.port, openapi) for _ in range(10)] == [200] * 10

    # The RDAP limit of one source holds across both processes: many connections, held open
    # at once so the kernel spreads them (both processes accept some), allow about one burst
    # in all, not one per process.
    connections = [await asyncio.open_connection("127.0.0.1", workers.port) for _ in range(50)]
    try:
        await asyncio.sleep(0.3)
        accepted = {pid: established(pid, workers.port) for pid in (main, child)}
        assert all(accepted.values()), accepted
        assert sum(accepted.values()) == len(connections), accepted
        statuses = [await asyncio.wait_for(
            _ask(reader, writer, "/rdap/domain/nothing-here.test", {}), 10)
            for reader, writer in connections]
    finally:
        for _, writer in connections:
            writer.close()
    allowed = statuses.count(404)
    assert set(statuses) == {404, 429}, statuses
    # A process may be refused up to a lease (a tenth of the burst) early.
    assert RDAP_BURST - 2 * (RDAP_BURST // 10) <= allowed <= RDAP_BURST + 1, statuses
    # (SIGSTOP below comes after: a process stopped while it waits for the store counts the
    # time stopped against the store's timeout.)

    # Each process answers a share of the source ports: with one stopped, the other still
    # answers its share, and only its share.
    for stopped in (main, child):
        os.kill(stopped, signal.SIGSTOP)
        try:
            seen = await asyncio.gather(*(status_of(workers.port, openapi, wait=2.5)
                                          for _ in range(30)))
        finally:
            os.kill(stopped, signal.SIGCONT)
        assert 200 in seen, f"nobody answered while {stopped} was stopped"
        assert None in seen, f"{stopped} was stopped yet every request was answered"
        assert set(seen) <= {200, None}, seen

    # A request that talks EPP to the sandbox registry is answered by either process, each
    # over its own session with the registry.
    code, _, err = await cli(workers.home, "--database-url", workers.database_url, "user",
                             "create", "root@example.net", "--role", "admin",
                             "--password-stdin", stdin=PASSWORD + "\n")
    assert code == 0, err
    async with httpx.AsyncClient(base_url=workers.base, timeout=10) as http:
        login = await http.post("/api/v1/auth/login",
                                json={"email": "root@example.net", "password": PASSWORD})
    assert login.status_code == 200, login.text
    staff = {"Authorization": f"Bearer {login.json()['token']}"}
    answers = [await status_of(workers.port, "/api/v1/availability?name=free.test",
                               headers=staff) for _ in range(20)]
    assert answers == [200] * 20
    sessions = {pid: established(pid, workers.sandbox_port, remote=True)
                for pid in (main, child)}
    assert all(sessions.values()), sessions

    workers.process.kill()  # SIGKILL: the main process cleans nothing up
    await workers.process.wait()
    deadline = asyncio.get_running_loop().time() + 5
    while not exited(child):
        assert asyncio.get_running_loop().time() < deadline, "an HTTP worker outlived serve"
        await asyncio.sleep(0.05)
    assert not port_is_open(workers.port)


@needs_postgresql
async def test_a_worker_that_dies_is_replaced_and_sigterm_stops_every_process_cleanly(
        workers: Server) -> None:
    [child] = http_children(workers)
    os.kill(child, signal.SIGKILL)
    deadline = asyncio.get_running_loop().time() + 15
    while http_children(workers) in ([], [child]):
        assert asyncio.get_running_loop().time() < deadline, "the worker was not replaced"
        await asyncio.sleep(0.1)
    [replaced] = http_children(workers)
    # The new child listens: with the main process stopped, it still answers.
    while True:
        os.kill(workers.process.pid, signal.SIGSTOP)
        try:
            seen = await asyncio.gather(*(status_of(workers.port, "/api/v1/openapi.json",
                                                    wait=1.5) for _ in range(20)))
        finally:
            os.kill(workers.process.pid, signal.SIGCONT)
        if 200 in seen:
            break
        assert asyncio.get_running_loop().time() < deadline, "the new worker does not answer"

    # A request the child is reading when serve is told to stop is still answered: once no
    # process listens any more, the rest of its body goes out and the answer comes back.
    body = b'{"email": "nobody@example.net", "password": "not it at all"}'
    head = (b"POST /api/v1/auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body))
    for _ in range(30):
        reader, writer = await asyncio.open_connection("127.0.0.1", workers.port)
        writer.write(head + body[:10])
        await writer.drain()
        await asyncio.sleep(0.1)
        if established(replaced, workers.port):
            break
        writer.close()  # the main process took it: another source port
    else:
        pytest.fail("no connection reached the child")
    workers.process.send_signal(signal.SIGTERM)
    while port_is_open(workers.port):
        assert asyncio.get_running_loop().time() < deadline + 10, "serve goes on listening"
        await asyncio.sleep(0.05)
    await asyncio.sleep(1)  # into the child's grace period, not just its first moments
    writer.write(body[10:])
    await writer.drain()
    assert (await asyncio.wait_for(reader.readline(), 5)).startswith(b"HTTP/1.1 401 ")
    writer.close()

    await asyncio.wait_for(workers.process.wait(), timeout=20)

    assert workers.process.returncode == 0, workers.process.returncode
    assert exited(replaced)
    assert workers.process.stderr is not None
    stderr = (await workers.process.stderr.read()).decode()
    assert "Traceback" not in stderr, stderr[-3000:]
    # The children log where serve does; the main process tells of the one that died.
    assert f'"pid": {replaced}, "listen": "127.0.0.1:{workers.port}", "event": ' \
        '"http:worker:started"' in stderr, stderr[-3000:]
    assert f'"pid": {child}, "status": -9, "event": "http:workers:exited"' in stderr
    assert not port_is_open(workers.port)
    with pytest.raises(ProcessLookupError):
        os.killpg(workers.process.pid, 0)  # nothing of its session is left running


async def test_serve_refuses_more_than_one_http_process_on_sqlite_saying_why(
        tmp_path: Path) -> None:
    code, out, err = await cli(tmp_path / "home", "serve", "--http", f"127.0.0.1:{free_port()}",
                               env={"REGSHIELD_HTTP_WORKERS": "2"})

    assert code != 0
    assert "Traceback" not in err
    assert "http.workers: 2 processes need PostgreSQL" in err, err
    assert "regshield is running" not in out


@needs_postgresql
async def test_a_second_serve_on_the_same_http_port_is_refused_rather_than_sharing_it(
        tmp_path: Path, postgres_url: str) -> None:
    await _reset_postgres(postgres_url)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as other:
        # Another server that would share the port: bound with SO_REUSEPORT, as workers are.
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        code, out, err = await cli(tmp_path / "home", "--database-url", postgres_url, "serve",
                                   "--http", f"127.0.0.1:{port}",
                                   env={"REGSHIELD_HTTP_WORKERS": "2"})

    assert code != 0
    assert f"HTTP could not listen on 127.0.0.1:{port}" in err, err
    assert "Traceback" not in err
    assert "regshield is running" not in out


async def test_connections_on_the_shared_socket_send_without_delay() -> None:
    # Nagle's algorithm with the client's delayed ACK would hold each keep-alive answer for
    # some 40 ms; asyncio turns it off only on sockets it knows for TCP.
    accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = writer.get_extra_info("socket")
        accepted.set_result(connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()

    bound = shared_socket(Listen("127.0.0.1", 0))
    assert bound.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 1
    server = await asyncio.start_server(connected, sock=bound)
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", bound.getsockname()[1])
        assert await asyncio.wait_for(accepted, 5) != 0  # TCP_NODELAY
        writer.close()
    finally:
        server.close()
        await server.wait_closed()


async def spread(workers: Workers, path: str, count: int,
                 pids: tuple[int, ...]) -> list[tuple[int, str]] | None:
    """GET `path` on `count` connections held open at once, and their answers; None when the
    kernel did not hand some to every process of `pids` (a process not listening yet)."""
    connections = [await asyncio.open_connection("127.0.0.1", workers.port)
                   for _ in range(count)]
    try:
        await asyncio.sleep(0.3)
        if not all(established(pid, workers.port) for pid in pids):
            return None
        return [await asyncio.wait_for(_fetch(reader, writer, path), 10)
                for reader, writer in connections]
    finally:
        for _, writer in connections:
            writer.close()


def counted(metrics: str, family: str, label: str = "") -> int:
    """The sum of a counter family's samples (with `label` among their labels) in a GET
    /metrics answer."""
    return sum(int(float(line.rpartition(" ")[2])) for line in metrics.splitlines()
               if line.startswith(family + "{") and label in line)


@needs_postgresql
@pytest.mark.parametrize("workers", ["dns"], indirect=True)
async def test_metrics_count_what_every_http_process_saw_whichever_answers_the_scrape(
        workers: Workers) -> None:
    [child] = http_children(workers)
    main = workers.process.pid
    # DNS queries, answered by the DNS processes (REFUSED: no zone is served).
    for _ in range(15):
        answer = await asyncio.to_thread(
            dns.query.udp, dns.message.make_query("example.org.", "A"), "127.0.0.1",
            timeout=5, port=workers.dns_port)
        assert answer.rcode() == dns.rcode.REFUSED
    # RDAP lookups answered (404) or refused (429) by both processes: each counts its own.
    answered = await spread(workers, "/rdap/domain/nothing-here.test", 40, (main, child))
    assert answered is not None, "a process took none of the connections"
    assert {status for status, _ in answered} == {404, 429}, answered

    async def scrapes(pids: tuple[int, ...]) -> list[tuple[int, int]] | None:
        """(RDAP queries, DNS queries) as each of 12 scrapes counts them."""
        answers = await spread(workers, "/metrics", 12, pids)
        if answers is None:
            return None
        assert {status for status, _ in answers} == {200}
        return [(counted(body, "regshield_rdds_queries_total", 'service="rdap"'),
                 counted(body, "regshield_dns_queries_total")) for _, body in answers]

    # Once the processes have told each other (each second), every scrape, whichever process
    # answers it, counts all of them: the RDAP lookups of both HTTP processes, and the DNS
    # queries of the DNS processes (which the main process asks, and shares with its child).
    deadline = asyncio.get_running_loop().time() + 10
    while (seen := await scrapes((main, child))) != [(40, 15)] * 12:
        assert asyncio.get_running_loop().time() < deadline, seen
        await asyncio.sleep(0.5)

    # A child that dies takes nothing with it: its counts stay in the totals.
    os.kill(child, signal.SIGKILL)
    while http_children(workers) in ([], [child]):
        assert asyncio.get_running_loop().time() < deadline + 15, "the worker was not replaced"
        await asyncio.sleep(0.1)
    [replaced] = http_children(workers)
    while (seen := await scrapes((main, replaced))) != [(40, 15)] * 12:
        assert asyncio.get_running_loop().time() < deadline + 25, seen
        await asyncio.sleep(0.5)
