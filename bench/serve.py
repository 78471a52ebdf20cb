"""Authoritative serving benchmark: regshield's embedded server beside Knot DNS, then RRL.

Builds one zone of N names (hosts with A and AAAA, one in twenty a signed delegation with glue),
signs it with regshield's signer (NSEC, or NSEC3 with `--nsec3`) and writes it to a zone file.
The embedded server (in processes of its own: `--workers`, one by default, the others fed the
zone as `regshield serve` feeds its DNS workers) and Knot DNS (`knotd`, as many UDP workers as
the embedded server has processes unless `--knot-workers` says otherwise, so that both use
the same cores) serve that same file on loopback ports; dnsperf sends each the same query mix
with the DO bit set: existing names (A, AAAA), NXDOMAIN, NODATA (MX) and referrals; one pass
through the 20,000 queries first (the embedded server builds and caches each answer on first
use; its qps in that pass is printed too; with workers, each process has its own cache, and
more passes from more sockets warm every one), then `--seconds` of measurement. It prints the qps
of each, per core (per process or UDP worker) too, and the ratio. dnsperf runs on the same
machine: with as many workers as cores, it takes CPU from the servers, and the figures per
core fall for both alike.

Then the random-name flood, as in a random-subdomain attack: every question is a name never
asked before (a random label under the apex, or under an existing name, one in four), type A
with DO, from a file of `--flood-names` names, more than either server answers in the time;
each server is measured for `--seconds` on the same file, beside the other.

Then the RRL demonstration: the embedded server with RRL on (`--rrl` responses per second
per prefix, slip 2); dnsperf floods it from 127.0.0.1 (the attacker's /24) at `--flood-qps`
while a legitimate client on 127.0.1.1 asks one question every 50 ms (1 s timeout); it prints
the attacker's full answers per second (bounded by the limit) and the share of the legitimate
client's questions answered.

    .venv/bin/python bench/serve.py [--names 10000] [--seconds 10] [--nsec3] [--workers 1]
                                    [--knot-workers N] [--rrl 200] [--clients 4]
                                    [--flood-qps 15000] [--flood-names 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import signal
import socket
import string
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset
import dns.zone

from regshield.dns.rrl import RateLimiter
from regshield.dns.server import DnsServer
from regshield.dns.udp import native
from regshield.dns.workers import DnsWorkers, WatchedTable
from regshield.dns.zonedata import ServedZone
from regshield.dnssec import KSK_FLAGS, ZSK_FLAGS, generate_key, sign_zone

ORIGIN = dns.name.from_text("bench.example.")
LOOPBACK = "127.0.0.1"
LEGITIMATE_CLIENT = "127.0.1.1"


def zone_text(names: int) -> str:
    lines = [
        "$TTL 3600",
        "@ IN SOA ns1 hostmaster 1 7200 900 1209600 300",
        "@ IN NS ns1",
        "ns1 IN A 192.0.2.1",
    ]
    for index in range(names):
        name = f"host{index}"
        if index % 20 == 19:
            lines += [
                f"{name} IN NS ns.{name}",
                f"{name} IN DS 12345 13 2 {'ab' * 32}",
                f"ns.{name} IN A 198.51.100.{index % 250 + 1}",
            ]
        else:
            lines += [
                f"{name} IN A 192.0.2.{index % 250 + 1}",
                f"{name} IN AAAA 2001:db8::{index % 65535:x}",
            ]
    return "\n".join(lines) + "\n"


def write_signed_zone(path: Path, names: int, nsec3: bool) -> None:
    zone = dns.zone.from_text(zone_text(names), origin=ORIGIN, relativize=False)
    keys = [generate_key(flags=KSK_FLAGS), generate_key(flags=ZSK_FLAGS)]
    inception = datetime.now(UTC) - timedelta(hours=1)
    rrsets = sign_zone(zone, keys, inception, inception + timedelta(days=14),
                       nsec="nsec3" if nsec3 else "nsec")
    with path.open("w") as output:
        for rrset in rrsets:
            output.write(rrset.to_text() + "\n")


def load_zone(path: Path) -> ServedZone:
    zone = dns.zone.from_file(str(path), origin=ORIGIN, relativize=False)
    rrsets = []
    for name, node in zone.nodes.items():
        for rdataset in node.rdatasets:
            rrset = dns.rrset.RRset(name, rdataset.rdclass, rdataset.rdtype, rdataset.covers)
            rrset.update_ttl(rdataset.ttl)
            rrset.items = dict(rdataset.items)
            rrsets.append(rrset)
    soa = zone.find_rdataset(ORIGIN, dns.rdatatype.SOA)[0]
    return ServedZone(ORIGIN, soa.serial, tuple(rrsets))


def write_queries(path: Path, names: int) -> None:
    """The query mix: 60 % existing A/AAAA, 20 % NXDOMAIN, 10 % NODATA, 10 % referrals."""
    chooser = random.Random(53)  # the same mix for every run
    lines = []
    for _ in range(20_000):
        index = chooser.randrange(names)
        kind = chooser.random()
        if index % 20 == 19 or kind >= 0.9:
            index = index - index % 20 + 19 if index - index % 20 + 19 < names else 19
            lines.append(f"www.host{index}.bench.example. A")
        elif kind < 0.6:
            lines.append(f"host{index}.bench.example. {chooser.choice(['A', 'AAAA'])}")
        elif kind < 0.8:
            lines.append(f"missing{chooser.randrange(1000)}.bench.example. A")
        else:
            lines.append(f"host{index}.bench.example. MX")
    path.write_text("\n".join(lines) + "\n")


def write_random_names(path: Path, count: int, names: int) -> None:
    """`count` questions for names never asked before: a random label of 16 letters and
    digits under the apex, or (one in four) under an existing name (a delegation's: a
    referral)."""
    chooser = random.Random(1034)
    alphabet = string.ascii_lowercase + string.digits
    with path.open("w") as output:
        for number in range(count):
            label = "".join(chooser.choices(alphabet, k=16))
            parent = f"host{chooser.randrange(names)}." if number % 4 == 0 else ""
            output.write(f"{label}.{parent}{ORIGIN} A\n")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
        tcp.bind((LOOPBACK, 0))
        return int(tcp.getsockname()[1])


def wait_until_served(port: int, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    query = dns.message.make_query(ORIGIN, "SOA")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited with {process.returncode}")
        try:
            response = dns.query.udp(query, LOOPBACK, port=port, timeout=0.5)
            if response.rcode() == dns.rcode.NOERROR and response.answer:
                return
        except (OSError, dns.exception.Timeout):
            pass
        time.sleep(0.1)
    raise SystemExit(f"nothing served {ORIGIN} on port {port} within {timeout} s")


def dnsperf(port: int, queries: Path, seconds: float, clients: int, *,
            passes: int | None = None, outstanding: int = 100,
            max_qps: int | None = None) -> dict[str, float]:
    """Run dnsperf for `seconds` (or `passes` runs through the query file); its figures."""
    binary = shutil.which("dnsperf")
    if binary is None:
        raise SystemExit("dnsperf is not installed (Debian package dnsperf)")
    limit = ["-n", str(passes)] if passes is not None else ["-l", str(seconds)]
    if max_qps is not None:
        limit += ["-Q", str(max_qps)]
    result = subprocess.run(
        [binary, "-s", LOOPBACK, "-a", LOOPBACK, "-p", str(port), "-d", str(queries), *limit,
         "-c", str(clients), "-q", str(outstanding), "-D", "-t", "1"],
        capture_output=True, text=True, check=True,
    )
    figures = {}
    for label, key in (("Queries per second", "qps"), ("Queries completed", "completed"),
                       ("Queries sent", "sent"), ("Queries lost", "lost")):
        match = re.search(rf"{label}:\s+([\d.]+)", result.stdout)
        figures[key] = float(match.group(1)) if match else 0.0
    return figures


def start_embedded(zone_file: Path, port: int, rrl: int | None,
                   workers: int, python_loop: bool = False) -> subprocess.Popen[bytes]:
    command = [sys.executable, __file__, "--serve", str(zone_file), "--port", str(port),
               "--rrl", str(rrl or 0), "--workers", str(workers),
               *(["--python-loop"] if python_loop else [])]
    process = subprocess.Popen(command, stdout=subprocess.PIPE)
    wait_until_served(port, process)
    return process


def stop(process: subprocess.Popen[bytes]) -> bytes:
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=20)
    return output or b""


def start_knot(workdir: Path, zone_file: Path, port: int,
               workers: int) -> subprocess.Popen[bytes]:
    binary = shutil.which("knotd") or shutil.which("knotd", path="/usr/sbin")
    if binary is None:
        raise SystemExit("knotd is not installed (Debian package knot)")
    config = workdir / "knot.conf"
    config.write_text(f"""server:
    rundir: "{workdir}"
    listen: {LOOPBACK}@{port}
    udp-workers: {workers}
    tcp-workers: 1
    background-workers: 1
database:
    storage: "{workdir}"
log:
  - target: stderr
    any: error
zone:
  - domain: {ORIGIN}
    storage: "{workdir}"
    file: "{zone_file.name}"
    journal-content: none
    zonefile-sync: -1
""")
    process = subprocess.Popen([binary, "-c", str(config)], stdout=subprocess.DEVNULL)
    wait_until_served(port, process)
    return process


def socket_drops(port: int) -> int | None:
    """Datagrams the kernel dropped at the UDP sockets on `port` (one per process), their
    buffers full (Linux)."""
    table = Path("/proc/net/udp")
    if not table.exists():
        return None
    return sum(int(fields[-1]) for fields in map(str.split, table.read_text().splitlines()[1:])
               if fields[1].endswith(f":{port:04X}"))


def plural(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


def legitimate_client(port: int, stop_event: threading.Event, results: list[bool]) -> None:
    query = dns.message.make_query("host1.bench.example.", "A")
    while not stop_event.is_set():
        started = time.monotonic()
        try:
            response = dns.query.udp(query, LOOPBACK, port=port, timeout=1.0,
                                     source=LEGITIMATE_CLIENT, ignore_trailing=True)
            results.append(response.rcode() == dns.rcode.NOERROR and bool(response.answer))
        except dns.exception.Timeout:
            results.append(False)
        stop_event.wait(max(0.0, 0.05 - (time.monotonic() - started)))


def serve(zone_file: Path, port: int, rrl: int | None, workers: int,
          python_loop: bool = False) -> None:
    """The embedded server process (and its workers): serve until SIGTERM, then print the RRL
    counters of every process added up."""
    limiter = RateLimiter(rrl, native_buckets=not python_loop) if rrl is not None else None
    table = WatchedTable([load_zone(zone_file)])
    server = DnsServer(table, rrl=limiter, native_loop=not python_loop)
    totals: dict[str, int] = {}

    async def run() -> None:
        await server.start(LOOPBACK, port, reuse_port=workers > 1)
        children = DnsWorkers(workers, table, keyring={}, allowed_keys=lambda origin: (),
                              rate_limiter=limiter, log_level="warning")
        await children.start(LOOPBACK, server.port)
        stopping = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
        await stopping.wait()
        if limiter is not None:
            counted = [limiter.counters, *await children.counters()]
            for key in ("answered", "dropped", "slipped"):
                totals[key] = sum(getattr(counters, key) for counters in counted)
        await children.close()
        await server.close()

    asyncio.run(run())
    print(json.dumps(totals), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--names", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--nsec3", action="store_true")
    parser.add_argument("--workers", type=int, default=1,
                        help="processes of the embedded server (SO_REUSEPORT)")
    parser.add_argument("--knot-workers", type=int, default=None,
                        help="Knot's UDP workers (default: as many as --workers)")
    parser.add_argument("--rrl", type=int, default=200)
    parser.add_argument("--flood-qps", type=int, default=15_000)
    parser.add_argument("--flood-names", type=int, default=1_000_000)
    parser.add_argument("--python-loop", action="store_true",
                        help="answer every datagram in Python, without the C loop "
                             "(regshield/dns/udp.py), to compare the two (one process only)")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        serve(args.serve, args.port, args.rrl if args.rrl > 0 else None, args.workers,
              args.python_loop)
        return
    if args.python_loop and args.workers > 1:
        raise SystemExit("--python-loop: with one process only (workers start their own loop)")
    knot_workers = args.knot_workers or args.workers

    with tempfile.TemporaryDirectory(prefix="regshield-bench-") as directory:
        workdir = Path(directory)
        zone_file = workdir / "bench.example.zone"
        queries = workdir / "queries.txt"
        random_names = workdir / "random-names.txt"
        started = time.perf_counter()
        write_signed_zone(zone_file, args.names, args.nsec3)
        write_queries(queries, args.names)
        write_random_names(random_names, args.flood_names, args.names)
        print(f"zone: {args.names} names, {'NSEC3' if args.nsec3 else 'NSEC'}, signed and "
              f"written in {time.perf_counter() - started:.1f} s; dnsperf -D, "
              f"{args.clients} clients, {args.seconds:g} s each, {os.cpu_count()} cores; "
              f"the embedded server's UDP loop in "
              f"{'Python' if args.python_loop or native is None else 'C'}")

        port = free_port()
        embedded = start_embedded(zone_file, port, rrl=None, workers=args.workers,
                                  python_loop=args.python_loop)
        try:
            ours_cold = dnsperf(port, queries, args.seconds, args.clients, passes=1)
            if args.workers > 1:
                # Each process builds its own answers, and sees only the questions sent from
                # the source ports hashed to it: more passes from more sockets warm them all.
                dnsperf(port, queries, args.seconds, 4 * args.workers * args.clients,
                        passes=2 * args.workers)
            ours = dnsperf(port, queries, args.seconds, args.clients)
            ours_random = dnsperf(port, random_names, args.seconds, args.clients)
        finally:
            stop(embedded)
        port = free_port()
        knot = start_knot(workdir, zone_file, port, knot_workers)
        try:
            dnsperf(port, queries, args.seconds, args.clients, passes=1)
            theirs = dnsperf(port, queries, args.seconds, args.clients)
            theirs_random = dnsperf(port, random_names, args.seconds, args.clients)
        finally:
            knot.terminate()
            knot.wait(timeout=20)
        print(f"regshield embedded, first pass (answers built): {ours_cold['qps']:10.0f} qps")
        print(f"regshield embedded ({plural(args.workers, 'process', 'processes')}): "
              f"{ours['qps']:10.0f} qps, {ours['qps'] / args.workers:10.0f} per core  "
              f"(lost {ours['lost']:.0f})")
        print(f"Knot DNS ({plural(knot_workers, 'UDP worker', 'UDP workers')}): "
              f"{theirs['qps']:10.0f} qps, {theirs['qps'] / knot_workers:10.0f} per core  "
              f"(lost {theirs['lost']:.0f})")
        print(f"ratio: regshield serves {ours['qps'] / theirs['qps']:.2f}x Knot DNS's qps, "
              f"{(ours['qps'] / args.workers) / (theirs['qps'] / knot_workers):.2f}x per core")
        if args.workers + 1 > (os.cpu_count() or 1):
            print(f"  (dnsperf shares the {os.cpu_count()} cores with the servers: figures per "
                  "core are below what a core gives with the load generator elsewhere)")
        for figures in (ours_random, theirs_random):
            if figures["sent"] >= args.flood_names:
                print(f"warning: {figures['sent']:.0f} queries sent from {args.flood_names} "
                      "names: some were asked twice (raise --flood-names)")
        print(f"random-name flood ({'NSEC3' if args.nsec3 else 'NSEC'}, DO, every name new):")
        print(f"  regshield embedded: {ours_random['qps']:10.0f} qps  "
              f"(lost {ours_random['lost']:.0f})")
        print(f"  Knot DNS:           {theirs_random['qps']:10.0f} qps  "
              f"(lost {theirs_random['lost']:.0f})")
        per_core = (ours_random["qps"] / args.workers) / (theirs_random["qps"] / knot_workers)
        print(f"  ratio: regshield serves {ours_random['qps'] / theirs_random['qps']:.2f}x "
              f"Knot DNS's qps, {per_core:.2f}x per core")

        port = free_port()
        limited = start_embedded(zone_file, port, rrl=args.rrl, workers=args.workers,
                                 python_loop=args.python_loop)
        stop_event = threading.Event()
        results: list[bool] = []
        client = threading.Thread(target=legitimate_client, args=(port, stop_event, results))
        client.start()
        try:
            seconds = min(args.seconds, 5)
            # Dropped queries hold dnsperf's slots until its timeout: many slots keep it
            # flooding, and a steady rate keeps it from sending them all back at once.
            attack = dnsperf(port, queries, seconds, args.clients, outstanding=50_000,
                             max_qps=args.flood_qps)
        finally:
            stop_event.set()
            client.join()
            drops = socket_drops(port)
            counters = json.loads(stop(limited).decode().strip().splitlines()[-1])
        legitimate_answers = sum(results)
        attacker_answered = counters["answered"] - legitimate_answers
        print(f"RRL {args.rrl}/s per prefix in each process, slip 2, {seconds:g} s flood "
              f"from {LOOPBACK}:")
        print(f"  attacker sent {attack['sent']:.0f} queries "
              f"({attack['sent'] / seconds:.0f}/s): {attacker_answered / seconds:.0f} full "
              f"answers/s, {counters['slipped'] / seconds:.0f} truncated/s, "
              f"{counters['dropped'] / seconds:.0f} dropped/s")
        print(f"  legitimate client on {LEGITIMATE_CLIENT}: {legitimate_answers}/{len(results)} "
              f"answered ({100 * legitimate_answers / max(1, len(results)):.1f} %)")
        if drops is not None:
            print(f"  queries the kernel dropped before the server read them "
                  f"(socket buffer full): {drops}")


if __name__ == "__main__":
    main()
