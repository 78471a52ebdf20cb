"""Event loop lag while a large zone is imported and signed: DNS and API answers meanwhile.

One real `regshield serve` (SQLite, a fresh data directory) hosts a small signed zone and
answers two steady probes from this process: a DNS query for a name of the small zone every
10 ms, and an authenticated API read (`GET /api/v1/zones/<small zone>`) every 20 ms, each
with its own connection or socket, each timed. The probes first run for a quiet phase; then
a zone file of N records (by default 100,000: half delegations with DS and glue, half A
records) is imported with `regshield zone import`, and `serve` publishes it: it reads the
records, signs the zone, builds the server's index of it and stores what it serves. The busy
phase lasts until the large zone answers with its serial. Each phase prints the probes' p50,
p99 and worst latency and how many went unanswered (1 s timeout): the quiet phase is the
reference, and the goal is p99 under 50 ms in the busy phase.

    .venv/bin/python bench/lag.py [--records 100000] [--quiet-seconds 10] [--serve-log PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import secrets
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import dns.asyncquery
import dns.exception
import dns.message
import dns.name
import dns.rdatatype
from api import BenchFailure, cli, executable, free_port, server
from publish import zone_file
from restart import write_config
from stats import percentile_ms

from regshield import logs
from regshield.processes import SLOW_COLLECTION_SECONDS

SMALL = "small.example"
LARGE = "bench.example"
GOAL_MS = 50.0


@dataclass
class Probe:
    name: str
    samples: list[float] = field(default_factory=list)
    at: list[float] = field(default_factory=list)  # when each sample was taken (monotonic)
    missed: int = 0

    def during(self, start: float, end: float) -> Probe:
        """The samples taken between `start` and `end`."""
        part = Probe(self.name)
        part.samples = [sample for sample, moment in zip(self.samples, self.at, strict=True)
                        if start <= moment < end]
        return part

    def line(self) -> str:
        if not self.samples:
            return f"  {self.name:6} no answers ({self.missed} unanswered)"
        return (f"  {self.name:6} {len(self.samples):6,} answers   p50 "
                f"{percentile_ms(self.samples, 50):7.1f} ms   p99 "
                f"{percentile_ms(self.samples, 99):7.1f} ms   worst "
                f"{max(self.samples) * 1000:7.1f} ms   unanswered {self.missed}")


async def probe_dns(port: int, probe: Probe, stop: asyncio.Event) -> None:
    query = dns.message.make_query(f"www.{SMALL}.", dns.rdatatype.A)
    while not stop.is_set():
        started = time.perf_counter()
        try:
            await dns.asyncquery.udp(query, "127.0.0.1", port=port, timeout=1)
            probe.samples.append(time.perf_counter() - started)
            probe.at.append(time.monotonic())
        except dns.exception.Timeout:
            probe.missed += 1
        await asyncio.sleep(max(0.0, 0.01 - (time.perf_counter() - started)))


async def probe_api(port: int, token: str, probe: Probe, stop: asyncio.Event) -> None:
    request = (f"GET /api/v1/zones/{SMALL} HTTP/1.1\r\nHost: bench\r\n"
               f"Authorization: Bearer {token}\r\n\r\n").encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while not stop.is_set():
            started = time.perf_counter()
            try:
                async with asyncio.timeout(1):
                    writer.write(request)
                    head = await reader.readuntil(b"\r\n\r\n")
                    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                                      if line.lower().startswith(b"content-length")))
                    await reader.readexactly(length)
                if not head.startswith(b"HTTP/1.1 200"):
                    raise BenchFailure(f"the API answered {head.splitlines()[0]!r}")
                probe.samples.append(time.perf_counter() - started)
                probe.at.append(time.monotonic())
            except TimeoutError:
                probe.missed += 1
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            await asyncio.sleep(max(0.0, 0.02 - (time.perf_counter() - started)))
    finally:
        writer.close()


async def large_serial(port: int) -> int | None:
    query = dns.message.make_query(f"{LARGE}.", dns.rdatatype.SOA)
    try:
        answer = await dns.asyncquery.udp(query, "127.0.0.1", port=port, timeout=1)
    except dns.exception.Timeout:
        return None
    return int(answer.answer[0][0].serial) if answer.answer else None


async def phases(base: list[str], http_port: int, dns_port: int, token: str,
                 records: int, quiet: float) -> list[tuple[str, float, Probe, Probe]]:
    query = dns.message.make_query(f"www.{SMALL}.", dns.rdatatype.A)
    for _ in range(600):  # DNS listens once the zones are served, after HTTP
        try:
            if (await dns.asyncquery.udp(query, "127.0.0.1", port=dns_port, timeout=0.2)).answer:
                break
        except (dns.exception.Timeout, OSError):
            pass
        await asyncio.sleep(0.1)
    else:
        raise BenchFailure("DNS did not answer for the small zone")
    results = []
    imported = 0.0
    for phase in ("quiet", "busy"):
        stop = asyncio.Event()
        dns_probe, api_probe = Probe("DNS"), Probe("API")
        probes = [asyncio.create_task(probe_dns(dns_port, dns_probe, stop)),
                  asyncio.create_task(probe_api(http_port, token, api_probe, stop))]
        started = time.monotonic()
        if phase == "quiet":
            await asyncio.sleep(quiet)
        else:
            text = zone_file(records)
            output = await asyncio.to_thread(cli, base, "zone", "import", LARGE, "-",
                                             "--account", "bench", stdin=text)
            serial = int(output.split(" serial ")[1].split(":")[0])
            imported = time.monotonic() - started
            while await large_serial(dns_port) != serial:
                if time.monotonic() - started > 1800:
                    raise BenchFailure("the large zone was not served within 30 minutes")
                await asyncio.sleep(0.2)
        stop.set()
        await asyncio.gather(*probes)
        if phase == "busy":
            published = time.monotonic() - started - imported
            print(f"the import (`regshield zone import`, a process of its own) took "
                  f"{imported:.0f} s; serve published the zone {published:.0f} s later",
                  flush=True)
            split = started + imported
            for label, start, end in (("while the import ran", started, split),
                                      ("while serve published", split, float("inf"))):
                print(f"  {label}:")
                print("  " + dns_probe.during(start, end).line())
                print("  " + api_probe.during(start, end).line())
        results.append((phase, time.monotonic() - started, dns_probe, api_probe))
    return results


def slow_collections(log: Path) -> list[float]:
    """The length of each collection `serve` logged as holding it (processes.py)."""
    found = []
    for line in log.read_text(errors="replace").splitlines():
        if "runtime.collection_slow" in line:
            match = re.search(r"seconds[=\"': ]+([0-9.]+)", line)
            if match:
                found.append(float(match.group(1)))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--quiet-seconds", type=float, default=10)
    parser.add_argument("--serve-log", type=Path, help="write what serve logs here")
    args = parser.parse_args()
    logs.configure("warning")
    with tempfile.TemporaryDirectory(prefix="regshield-lag-") as directory:
        tmp = Path(directory)
        home = tmp / "home"
        http_port, dns_port = free_port(), free_port()
        write_config(home, dns_port)
        with (home / "regshield.toml").open("a") as config:  # the probes are no flood
            config.write("\n[limits]\napi_per_minute = 60000\napi_burst = 5000\n")
        base = [executable("regshield"), "--home", str(home)]
        try:
            cli(base, "init")
            cli(base, "account", "create", "bench")
            cli(base, "zone", "import", SMALL, "-", "--account", "bench",
                stdin=f"$ORIGIN {SMALL}.\n@ 3600 IN NS ns1.regshield.test.\n"
                f"@ 3600 IN NS ns2.regshield.test.\nwww 300 IN A 192.0.2.1\n")
            password = secrets.token_urlsafe(18)
            cli(base, "user", "create", "owner@bench.example", "--role", "owner",
                "--account", "bench", "--password-stdin", stdin=password + "\n")
            token = cli(base, "token", "create", "owner@bench.example", "--name",
                        "lag").strip().splitlines()[-1]
            log = args.serve_log or tmp / "serve.log"
            with server([*base, "serve", "--http", f"127.0.0.1:{http_port}"], http_port, log):
                results = asyncio.run(phases(base, http_port, dns_port, token,
                                             args.records, args.quiet_seconds))
            collections = slow_collections(log)
        except BenchFailure as failure:
            print(f"FAILED: {failure}", file=sys.stderr)
            return 1
    print("event loop lag: probes answered by `regshield serve` (NSEC)")
    for phase, seconds, dns_probe, api_probe in results:
        what = ("nothing else to do" if phase == "quiet" else
                f"a zone of {args.records:,} records imported, signed and served")
        print(f"{phase} ({seconds:.0f} s, {what}):")
        print(dns_probe.line())
        print(api_probe.line())
    print(f"garbage collections that held `serve` {SLOW_COLLECTION_SECONDS * 1000:.0f} ms or "
          f"more (`runtime.collection_slow`): {len(collections)}"
          + (f", the longest {max(collections) * 1000:.0f} ms" if collections else ""))
    busy = results[1]
    worst = max(percentile_ms(busy[2].samples, 99), percentile_ms(busy[3].samples, 99))
    met = worst < GOAL_MS and busy[2].missed == busy[3].missed == 0
    print(f"goal (p99 under {GOAL_MS:.0f} ms while the zone is imported and signed, nothing "
          f"unanswered): {'met' if met else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
