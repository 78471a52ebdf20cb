"""EPP client benchmark: domain create and info through regshield's EppPool, beside pyepp.

The sandbox registry runs in this process on 127.0.0.1 (a port the system picks), with a fresh
temporary directory and one registrar. Three clients then send, one after the other, N domain
creates (each answered before the next phase) and N domain infos of the same names:

- pyepp (PyPI), an independent blocking EPP client: one connection, one command at a time;
- pyepp again with TCP_NODELAY set on its socket: pyepp writes a frame's length and its XML
  with two sendall calls, so as shipped each command waits for a delayed ACK (~40 ms on
  Linux loopback) before its XML leaves; this row shows pyepp without that stall;
- regshield's EppPool restricted to 1 session and 1 command in flight: the like-for-like peer;
- regshield's EppPool with S sessions and C commands in flight (C callers queue for S slots).

Each client runs in its own thread (regshield's with its own event loop), while the registry
serves on the main thread's loop, so the three share the same setup: one process, one GIL,
the registry's work on one side and the client's on the other. pyepp goes first, so it meets
the smallest registry database. Every response must be 1000 and an info must name the domain
asked for; any failure, or any exception, makes the run exit 1.

    .venv/bin/python bench/epp.py [--domains 600] [--sessions 4] [--concurrency 16]

Latency runs from the call (pool.execute / pyepp's domain.create or domain.info) to its return:
for the pool it includes the wait for a free session. "client CPU" is the CPU time of the
client's thread per request (time.thread_time), the rest of the process's CPU being mostly the
registry's. Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from stats import percentile_ms

from regshield import logs
from regshield.config import Listen
from regshield.registry.client import EppSession, RegistryEndpoint
from regshield.registry.codec import Period, PostalInfo, ResultCode, Secret
from regshield.registry.commands import ContactCreate, DomainCreate, DomainInfo
from regshield.registry.pool import EppPool
from regshield.registry.responses import DomainInfoData, EppResponse
from regshield.registry.sandbox.server import SandboxServer
from regshield.registry.sandbox.state import SandboxConfig

REGISTRAR = "bench-registrar"
PASSWORD = "bench-" + secrets.token_hex(4)  # 13 characters (RFC 5730: 6 to 16)
AUTH_INFO = "Xy7!Bench-Code-2026"
NAMESERVERS = ("ns1.example.net", "ns2.example.net")
REGISTRANT = "holder-1"
TIMEOUT = 60.0


class BenchFailure(Exception):
    pass


@dataclass
class Phase:
    requests: int = 0
    seconds: float = 0.0
    client_cpu: float = 0.0  # CPU seconds of the client's thread
    process_cpu: float = 0.0  # CPU seconds of the whole process (client + registry)
    latencies: list[float] = field(default_factory=list)  # seconds, successful requests
    errors: list[str] = field(default_factory=list)

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        """Nearest-rank percentile in milliseconds."""
        return percentile_ms(self.latencies, p)


@dataclass
class Target:
    label: str
    phases: dict[str, Phase] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)  # outside the phases (login, logout)


class Meter:
    """Times one phase: wall clock, the calling thread's CPU and the process's CPU."""

    def __init__(self, phase: Phase) -> None:
        self.phase = phase

    def __enter__(self) -> Phase:
        self.wall, self.thread, self.process = (time.perf_counter(), time.thread_time(),
                                                time.process_time())
        return self.phase

    def __exit__(self, *_: object) -> None:
        self.phase.seconds = time.perf_counter() - self.wall
        self.phase.client_cpu = time.thread_time() - self.thread
        self.phase.process_cpu = time.process_time() - self.process


# ------------------------------------------------------------------------------------------
# regshield: EppPool, in a thread with its own event loop.


def create_command(name: str) -> DomainCreate:
    return DomainCreate(name=name, auth_info=Secret(AUTH_INFO), period=Period(1),
                        nameservers=NAMESERVERS, registrant=REGISTRANT)


def check_create(_name: str, response: EppResponse) -> str | None:
    if response.code != ResultCode.COMPLETED:
        return f"{int(response.code)} {response.message}"
    return None


def check_info(name: str, response: EppResponse) -> str | None:
    if response.code != ResultCode.COMPLETED:
        return f"{int(response.code)} {response.message}"
    data = response.item(DomainInfoData)
    if data is None or data.name != name or data.sponsoring_client != REGISTRAR:
        return f"the info answer does not describe {name}: {data!r}"
    return None


async def pool_phase(pool: EppPool, names: list[str], concurrency: int,
                     command: Callable[[str], DomainCreate | DomainInfo],
                     check: Callable[[str, EppResponse], str | None]) -> Phase:
    phase = Phase(requests=len(names))
    queue = iter(names)

    async def worker() -> None:
        for name in queue:  # one shared iterator: each name goes to exactly one worker
            sent = command(name)
            started = time.perf_counter()
            try:
                response = await pool.execute(sent)
            except Exception as exc:
                phase.errors.append(f"{name}: {type(exc).__name__}: {exc}")
                continue
            elapsed = time.perf_counter() - started
            problem = check(name, response)
            if problem:
                phase.errors.append(f"{name}: {problem}")
            else:
                phase.latencies.append(elapsed)

    with Meter(phase):
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return phase


async def regshield_client(target: Target, endpoint: RegistryEndpoint, names: list[str],
                           warmup: list[str], sessions: int, concurrency: int) -> None:
    async with EppPool(endpoint, size=sessions, idle_interval=None) as pool:
        if warmup:  # not measured: loads code, fills caches
            warm = await pool_phase(pool, warmup, concurrency, create_command, check_create)
            target.errors.extend(f"warm-up {e}" for e in warm.errors)
        target.phases["create"] = await pool_phase(pool, names, concurrency, create_command,
                                                   check_create)
        target.phases["info"] = await pool_phase(pool, names, concurrency, DomainInfo,
                                                 check_info)


def run_regshield(target: Target, endpoint: RegistryEndpoint, names: list[str],
                  warmup: list[str], sessions: int, concurrency: int) -> None:
    try:
        asyncio.run(regshield_client(target, endpoint, names, warmup, sessions, concurrency))
    except Exception as exc:
        target.errors.append(f"{type(exc).__name__}: {exc}")


# ------------------------------------------------------------------------------------------
# pyepp: blocking, one connection, one command at a time.


def run_pyepp(target: Target, port: int, names: list[str], warmup: list[str],
              nodelay: bool) -> None:
    from pyepp.domain import Domain, DomainData
    from pyepp.epp import EppCommunicator

    def create(domain: Domain, name: str) -> str | None:
        result = domain.create(DomainData(domain_name=name, period=1, registrant=REGISTRANT,
                                          host=list(NAMESERVERS), password=AUTH_INFO))
        return None if int(result.code) == 1000 else f"{result.code} {result.message}"

    def info(domain: Domain, name: str) -> str | None:
        result = domain.info(name)
        if int(result.code) != 1000:
            return f"{result.code} {result.message}"
        data = result.result_data
        if data.domain_name != name or data.sponsoring_client_id != REGISTRAR:
            return f"the info answer does not describe {name}: {data!r}"
        return None

    def phase_of(domain: Domain, op: Callable[[Domain, str], str | None],
                 batch: list[str]) -> Phase:
        phase = Phase(requests=len(batch))
        with Meter(phase):
            for name in batch:
                started = time.perf_counter()
                try:
                    problem = op(domain, name)
                except Exception as exc:
                    problem = f"{type(exc).__name__}: {exc}"
                elapsed = time.perf_counter() - started
                if problem:
                    phase.errors.append(f"{name}: {problem}")
                else:
                    phase.latencies.append(elapsed)
        return phase

    try:
        epp = EppCommunicator("127.0.0.1", str(port))
        epp.connect()
        if nodelay:  # pyepp writes the length and the XML with two sendall calls
            epp._ssl_socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        login = epp.login(REGISTRAR, PASSWORD)
        if int(login.code) != 1000:
            target.errors.append(f"login: {login.code} {login.message}")
            return
        domain = Domain(epp)
        if warmup:
            warm = phase_of(domain, create, warmup)
            target.errors.extend(f"warm-up {e}" for e in warm.errors)
        target.phases["create"] = phase_of(domain, create, names)
        target.phases["info"] = phase_of(domain, info, names)
        logout = epp.logout()
        if int(logout.code) != 1500:
            target.errors.append(f"logout: {logout.code} {logout.message}")
    except Exception as exc:
        target.errors.append(f"{type(exc).__name__}: {exc}")


# ------------------------------------------------------------------------------------------
# The run.


async def in_thread(label: str, function: Callable[[], None]) -> None:
    """Run a client in its own thread while this loop serves the registry."""
    done = asyncio.get_running_loop().create_future()

    def body() -> None:
        try:
            function()
        finally:
            done.get_loop().call_soon_threadsafe(done.set_result, None)

    thread = threading.Thread(target=body, name=label, daemon=True)
    thread.start()
    await done
    thread.join()


async def create_registrant(endpoint: RegistryEndpoint) -> None:
    """The contact every benchmark domain names: the sandbox, like a thick registry, wants it
    to exist (for sessions that select contact-1.0, as pyepp's and the pool's do)."""
    session = await EppSession.open(endpoint)
    try:
        response = await session.execute(ContactCreate(
            REGISTRANT, postal_info=(PostalInfo("int", "Bench Holder", "Berlin", "DE"),),
            email="holder@example.net", auth_info=Secret("bench-" + secrets.token_hex(6))))
        if not response.succeeded:
            raise SystemExit(f"cannot create the registrant: {int(response.code)}")
    finally:
        await session.logout()


async def run(args: argparse.Namespace) -> list[Target]:
    with tempfile.TemporaryDirectory(prefix="regshield-epp-bench-") as tmp:
        directory = Path(tmp) / "sandbox-registry"
        server = await SandboxServer.start(SandboxConfig(
            directory=directory, listen=Listen("127.0.0.1", 0), idle_timeout=600.0))
        try:
            await server.state.add_registrar(REGISTRAR, PASSWORD)
            endpoint = RegistryEndpoint(
                host="127.0.0.1", port=server.port, client_id=REGISTRAR,
                password=Secret(PASSWORD), ca_certificate=server.certificate,
                server_hostname="localhost", connect_timeout=TIMEOUT, command_timeout=TIMEOUT)
            await create_registrant(endpoint)
            n, w = args.domains, args.warmup
            pool_label = f"regshield pool ({args.sessions} sessions, {args.concurrency} concurrent)"
            runs: list[tuple[Target, Callable[[Target], Awaitable[None]]]] = []
            pyepp = Target("pyepp single session")
            nodelay = Target("pyepp single session, TCP_NODELAY")
            single = Target("regshield single session")
            pool = Target(pool_label)

            previous = os.environ.get("SSL_CERT_FILE")
            os.environ["SSL_CERT_FILE"] = str(server.certificate)  # pyepp's trust store
            try:
                runs = [
                    (pyepp, lambda t: in_thread("pyepp", lambda: run_pyepp(
                        t, server.port, [f"pyepp-{i}.test" for i in range(n)],
                        [f"warm-pyepp-{i}.test" for i in range(w)], nodelay=False))),
                    (nodelay, lambda t: in_thread("pyepp-nodelay", lambda: run_pyepp(
                        t, server.port, [f"nodelay-{i}.test" for i in range(n)],
                        [f"warm-nodelay-{i}.test" for i in range(w)], nodelay=True))),
                    (single, lambda t: in_thread("single", lambda: run_regshield(
                        t, endpoint, [f"single-{i}.test" for i in range(n)],
                        [f"warm-single-{i}.test" for i in range(w)], 1, 1))),
                    (pool, lambda t: in_thread("pool", lambda: run_regshield(
                        t, endpoint, [f"bench-{i}.test" for i in range(n)],
                        [f"warm-bench-{i}.test" for i in range(w)], args.sessions,
                        args.concurrency))),
                ]
                for target, go in runs:
                    begun = time.perf_counter()
                    print(f"{target.label} ...", end=" ", flush=True)
                    await go(target)
                    summary = ", ".join(f"{op} {p.throughput:.0f} req/s ({p.seconds:.1f}s, "
                                        f"{len(p.errors)} errors)"
                                        for op, p in target.phases.items())
                    print(f"{summary or 'no result'}; {time.perf_counter() - begun:.0f}s in all",
                          flush=True)
            finally:
                if previous is None:
                    os.environ.pop("SSL_CERT_FILE", None)
                else:
                    os.environ["SSL_CERT_FILE"] = previous
            return [pool, single, pyepp, nodelay]
        finally:
            await server.close()


def report(targets: list[Target], args: argparse.Namespace) -> int:
    pool, single, pyepp, nodelay = targets
    print()
    print(f"domains: {args.domains} per client (+{args.warmup} unmeasured warm-up creates); "
          f"machine: {os.cpu_count()} CPUs; load average before/after: "
          f"{args.load_before:.2f}/{os.getloadavg()[0]:.2f}")
    print()
    width = max(len(t.label) for t in targets)
    header = (f"{'client':<{width}} {'op':<6} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} "
              f"{'client CPU ms/req':>17} {'process CPU ms/req':>18}")
    print(header)
    print("-" * len(header))
    for target in targets:
        for op in ("create", "info"):
            p = target.phases.get(op)
            if p is None:
                print(f"{target.label:<{width}} {op:<6} {'-':>7} {'-':>7} {'-':>7}")
                continue
            print(f"{target.label:<{width}} {op:<6} {p.throughput:>7.0f} "
                  f"{p.percentile(50):>7.2f} {p.percentile(99):>7.2f} "
                  f"{p.client_cpu * 1000 / p.requests:>17.3f} "
                  f"{p.process_cpu * 1000 / p.requests:>18.3f}")
    print()
    for peer in (pyepp, nodelay):
        header = (f"{'ratio vs ' + peer.label:<{width}} {'op':<6} {'req/s':>7} {'p50':>7} "
                  f"{'p99':>7}")
        print(header)
        print("-" * len(header))
        for target in (pool, single):
            for op in ("create", "info"):
                a, b = target.phases.get(op), peer.phases.get(op)
                if a and b and b.throughput and a.latencies and b.latencies:
                    print(f"{target.label:<{width}} {op:<6} {a.throughput / b.throughput:>7.2f} "
                          f"{a.percentile(50) / b.percentile(50):>7.2f} "
                          f"{a.percentile(99) / b.percentile(99):>7.2f}")
                else:
                    print(f"{target.label:<{width}} {op:<6} {'-':>7} {'-':>7} {'-':>7}")
        print()
    print("req/s: regshield / pyepp (above 1 = faster); p50, p99: regshield / pyepp latency "
          "(below 1 = faster). The pool's latency includes the wait for a free session.")
    failed = 0
    for target in targets:
        problems = list(target.errors)
        for op, p in target.phases.items():
            problems += [f"{op} {e}" for e in p.errors]
        if problems:
            failed += len(problems)
            print(f"\n{target.label}: {len(problems)} failures; first ones:")
            for problem in problems[:5]:
                print(f"  {problem}")
        missing = {"create", "info"} - set(target.phases)
        if missing and not problems:
            failed += 1
            print(f"\n{target.label}: no {', '.join(sorted(missing))} phase ran")
    print()
    if failed:
        print(f"FAILED: {failed} failures")
        return 1
    print("ok: every response was 1000 and every info named its domain")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description="Domain create/info through regshield's "
                                                 "EppPool beside pyepp, on the sandbox registry.")
    parser.add_argument("--domains", type=int, default=600,
                        help="domains per client (pyepp as shipped does ~16 commands/s)")
    parser.add_argument("--sessions", type=int, default=4, help="pool sessions")
    parser.add_argument("--concurrency", type=int, default=16,
                        help="pool commands in flight")
    parser.add_argument("--warmup", type=int, default=50,
                        help="unmeasured creates before each client's measurement")
    args = parser.parse_args()
    if args.domains < 1 or args.sessions < 1 or args.concurrency < 1 or args.warmup < 0:
        parser.error("--domains, --sessions and --concurrency must be positive, "
                     "--warmup not negative")
    logs.configure("warning")  # regshield's own log setup; info lines would flood stderr
    args.load_before = os.getloadavg()[0]
    started = time.perf_counter()
    try:
        targets = asyncio.run(run(args))
    except BenchFailure as failure:
        print(f"\nbench failed: {failure}", file=sys.stderr)
        return 1
    except Exception as exc:
        print(f"\nbench failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    status = report(targets, args)
    print(f"total time: {time.perf_counter() - started:.0f}s")
    return status


if __name__ == "__main__":
    sys.exit(main())
