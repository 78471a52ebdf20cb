"""Zone signing benchmark: regshield's signer beside dnspython's `dns.dnssec.sign_zone`.

Builds one zone of N records (by default 10,000: hosts with A and AAAA records, and one name in
twenty a delegation with NS, DS and glue), then signs it with the same KSK and ZSK
(ECDSAP256SHA256 by default) once with `regshield.dnssec.sign_zone` and once with dnspython,
each on a fresh copy of the zone loaded the same way (absolute names unless `--relativize`),
and prints both times, the RRSIGs made per second and the
ratio. A sample of regshield's signatures is checked with `dns.dnssec.validate` so that the
figure is for correct output.

    .venv/bin/python bench/sign.py [--records 10000] [--algorithm 13|15] [--repeat 1]
                                   [--relativize]
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta

import dns.dnssec
import dns.name
import dns.rdatatype
import dns.zone

from regshield.dnssec import KSK_FLAGS, ZSK_FLAGS, generate_key, sign_zone

ORIGIN = dns.name.from_text("bench.example.")


def zone_text(records: int) -> str:
    """A zone of about `records` records below the SOA, NS and glue of the apex."""
    lines = [
        "$TTL 3600",
        "@ IN SOA ns1 hostmaster 1 7200 900 1209600 300",
        "@ IN NS ns1",
        "ns1 IN A 192.0.2.1",
    ]
    count = 0
    index = 0
    while count < records:
        name = f"host{index}"
        if index % 20 == 19:
            lines += [
                f"{name} IN NS ns.{name}",
                f"{name} IN DS 12345 13 2 {'ab' * 32}",
                f"ns.{name} IN A 198.51.100.{index % 250 + 1}",
            ]
            count += 3
        else:
            lines += [
                f"{name} IN A 192.0.2.{index % 250 + 1}",
                f"{name} IN AAAA 2001:db8::{index % 65535:x}",
            ]
            count += 2
        index += 1
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--algorithm", type=int, default=13, choices=(13, 15))
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--relativize", action="store_true",
                        help="load the zone with relative names (dnspython's default)")
    args = parser.parse_args()
    relativize = args.relativize

    text = zone_text(args.records)
    ksk = generate_key(args.algorithm, KSK_FLAGS)
    zsk = generate_key(args.algorithm, ZSK_FLAGS)
    inception = datetime.now(UTC) - timedelta(hours=1)
    expiration = inception + timedelta(days=14)

    ours: list[float] = []
    theirs: list[float] = []
    signatures = 0
    for _ in range(args.repeat):
        zone = dns.zone.from_text(text, origin=ORIGIN, relativize=relativize)
        started = time.perf_counter()
        signed = sign_zone(zone, [ksk, zsk], inception, expiration)
        ours.append(time.perf_counter() - started)
        signatures = sum(len(r) for r in signed if r.rdtype == dns.rdatatype.RRSIG)

        zone = dns.zone.from_text(text, origin=ORIGIN, relativize=relativize)
        started = time.perf_counter()
        dns.dnssec.sign_zone(
            zone,
            keys=[(ksk.private_key, ksk.dnskey), (zsk.private_key, zsk.dnskey)],
            inception=inception,
            expiration=expiration,
        )
        theirs.append(time.perf_counter() - started)

    dnskeys = {ORIGIN: next(r for r in signed if r.rdtype == dns.rdatatype.DNSKEY)}
    covered = {(r.name, r.rdtype): r for r in signed if r.rdtype != dns.rdatatype.RRSIG}
    for rrsigs in [r for r in signed if r.rdtype == dns.rdatatype.RRSIG][::97]:
        dns.dnssec.validate(covered[(rrsigs.name, rrsigs.covers)], rrsigs, dnskeys)  # type: ignore[arg-type]

    best_ours, best_theirs = min(ours), min(theirs)
    print(f"zone: {args.records} records, algorithm {args.algorithm}, {signatures} RRSIGs, "
          f"relativize={relativize}; best of {args.repeat}")
    print(f"regshield  sign_zone: {best_ours:8.3f} s  {signatures / best_ours:9.0f} RRSIG/s")
    print(f"dnspython  sign_zone: {best_theirs:8.3f} s  {signatures / best_theirs:9.0f} RRSIG/s")
    print(f"ratio: regshield is {best_theirs / best_ours:.2f}x as fast as dnspython")


if __name__ == "__main__":
    main()
