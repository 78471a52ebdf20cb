"""Restart benchmark: `regshield serve` killed with SIGKILL and started again, with zones hosted.

A fresh installation (SQLite in a temporary directory) hosts one signed zone of N records (by
default 100,000: half delegations with DS and glue, half A records) and M small signed zones
(by default 10,000), made through the same flows the API runs. `regshield serve` (a process of
its own, as an operator runs it, with its DNS and HTTP workers) signs and serves them all;
then it is killed with SIGKILL (the whole process group, workers included), and while it is
down one RRset is changed in the large zone and in 100 small ones. It is started again and
the benchmark reports, from the moment it was started:

- until HTTP answers (`GET /rdap/help`);
- until DNS answers for a zone, for every small zone, and for every zone (an SOA query to
  each one gets an authoritative answer; the large zone answers SERVFAIL while it is read).
  The prober asks every zone not yet current about every 70 ms (tens of thousands of queries
  a second, exempt from RRL): a flood that the serving process answers while it reads;
- until every zone is current (each SOA has the serial the store holds: the edits made while
  it was down are published).

The same restart is then measured cold, as before zones were kept in the store: the stored
copies are deleted while it is down, so every zone is signed again at start. That line is the
peer. Goals (issue "Restart in seconds"): HTTP and DNS within 2 s, every zone served at once
from its last published state.

    .venv/bin/python bench/restart.py [--records 100000] [--small 10000] [--nsec3]
                                      [--skip-cold] [--keep DIR | --start-from DIR]

`--keep DIR` saves the installation as the kill left it (before the edits) in DIR;
`--start-from DIR` begins there instead of hosting and signing every zone again (minutes), so
that a change can be measured against the same state more than once.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
from api import BenchFailure, cli, executable, free_port, tail
from publish import zone_file

from regshield import logs
from regshield.config import Settings
from regshield.flows.accounts import AccountCreate
from regshield.flows.context import RequestContext, system_actor
from regshield.flows.runner import run_flow
from regshield.flows.zones import RRsetPut, ZoneCreate, ZoneImport
from regshield.services import Services

LARGE = "bench.example"
EDITED_SMALL = 100
DEADLINE = 1800.0  # seconds a start may take before the benchmark gives up


def small_name(index: int) -> str:
    return f"r{index}.example"


def write_config(home: Path, dns_port: int) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "regshield.toml").write_text(f"""\
[sandbox]
listen = "127.0.0.1:{free_port()}"
dns_listen = "off"

[dns]
listen = "127.0.0.1:{dns_port}"

[dns.rrl]
exempt_networks = ["127.0.0.0/8"]
""")


async def host_zones(home: Path, records: int, small: int, nsec3: bool) -> None:
    settings = Settings.load(home=home)
    services = Services.open(settings)
    actor, context = system_actor("bench"), RequestContext("cli")
    denial = "nsec3" if nsec3 else "nsec"
    try:
        account = await run_flow(services, actor, context, AccountCreate("Bench"))
        await run_flow(services, actor, context, ZoneCreate(
            LARGE, denial=denial, account=account.public_id))
        await run_flow(services, actor, context, ZoneImport(LARGE, zone_file(records)))
        started = time.monotonic()
        for index in range(small):
            await run_flow(services, actor, context, ZoneCreate(
                small_name(index), denial=denial, account=account.public_id))
            await run_flow(services, actor, context, RRsetPut(
                small_name(index), "www", "A", 300, [f"192.0.2.{index % 250 + 1}"]))
            if index and index % 2000 == 0:
                print(f"  {index:,} small zones hosted ({time.monotonic() - started:.0f} s)",
                      flush=True)
    finally:
        await services.close()


async def edit_while_down(home: Path, round_: int, small: int) -> None:
    """One RRset changed in the large zone and in EDITED_SMALL small ones."""
    services = Services.open(Settings.load(home=home))
    actor, context = system_actor("bench"), RequestContext("cli")
    try:
        for zone in (LARGE, *(small_name(index) for index in range(min(small, EDITED_SMALL)))):
            await run_flow(services, actor, context, RRsetPut(
                zone, "edited", "TXT", 300, [f'"edited while down, round {round_}"']))
    finally:
        await services.close()


def stored_serials(home: Path) -> dict[str, int]:
    with sqlite3.connect(home / "regshield.db") as db:
        return {name.rstrip("."): serial for name, serial in db.execute(
            "SELECT name, serial FROM zones WHERE deleted_at IS NULL")}


class Prober(asyncio.DatagramProtocol):
    """SOA queries to zones; each authoritative answer noted by the zone it names."""

    def __init__(self) -> None:
        self.serials: dict[str, int] = {}
        self.answered: set[str] = set()
        self.queries: dict[str, bytes] = {}  # made once: the prober must not take the CPU
        self.transport: asyncio.DatagramTransport | None = None

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(data) < 12 or data[3] & 0x0F or not data[2] & 0x04:  # refused, or not AA
            return
        try:
            message = dns.message.from_wire(data)
        except Exception:
            return
        if message.rcode() != dns.rcode.NOERROR or not message.flags & dns.flags.AA \
                or not message.answer or not message.question:
            return
        zone = message.question[0].name.to_text().rstrip(".")
        self.answered.add(zone)
        self.serials[zone] = int(message.answer[0][0].serial)

    async def ask(self, port: int, zones: list[str]) -> None:
        assert self.transport is not None
        for number, zone in enumerate(zones):
            wire = self.queries.get(zone)
            if wire is None:
                wire = self.queries[zone] = dns.message.make_query(
                    dns.name.from_text(zone), dns.rdatatype.SOA).to_wire()
            self.transport.sendto(wire, ("127.0.0.1", port))
            if number % 200 == 199:
                await asyncio.sleep(0.001)  # let answers in
        await asyncio.sleep(0.05)


async def http_answers(port: int) -> bool:
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port), 0.5)
    except (OSError, TimeoutError):
        return False
    try:
        writer.write(b"GET /rdap/help HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        line = await asyncio.wait_for(reader.readline(), 1)
        return line.startswith(b"HTTP/1.1 200")
    except (OSError, TimeoutError):
        return False
    finally:
        writer.close()


async def watch_start(http_port: int, dns_port: int, expected: dict[str, int],
                      process: subprocess.Popen[bytes], log: Path) -> dict[str, float]:
    """Seconds from now until HTTP answers, DNS answers every zone, every zone is current."""
    started = time.monotonic()
    loop = asyncio.get_running_loop()
    prober = Prober()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: prober, local_addr=("127.0.0.1", 0))
    prober.transport = transport
    marks: dict[str, float] = {}
    try:
        while len(marks) < 5:
            if process.poll() is not None:
                raise BenchFailure(f"serve exited with {process.returncode}:\n{tail(log)}")
            if time.monotonic() - started > DEADLINE:
                raise BenchFailure(f"not current after {DEADLINE:.0f} s:\n{tail(log)}")
            if "http" not in marks and await http_answers(http_port):
                marks["http"] = time.monotonic() - started
            stale = [zone for zone, serial in expected.items()
                     if prober.serials.get(zone) != serial]
            if stale:
                await prober.ask(dns_port, stale)
            now = time.monotonic() - started
            if "first" not in marks and prober.answered:
                marks["first"] = now
            if "small" not in marks and len(prober.answered - {LARGE}) == len(expected) - 1:
                marks["small"] = now
            if "dns" not in marks and len(prober.answered) == len(expected):
                marks["dns"] = now
            if "current" not in marks and all(
                    prober.serials.get(zone) == serial for zone, serial in expected.items()):
                marks["current"] = now
            await asyncio.sleep(0.02)
    finally:
        transport.close()
    return marks


def start(base: list[str], http_port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("REGSHIELD_MASTER_KEY", "REGSHIELD_DATABASE_URL", "REGSHIELD_HOME")}
    with log.open("ab") as out:
        return subprocess.Popen([*base, "serve", "--http", f"127.0.0.1:{http_port}"],
                                stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env, start_new_session=True)


def kill(process: subprocess.Popen[bytes]) -> None:
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def queued_publications(home: Path) -> int:
    """Publications still queued (`dns:publish` outbox rows): a restart runs them too."""
    with sqlite3.connect(home / "regshield.db") as db:
        (count,) = db.execute("SELECT count(*) FROM outbox WHERE kind = 'dns:publish' "
                              "AND completed_at IS NULL AND NOT failed").fetchone()
    return int(count)


def forget_published(home: Path) -> None:
    with sqlite3.connect(home / "regshield.db") as db:
        db.execute("DELETE FROM zone_journal")
        db.execute("DELETE FROM published_zones")


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--nsec3", action="store_true")
    parser.add_argument("--skip-cold", action="store_true")
    parser.add_argument("--keep", type=Path, help="save the state the kill left here")
    parser.add_argument("--start-from", type=Path, help="begin from a state --keep saved")
    parser.add_argument("--serve-log", type=Path, help="write what serve logs here")
    args = parser.parse_args()
    logs.configure("warning")
    with tempfile.TemporaryDirectory(prefix="regshield-restart-") as directory:
        tmp = Path(directory)
        home = tmp / "home"
        http_port, dns_port = free_port(), free_port()
        write_config(home, dns_port)
        base = [executable("regshield"), "--home", str(home)]
        log = args.serve_log or tmp / "serve.log"
        try:
            process: subprocess.Popen[bytes] | None = None
            if args.start_from is not None:
                shutil.rmtree(home)
                shutil.copytree(args.start_from, home)
                write_config(home, dns_port)
                print(f"starting from {args.start_from}", flush=True)
            else:
                cli(base, "init")
                print(f"hosting one zone of {args.records:,} records and {args.small:,} "
                      f"small zones ({'NSEC3' if args.nsec3 else 'NSEC'})", flush=True)
                began = time.monotonic()
                asyncio.run(host_zones(home, args.records, args.small, args.nsec3))
                print(f"  hosted in {time.monotonic() - began:.0f} s", flush=True)
                process = start(base, http_port, log)
                marks = asyncio.run(watch_start(http_port, dns_port, stored_serials(home),
                                                process, log))
                print(f"first start (every zone signed): every zone served after "
                      f"{marks['current']:.1f} s", flush=True)
            results: list[tuple[str, dict[str, float]]] = []
            queued: list[int] = []
            for round_, cold in enumerate([False] if args.skip_cold else [False, True]):
                if process is not None:
                    kill(process)
                if round_ == 0 and args.keep is not None:
                    shutil.copytree(home, args.keep, dirs_exist_ok=True)
                asyncio.run(edit_while_down(home, round_, args.small))
                queued.append(queued_publications(home))
                if cold:
                    forget_published(home)
                process = start(base, http_port, log)
                marks = asyncio.run(watch_start(http_port, dns_port, stored_serials(home),
                                                process, log))
                results.append(("cold (nothing kept: signed at start)" if cold
                                else "regshield (published zones kept)", marks))
            if process is not None:
                kill(process)
        except BenchFailure as failure:
            print(f"FAILED: {failure}", file=sys.stderr)
            return 1
        zones = 1 + args.small
        print(f"\nafter kill -9 and a restart ({zones:,} zones, "
              f"{min(args.small, EDITED_SMALL) + 1} of them "
              "edited while down), seconds from the start:")
        print(f"  (publications queued at the restart, the edits' and those the kill left "
              f"unrun: {', '.join(f'{count:,}' for count in queued)}; \"every zone current\" "
              "includes running them)")
        print(f"  {'':40}{'HTTP':>8}{'DNS, a zone':>13}{'DNS, small zones':>18}"
              f"{'DNS, every zone':>17}{'every zone current':>20}")
        for label, marks in results:
            print(f"  {label:40}{marks['http']:8.1f}{marks['first']:13.1f}"
                  f"{marks['small']:18.1f}{marks['dns']:17.1f}{marks['current']:20.1f}")
        kept = results[0][1]
        met = kept["http"] <= 2 and kept["dns"] <= 2
        print(f"goal (HTTP and DNS within 2 s, every zone at once from its last published "
              f"state): {'met' if met else 'NOT met'}")
        if len(results) > 1:
            peer = results[1][1]
            print(f"ratio cold / kept: DNS {peer['dns'] / kept['dns']:.1f}x, "
                  f"current {peer['current'] / kept['current']:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
