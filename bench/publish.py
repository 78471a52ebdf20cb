"""From one RRset change to the NOTIFY leaving, in a signed zone of N records (default 100,000).

A fresh installation (SQLite in a temporary directory) hosts a zone whose records are half
delegations (NS, DS and glue) and half A records, imported through the zone-file flow and
signed once by the publisher. A listener on 127.0.0.1 stands in as the secondary: it answers
each NOTIFY as a secondary does (RFC 1996 section 4.7) and notes when it arrived. Then, R times,
one RRset is changed through the same flow the API runs (`RRsetPut`: checks, event, outbox row,
commit) and published (`Publisher.publish`: the changed rows read, the RRset, its chain links
and the SOA re-signed, the snapshot swapped in, NOTIFY sent). The time printed runs from the
start of the change to the NOTIFY's arrival, and is split into the flow's part and the
publisher's. The publisher's part is what the goal of 50 ms is about; the flow's part is the
same for every edit of any size of zone.

    .venv/bin/python bench/publish.py [--records 100000] [--changes 20] [--nsec3]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import tempfile
import time
from pathlib import Path

import dns.message
import dns.name
import dns.opcode
import dns.tsig
from stats import percentile_ms

from regshield import logs
from regshield.config import Settings
from regshield.dns.publisher import Publisher
from regshield.dns.tsig import make_key
from regshield.flows.accounts import AccountCreate
from regshield.flows.context import RequestContext, system_actor
from regshield.flows.runner import run_flow
from regshield.flows.zones import RRsetPut, SecondaryAdd, ZoneCreate, ZoneImport
from regshield.services import Services
from regshield.setup import initialize

ZONE = "bench.example"


def zone_file(records: int) -> str:
    """Half delegations (NS + DS + glue: 4 records each), half A records."""
    lines = [f"$ORIGIN {ZONE}.", "$TTL 3600", "@ NS ns1.regshield.test.",
             "@ NS ns2.regshield.test."]
    delegations = records // 2 // 4
    for index in range(delegations):
        lines += [f"d{index} NS ns1.d{index}", f"d{index} NS ns2.d{index}",
                  f"d{index} DS {10000 + index % 50000} 13 2 {index:064x}",
                  f"ns1.d{index} A 192.0.2.{index % 250 + 1}"]
    for index in range(records - delegations * 4):
        lines.append(f"h{index} A 198.51.100.{index % 250 + 1}")
    return "\n".join(lines) + "\n"


class Secondary(asyncio.DatagramProtocol):
    """Answers NOTIFY like a secondary and notes when each arrived."""

    def __init__(self) -> None:
        self.keyring: dict[dns.name.Name, dns.tsig.Key] = {}
        self.arrivals: list[float] = []
        self.transport: asyncio.DatagramTransport | None = None
        self.arrived = asyncio.Event()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        now = time.perf_counter()
        message = dns.message.from_wire(data, keyring=self.keyring)
        if message.opcode() == dns.opcode.NOTIFY:
            self.arrivals.append(now)
            self.arrived.set()
            assert self.transport is not None
            self.transport.sendto(dns.message.make_response(message).to_wire(), addr)


async def run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="regshield-bench-") as home:
        settings = Settings.load(home=Path(home), environ={"REGSHIELD_DNS_LISTEN": "off"})
        await initialize(settings)
        services = Services.open(settings)
        actor, context = system_actor("bench"), RequestContext("cli")
        loop = asyncio.get_running_loop()
        secondary = Secondary()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: secondary, local_addr=("127.0.0.1", 0), family=socket.AF_INET)
        secondary.transport = transport
        port = transport.get_extra_info("sockname")[1]
        publisher = Publisher(services)
        try:
            account = await run_flow(services, actor, context, AccountCreate("Bench"))
            await run_flow(services, actor, context, ZoneCreate(
                ZONE, denial="nsec3" if args.nsec3 else "nsec", account=account.public_id))
            started = time.perf_counter()
            report = await run_flow(services, actor, context,
                                    ZoneImport(ZONE, zone_file(args.records)))
            imported = time.perf_counter() - started
            added = await run_flow(services, actor, context,
                                   SecondaryAdd(ZONE, "127.0.0.1", port, "bench-xfr"))
            assert added.tsig_secret is not None
            key = make_key(added.tsig_key, added.tsig_secret)
            secondary.keyring[key.name] = key
            started = time.perf_counter()
            await publisher.publish(f"{ZONE}.")
            signed = time.perf_counter() - started
            served = publisher.table.get(dns.name.from_text(f"{ZONE}."))
            assert served is not None
            print(f"zone: {report.records} records in {report.rrsets} RRsets "
                  f"({'NSEC3' if args.nsec3 else 'NSEC'}); import {imported:.1f} s, "
                  f"first signing and publication {signed:.1f} s, "
                  f"{sum(len(r) for r in served.rrsets)} records served")
            flows, publications, totals = [], [], []
            for change in range(args.changes):
                secondary.arrived.clear()
                started = time.perf_counter()
                await run_flow(services, actor, context, RRsetPut(
                    ZONE, f"h{change}", "A", 3600, [f"203.0.113.{change % 250 + 1}"]))
                committed = time.perf_counter()
                await publisher.publish(f"{ZONE}.")
                await asyncio.wait_for(secondary.arrived.wait(), 10)
                arrived = secondary.arrivals[-1]
                flows.append(committed - started)
                publications.append(arrived - committed)
                totals.append(arrived - started)
                await publisher.settle()
            print(f"{args.changes} changes, each to the NOTIFY's arrival at the secondary:")
            for label, samples in (("the change (flow, commit)", flows),
                                   ("publication to NOTIFY", publications),
                                   ("total", totals)):
                print(f"  {label:28} median {percentile_ms(samples, 50):7.1f} ms   "
                      f"p90 {percentile_ms(samples, 90):7.1f} ms")
            goal = percentile_ms(publications, 50) < 50
            print(f"goal (publication to NOTIFY under 50 ms): {'met' if goal else 'NOT met'}")
        finally:
            await publisher.close()
            transport.close()
            await services.close()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--changes", type=int, default=20)
    parser.add_argument("--nsec3", action="store_true")
    args = parser.parse_args()
    logs.configure("warning")
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
