"""Soak and flood benchmark: DNS, RDAP, WHOIS and the API of one `regshield serve` together.

One real `regshield serve` (SQLite, or PostgreSQL with `--backend postgresql`) on a fresh data
directory with `--domains` registered names (bench/rdap.py's seed), a hosted signed zone and the
WHOIS listener. Legitimate traffic comes from 64 loopback addresses (127.0.2.1-64); every
attacker sends from 127.0.0.1. Four phases:

1. capacity: each service alone, closed loop, for `--capacity-seconds`: what it answers a
   second on this machine with the load generator beside it;
2. soak: all four at once, each paced at `--load` (0.8) of its capacity, for `--seconds`;
   per service: requests sent, answered correctly, errors, p50 and p99 (from the time each
   request was due, so a stalled server cannot hide its queue), and the server's memory at
   the start and the end;
3. floods: for each service in turn, an attacker floods it for `--flood-seconds` (DNS: names
   never asked before; RDAP: many connections from one address; WHOIS: idle sockets and a query
   flood; API: wrong passwords and bad tokens) while legitimate traffic to all four continues
   at a quarter of capacity; the share of legitimate requests served, their p99, and what the
   attacker got;
4. nothing lost: every contact created during the run is read back, `regshield events verify`
   passes and the server's log holds no traceback.

The per-source and per-token limits are raised for the legitimate addresses' sake (`[rdds]
per_minute`, `[limits] api_per_minute` below) and their /24 is exempt from DNS RRL: a
registrar's real users are many addresses each asking little, which 64 addresses at soak rates
are not. The attacker's address keeps the same raised limits, so a flood shows what the
service does when a limit is high, plus what the fixed caps (connections per source, RRL,
login throttling) do. The DNS load generator is dnsperf; HTTP and WHOIS clients run in this
process. Only loopback addresses are used.

    .venv/bin/python bench/soak.py [--backend sqlite|postgresql] [--domains 20000]
                                   [--seconds 120] [--flood-seconds 20] [--load 0.8]
                                   [--http-workers 1]

Exits 1 when a legitimate request was lost during the soak, a contact is missing afterwards, or
the event chain does not verify.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from api import (
    API,
    BenchFailure,
    RawHttp,
    Reply,
    cli,
    database_url,
    executable,
    free_port,
    make_contacts,
    postgres_database,
    server,
)
from rdap import domain_names, seed
from stats import percentile_ms

from regshield import logs

LEGITIMATE = [f"127.0.2.{i}" for i in range(1, 65)]
ATTACKER = "127.0.0.1"
LEGITIMATE_NETWORK = "127.0.2.0/24"
ZONE_RECORDS = 2000
TIMEOUT = 5.0


# ------------------------------------------------------------------------------------------
# Clients.


class SourcedHttp(RawHttp):
    """A keep-alive HTTP/1.1 connection from a chosen local address."""

    def __init__(self, host: str, port: int, headers: dict[str, str], source: str) -> None:
        super().__init__(host, port, headers)
        self.source = source

    async def _exchange(self, method: str, path: str, body: bytes | None) -> Reply:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(
                self.host, self.port, local_addr=(self.source, 0))
        return await super()._exchange(method, path, body)


async def whois(port: int, source: str, query: str) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    try:
        writer.write(query.encode() + b"\r\n")
        await writer.drain()
        return await reader.read(65536)
    finally:
        writer.close()


@dataclass
class Tally:
    """What one service got in one phase."""

    service: str
    sent: int = 0
    ok: int = 0
    refused: int = 0  # an answer that says "not now" (429, RRL): expected for attackers
    errors: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0
    note: str = ""

    def row(self) -> dict[str, Any]:
        return {
            "service": self.service, "sent": self.sent, "ok": self.ok, "refused": self.refused,
            "errors": len(self.errors),
            "rate": round(self.ok / self.seconds) if self.seconds else 0,
            "p50_ms": round(percentile_ms(self.latencies, 50), 1) if self.latencies else None,
            "p99_ms": round(percentile_ms(self.latencies, 99), 1) if self.latencies else None,
            "first_error": self.errors[0][:160] if self.errors else "",
        }


# Request `n` on connection `slot` (each loop of a phase has its own): "ok", "refused" or an
# error text.
Request = Callable[[int, int], Awaitable[str]]


async def closed_loop(tally: Tally, request: Request, connections: int, seconds: float) -> Tally:
    """`connections` loops, each sending the next request when the last is answered."""
    deadline = time.perf_counter() + seconds
    counter = iter(range(1 << 62))

    async def loop(slot: int) -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            _record(tally, await _guarded(request, next(counter), slot), started)

    started = time.perf_counter()
    await asyncio.gather(*(loop(slot) for slot in range(connections)))
    tally.seconds = time.perf_counter() - started
    return tally


async def paced(tally: Tally, request: Request, rate: float, seconds: float,
                connections: int) -> Tally:
    """`rate` requests a second spread over `connections` loops, latency from when each was
    due: a loop that falls behind sends at once and its lateness counts."""
    per_loop = rate / connections
    if per_loop <= 0:
        return tally
    interval = 1.0 / per_loop
    start = time.perf_counter()
    deadline = start + seconds

    async def loop(slot: int) -> None:
        due = start + interval * slot / connections
        n = 0
        while due < deadline:
            now = time.perf_counter()
            if now >= deadline:
                # The server fell so far behind that this request's turn came after the
                # phase: it counts as one not served, as a real client would see it.
                tally.sent += 1
                tally.errors.append("not sent before the end of the phase: server behind")
            else:
                if due > now:
                    await asyncio.sleep(due - now)
                _record(tally, await _guarded(request, n * connections + slot, slot), due)
            n += 1
            due += interval

    await asyncio.gather(*(loop(slot) for slot in range(connections)))
    tally.seconds = time.perf_counter() - start
    return tally


async def _guarded(request: Request, n: int, slot: int) -> str:
    try:
        async with asyncio.timeout(TIMEOUT):
            return await request(n, slot)
    except TimeoutError:
        return "timeout"
    except (OSError, ValueError, asyncio.IncompleteReadError) as error:
        return f"{type(error).__name__}: {error}"
    except Exception as error:  # a RequestError from RawHttp
        return f"{type(error).__name__}: {error}"


def _record(tally: Tally, outcome: str, started: float) -> None:
    tally.sent += 1
    if outcome == "ok":
        tally.ok += 1
        tally.latencies.append(time.perf_counter() - started)
    elif outcome == "refused":
        tally.refused += 1
    else:
        tally.errors.append(outcome)


# ------------------------------------------------------------------------------------------
# The four services' requests.


@dataclass
class Target:
    http_port: int
    dns_port: int
    whois_port: int
    token: str
    names: list[str]
    zone: str
    pid: int
    created: list[tuple[str, str]] = field(default_factory=list)  # (handle, name)
    connections: dict[str, SourcedHttp] = field(default_factory=dict)

    def http(self, source: str, key: str, headers: dict[str, str] | None = None) -> SourcedHttp:
        connection = self.connections.get(key)
        if connection is None:
            connection = self.connections[key] = SourcedHttp(
                "127.0.0.1", self.http_port, headers or {}, source)
        return connection

    async def close(self) -> None:
        for connection in self.connections.values():
            await connection.close()
        self.connections.clear()


def rdap_request(target: Target, source_of: Callable[[int], str], label: str,
                 unknown_share: float = 0.1) -> Request:
    rng = random.Random(label)

    async def request(n: int, slot: int) -> str:
        connection = target.http(source_of(slot), f"{label}-rdap-{slot}")
        if rng.random() < unknown_share:
            name, wanted = f"never-{secrets.token_hex(6)}.test", 404
        else:
            name, wanted = rng.choice(target.names), 200
        reply = await connection.request("GET", f"/rdap/domain/{name}", None)
        if reply.status_code == 429:
            return "refused"
        if reply.status_code != wanted:
            return f"RDAP {name}: HTTP {reply.status_code}"
        if wanted == 200 and json.loads(reply.content).get("ldhName") != name:
            return f"RDAP {name}: another domain's document"
        return "ok"

    return request


def api_request(target: Target, source_of: Callable[[int], str], label: str) -> Request:
    """One in five a contact created, the rest a created contact read back."""
    rng = random.Random(label)
    bodies = [json.dumps({k: v for k, v in c.items() if not k.startswith("_")}).encode()
              for c in make_contacts(500, seed=zlib.crc32(label.encode()))]
    auth = {"Authorization": f"Bearer {target.token}"}

    async def request(n: int, slot: int) -> str:
        connection = target.http(source_of(slot), f"{label}-api-{slot}", auth)
        if n % 5 == 0 or not target.created:
            body = bodies[n % len(bodies)]
            reply = await connection.request("POST", f"{API}/contacts", body)
            if reply.status_code == 429:
                return "refused"
            if reply.status_code != 201:
                return f"contact create: HTTP {reply.status_code} {reply.text[:120]}"
            target.created.append((reply.json()["handle"], json.loads(body)["name"]))
            return "ok"
        handle, name = rng.choice(target.created)
        reply = await connection.request("GET", f"{API}/contacts/{handle}", None)
        if reply.status_code == 429:
            return "refused"
        if reply.status_code != 200 or reply.json().get("name") != name:
            return f"contact read {handle}: HTTP {reply.status_code}"
        return "ok"

    return request


def whois_request(target: Target, source_of: Callable[[int], str], label: str) -> Request:
    rng = random.Random(label)

    async def request(n: int, slot: int) -> str:
        name = rng.choice(target.names)
        answer = await whois(target.whois_port, source_of(slot), name)
        if b"Domain Name:" in answer and name.encode() in answer.lower():
            return "ok"
        if b"limit" in answer.lower() or not answer:
            return "refused"
        return f"WHOIS {name}: {answer[:120]!r}"

    return request


def attacker_api_request(target: Target) -> Request:
    """Wrong passwords and forged tokens, from one address."""

    async def request(n: int, slot: int) -> str:
        if slot % 2:
            connection = target.http(ATTACKER, f"attack-login-{slot}")
            body = json.dumps({"email": "owner@bench.example",
                               "password": secrets.token_urlsafe(12)}).encode()
            reply = await connection.request("POST", f"{API}/auth/login", body)
        else:
            connection = target.http(ATTACKER, f"attack-token-{slot}",
                                     {"Authorization": "Bearer rs_" + secrets.token_urlsafe(32)})
            reply = await connection.request("GET", f"{API}/contacts", None)
        if reply.status_code in (401, 403, 429):
            return "refused"
        return f"attacker got HTTP {reply.status_code}"

    return request


# ------------------------------------------------------------------------------------------
# DNS through dnsperf.


def write_dns_queries(path: Path, zone: str, count: int, *, random_names: bool) -> None:
    rng = random.Random(path.name)
    lines = []
    for i in range(count):
        if random_names:
            lines.append(f"{secrets.token_hex(8)}.{zone}. A")
        else:
            host = rng.randrange(ZONE_RECORDS)
            kind = rng.random()
            if kind < 0.7:
                lines.append(f"host{host}.{zone}. {rng.choice(['A', 'AAAA'])}")
            elif kind < 0.9:
                lines.append(f"missing{i % 1000}.{zone}. A")
            else:
                lines.append(f"host{host}.{zone}. MX")
    path.write_text("\n".join(lines) + "\n")


def dnsperf(port: int, queries: Path, seconds: float, source: str, *,
            max_qps: float | None = None, clients: int = 4) -> subprocess.Popen[str]:
    command = [executable("dnsperf"), "-s", "127.0.0.1", "-a", source, "-p", str(port),
               "-d", str(queries), "-l", str(seconds), "-c", str(clients), "-q", "200",
               "-D", "-t", "1"]
    if max_qps is not None:
        command += ["-Q", str(max(1, int(max_qps)))]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def dnsperf_result(process: subprocess.Popen[str], service: str) -> Tally:
    output, _ = process.communicate(timeout=600)
    figures: dict[str, float] = {}
    for label, key in (("Queries sent", "sent"), ("Queries completed", "completed"),
                       ("Queries lost", "lost"), ("Run time \\(s\\)", "seconds"),
                       ("Average Latency \\(s\\)", "latency"),
                       ("Latency StdDev \\(s\\)", "stddev")):
        match = re.search(rf"{label}:\s+([\d.]+)", output)
        figures[key] = float(match.group(1)) if match else 0.0
    tally = Tally(service, sent=int(figures["sent"]), ok=int(figures["completed"]),
                  seconds=figures["seconds"] or 1.0)
    tally.errors = [f"{int(figures['lost'])} queries lost"] if figures["lost"] else []
    if figures["latency"]:
        # dnsperf prints the mean and deviation, not percentiles: mean + 2.33 sd stands in
        # for p99, marked as such in the report.
        tally.latencies = [figures["latency"]]
        tally.note = (f"latency mean {figures['latency'] * 1000:.2f} ms, "
                      f"~p99 {(figures['latency'] + 2.33 * figures['stddev']) * 1000:.2f} ms")
    if process.returncode != 0:
        tally.errors.append(f"dnsperf exited with {process.returncode}: {output[-300:]}")
    return tally


# ------------------------------------------------------------------------------------------
# The run.


def rss_kib(pid: int) -> int:
    """Resident memory of the server and its child processes (DNS or HTTP workers)."""
    total = 0
    for status in [Path(f"/proc/{pid}/status"), *_children_status(pid)]:
        try:
            match = re.search(r"VmRSS:\s+(\d+)", status.read_text())
        except OSError:
            continue
        total += int(match.group(1)) if match else 0
    return total


def _children_status(pid: int) -> Iterator[Path]:
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                yield stat.parent / "status"
        except (OSError, IndexError, ValueError):
            continue


def zone_file(zone: str) -> str:
    lines = [f"$ORIGIN {zone}.", "$TTL 300", "@ IN NS ns1.regshield.test.",
             "@ IN NS ns2.regshield.test."]
    for i in range(ZONE_RECORDS):
        lines.append(f"host{i} IN A 192.0.2.{i % 250 + 1}")
        lines.append(f"host{i} IN AAAA 2001:db8::{i + 1:x}")
    return "\n".join(lines) + "\n"


def write_config(home: Path, dns_port: int, whois_port: int) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "regshield.toml").write_text(f"""\
[sandbox]
listen = "127.0.0.1:{free_port()}"
dns_listen = "off"

[dns]
listen = "127.0.0.1:{dns_port}"

[dns.rrl]
exempt_networks = ["{LEGITIMATE_NETWORK}"]

[rdds]
whois_listen = "127.0.0.1:{whois_port}"
per_minute = 60000
burst = 2000
authenticated_per_minute = 600000

[limits]
api_per_minute = 60000
api_burst = 5000
""")


def legit(slot: int) -> str:
    """The legitimate address of connection `slot`."""
    return LEGITIMATE[slot % len(LEGITIMATE)]


def attacker(slot: int) -> str:
    return ATTACKER


async def run_phases(target: Target, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    report: dict[str, Any] = {}
    dns_mix = tmp / "dns-mix.txt"
    write_dns_queries(dns_mix, target.zone, 20_000, random_names=False)
    flood_names = tmp / "dns-flood.txt"
    write_dns_queries(flood_names, target.zone, 400_000, random_names=True)

    # 1. capacity, one service at a time.
    capacity: dict[str, float] = {}
    seconds = args.capacity_seconds
    dns = dnsperf_result(dnsperf(target.dns_port, dns_mix, seconds, LEGITIMATE[0]), "dns")
    capacity["dns"] = dns.ok / dns.seconds
    for service, request in (("rdap", rdap_request(target, legit, "cap")),
                             ("whois", whois_request(target, legit, "cap")),
                             ("api", api_request(target, legit, "cap"))):
        tally = await closed_loop(Tally(service), request, 16, seconds)
        if tally.errors:
            raise BenchFailure(f"{service} failed while measuring capacity: {tally.errors[0]}")
        capacity[service] = tally.ok / tally.seconds
        await target.close()
    report["capacity"] = {k: round(v) for k, v in capacity.items()}
    print("capacity (alone, closed loop): "
          + ", ".join(f"{k} {v:,.0f}/s" for k, v in capacity.items()), flush=True)

    # 2. soak: everything at `load` of its capacity together.
    rss_start = rss_kib(target.pid)
    samples: list[int] = []
    sampling = asyncio.create_task(_sample_memory(target.pid, samples))
    dns_process = dnsperf(target.dns_port, dns_mix, args.seconds, LEGITIMATE[0],
                          max_qps=capacity["dns"] * args.load)
    soak = await asyncio.gather(
        paced(Tally("rdap"), rdap_request(target, legit, "soak"),
              capacity["rdap"] * args.load, args.seconds, 16),
        paced(Tally("whois"), whois_request(target, legit, "soak"),
              capacity["whois"] * args.load, args.seconds, 16),
        paced(Tally("api"), api_request(target, legit, "soak"),
              capacity["api"] * args.load, args.seconds, 16),
    )
    soak_dns = await asyncio.to_thread(dnsperf_result, dns_process, "dns")
    sampling.cancel()
    await target.close()
    rss_end = rss_kib(target.pid)
    report["soak"] = [soak_dns.row(), *(t.row() for t in soak)]
    report["memory_kib"] = {"start": rss_start, "end": rss_end,
                            "peak": max(samples, default=rss_end)}
    print_table(f"soak: all four at {args.load:.0%} of capacity for {args.seconds:.0f} s",
                [soak_dns, *soak])
    print(f"memory: {rss_start / 1024:.0f} MiB at the start, {rss_end / 1024:.0f} MiB at the "
          f"end, peak {max(samples, default=rss_end) / 1024:.0f} MiB", flush=True)

    # 3. floods, one service at a time, legitimate traffic at a quarter of capacity.
    report["floods"] = {}
    for victim in ("dns", "rdap", "whois", "api"):
        background = 0.25
        attack = await _flood(victim, target, args, flood_names, capacity, background)
        report["floods"][victim] = attack
        await target.close()
    return report


async def _flood(victim: str, target: Target, args: argparse.Namespace, flood_names: Path,
                 capacity: dict[str, float], background: float) -> dict[str, Any]:
    seconds = args.flood_seconds
    dns_process = dnsperf(target.dns_port, flood_names.parent / "dns-mix.txt", seconds,
                          LEGITIMATE[0], max_qps=capacity["dns"] * background)
    attack_dns = (dnsperf(target.dns_port, flood_names, seconds, ATTACKER, clients=8)
                  if victim == "dns" else None)
    idle: list[asyncio.StreamWriter] = []
    if victim == "whois":
        idle = await _idle_sockets(target.whois_port, 300)
    attack: Awaitable[Tally] | None = None
    if victim == "rdap":
        attack = closed_loop(Tally("attacker rdap"),
                             rdap_request(target, attacker, "attack", 0.5), 64, seconds)
    elif victim == "whois":
        attack = closed_loop(Tally("attacker whois"),
                             whois_request(target, attacker, "attack"), 32, seconds)
    elif victim == "api":
        attack = closed_loop(Tally("attacker api"), attacker_api_request(target), 64, seconds)
    legit_tasks = [
        paced(Tally("rdap"), rdap_request(target, legit, f"bg-{victim}"),
              capacity["rdap"] * background, seconds, 8),
        paced(Tally("whois"), whois_request(target, legit, f"bg-{victim}"),
              capacity["whois"] * background, seconds, 8),
        paced(Tally("api"), api_request(target, legit, f"bg-{victim}"),
              capacity["api"] * background, seconds, 8),
    ]
    results = await asyncio.gather(*legit_tasks, *([attack] if attack else []))
    for writer in idle:
        writer.close()
    legit_dns = await asyncio.to_thread(dnsperf_result, dns_process, "dns")
    tallies = [legit_dns, *results[:3]]
    attack_tally = (await asyncio.to_thread(dnsperf_result, attack_dns, "attacker dns")
                    if attack_dns is not None else results[3])
    print_table(f"flood on {victim} for {seconds:.0f} s (legitimate traffic at "
                f"{background:.0%} of capacity from {LEGITIMATE_NETWORK})",
                [*tallies, attack_tally])
    return {"legitimate": [t.row() for t in tallies], "attacker": attack_tally.row()}


async def _idle_sockets(port: int, count: int) -> list[asyncio.StreamWriter]:
    """Connections from the attacker's address that send nothing (slowloris on WHOIS)."""
    writers = []
    for _ in range(count):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port,
                                                      local_addr=(ATTACKER, 0))
        except OSError:
            break
        writers.append(writer)
    return writers


async def _sample_memory(pid: int, samples: list[int]) -> None:
    while True:
        samples.append(rss_kib(pid))
        await asyncio.sleep(2)


def print_table(title: str, tallies: list[Tally]) -> None:
    print(f"\n{title}", flush=True)
    print(f"  {'service':<16}{'sent':>10}{'ok':>10}{'refused':>9}{'errors':>8}{'rate/s':>9}"
          f"{'p50 ms':>9}{'p99 ms':>9}")
    for tally in tallies:
        row = tally.row()
        p50 = "-" if row["p50_ms"] is None else f"{row['p50_ms']:.1f}"
        p99 = "-" if row["p99_ms"] is None else f"{row['p99_ms']:.1f}"
        if tally.service.endswith("dns"):
            p50, p99 = "(mean)", "-"
        print(f"  {tally.service:<16}{row['sent']:>10,}{row['ok']:>10,}{row['refused']:>9,}"
              f"{row['errors']:>8}{row['rate']:>9,}{p50:>9}{p99:>9}")
        if tally.note:
            print(f"  {'':<16}{tally.note}")
        if row["first_error"]:
            print(f"  {'':<16}first error: {row['first_error']}")
    sys.stdout.flush()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--domains", type=int, default=20_000)
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--capacity-seconds", type=float, default=8)
    parser.add_argument("--flood-seconds", type=float, default=20)
    parser.add_argument("--load", type=float, default=0.8)
    parser.add_argument("--http-workers", type=int, default=1,
                        help="HTTP processes (`[http] workers`; more than one needs "
                             "--backend postgresql)")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--postgres-admin", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--log", type=Path, help="keep the server's log in this file")
    args = parser.parse_args()
    logs.configure("warning")
    for address in (*LEGITIMATE[:1], ATTACKER):
        if not address.startswith("127."):
            raise SystemExit("only loopback addresses are used")
    try:
        report = run(args)
    except BenchFailure as failure:
        print(f"FAILED: {failure}", file=sys.stderr)
        return 1
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0 if report["lost"] == 0 and report["verified"] else 1


def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="regshield-soak-") as directory:
        tmp = Path(directory)
        home = tmp / "home"
        with (postgres_database(args.postgres_admin, "regshield_soak")
              if args.backend == "postgresql" else _nothing()) as db:
            database = database_url(args.postgres, db) if db else None
            base = [executable("regshield"), "--home", str(home)]
            if database:
                base += ["--database-url", database]
            http_port, dns_port, whois_port = free_port(), free_port(), free_port()
            write_config(home, dns_port, whois_port)
            names = domain_names(args.domains, seed=5)
            print(f"seeding {len(names):,} domains ({args.backend})", flush=True)
            cli(base, "init")
            asyncio.run(seed(home, database, names, 200))
            zone = names[0]
            cli(base, "zone", "import", zone, "-", "--account", "bench",
                stdin=zone_file(zone))
            env = {k: v for k, v in os.environ.items()
                   if k not in ("REGSHIELD_MASTER_KEY", "REGSHIELD_DATABASE_URL",
                                "REGSHIELD_HOME")}
            # One HTTP process unless asked (on PostgreSQL the default is one per core).
            env["REGSHIELD_HTTP_WORKERS"] = str(args.http_workers)
            with server([*base, "serve", "--http", f"127.0.0.1:{http_port}"], http_port,
                        tmp / "serve.log", env) as process:
                password = secrets.token_urlsafe(18)
                cli(base, "user", "create", "owner@bench.example", "--role", "owner",
                    "--account", "bench", "--password-stdin", stdin=password + "\n")
                token = cli(base, "token", "create", "owner@bench.example", "--name",
                            "soak").strip().splitlines()[-1]
                target = Target(http_port, dns_port, whois_port, token, names, zone,
                                process.pid)
                report = asyncio.run(run_phases(target, args, tmp))
                report["lost"] = asyncio.run(_missing_contacts(target))
                verified = cli(base, "events", "verify").strip().splitlines()
                report["verified"] = True
            log = (tmp / "serve.log").read_text(errors="replace")
            if args.log:
                args.log.write_text(log)
            tracebacks = log.count("Traceback")
            print(f"\nnothing lost: {len(target.created):,} contacts created, "
                  f"{report['lost']} missing; events verify: {'; '.join(verified)}; "
                  f"{tracebacks} tracebacks in the server's log", flush=True)
            report["tracebacks"] = tracebacks
            if tracebacks:
                report["verified"] = False
    return report


async def _missing_contacts(target: Target) -> int:
    """Contacts answered 201 that cannot be read back. A read that fails is tried again after
    the server has settled (the floods leave a queue behind them), and what it met is
    printed: only a contact still not there, or not as created, counts as lost."""
    connection = SourcedHttp("127.0.0.1", target.http_port,
                             {"Authorization": f"Bearer {target.token}"}, LEGITIMATE[0])
    failed: dict[str, str] = {}
    try:
        for attempt in range(3):
            pending = target.created if attempt == 0 else [
                (handle, name) for handle, name in target.created if handle in failed]
            failed = {}
            for handle, name in pending:
                try:
                    reply = await connection.request("GET", f"{API}/contacts/{handle}", None)
                except Exception as error:
                    failed[handle] = type(error).__name__
                    continue
                if reply.status_code != 200:
                    failed[handle] = f"HTTP {reply.status_code}"
                elif reply.json().get("name") != name:
                    failed[handle] = "another name"
            if not failed:
                break
            print(f"read back, attempt {attempt + 1}: {len(failed)} not read "
                  f"({', '.join(sorted(set(failed.values())))})")
            await asyncio.sleep(5)
    finally:
        await connection.close()
    return len(failed)


@contextmanager
def _nothing() -> Iterator[None]:
    yield None


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)
    shutil.which("dnsperf") or sys.exit("dnsperf is not installed (Debian package dnsperf)")
    sys.exit(main())
