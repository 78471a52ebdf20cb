"""Zone signing benchmark: `regshield zone sign` beside ldns-signzone and dnssec-signzone.

Builds one zone of N records (by default 100,000), half of them delegations (NS and glue, a DS
on every other one) and half hosts (A and AAAA), then, for NSEC and for NSEC3 (RFC 9276: no
extra iterations, no salt), signs it with the same ECDSAP256SHA256 KSK and ZSK (made by
dnssec-keygen) by:

- `regshield zone sign --keys` (a process of its own, as an operator runs it),
- `ldns-signzone` (`-n -t 0` for NSEC3),
- `dnssec-signzone` (`-S` with the same keys as ldns; `-3 - -H 0` for NSEC3; `-P`: without its
  own post-signing check, which the others do not do either; it uses every CPU, as regshield
  does),

checks every output with `ldns-verify-zone`, and prints each wall time and its ratio to
ldns-signzone's. The regshield line also shows the signing time the command reports itself
(without the interpreter's start-up).

It then measures incremental signing: the zone is loaded into `regshield.dnssec.incremental
.SignedZone`, and single-RRset changes are applied, each timed from the call to the `ZoneDiff`
being ready (what the publisher hands to the transfer service; sending NOTIFY is not included),
and the steps of a ZSK rollover made in place.
Last, a restart's load: the signed zone as the publisher stores it (dns/wireform.py) is read
back and taken into the signer without signing (`SignedZone.restore`), timed beside
`regshield zone sign`'s own time for the same zone (goal: no more than 1.2x).

    .venv/bin/python bench/sign.py [--records 100000] [--repeat 1] [--changes 20]
                                   [--skip-incremental]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import dns.name
import dns.rdatatype
import dns.rrset
import dns.zone

from regshield.dns import wireform
from regshield.dnssec import KSK_FLAGS, ZSK_FLAGS, generate_key
from regshield.dnssec.incremental import SignedZone

ORIGIN = "bench.example."
REGSHIELD = str(Path(sys.executable).with_name("regshield"))


def zone_text(records: int) -> str:
    """A zone of about `records` records besides the apex: half delegations, half hosts."""
    lines = [
        f"$ORIGIN {ORIGIN}",
        "$TTL 3600",
        "@ IN SOA ns1 hostmaster 1 7200 900 1209600 300",
        "@ IN NS ns1",
        "ns1 IN A 192.0.2.1",
    ]
    count = 0
    index = 0
    while count < records:
        if index % 2:
            name = f"d{index}"
            lines += [f"{name} IN NS ns.{name}", f"ns.{name} IN A 198.51.100.{index % 250 + 1}"]
            count += 2
            if index % 4 == 1:
                lines.append(f"{name} IN DS 12345 13 2 {'ab' * 32}")
                count += 1
        else:
            name = f"h{index}"
            lines += [f"{name} IN A 192.0.2.{index % 250 + 1}",
                      f"{name} IN AAAA 2001:db8::{index % 65535:x}"]
            count += 2
        index += 1
    return "\n".join(lines) + "\n"


def need(binary: str) -> str:
    path = shutil.which(binary)
    if path is None:
        sys.exit(f"{binary} is not installed (scripts/test-services installs it)")
    return path


def timed(command: list[str], cwd: Path) -> tuple[float, str]:
    started = time.perf_counter()
    completed = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if completed.returncode != 0:
        sys.exit(f"{command[0]} failed:\n{completed.stdout}{completed.stderr}")
    return elapsed, completed.stdout


def verified(path: Path) -> None:
    completed = subprocess.run([need("ldns-verify-zone"), str(path)], capture_output=True,
                               text=True, check=False)
    if completed.returncode != 0:
        sys.exit(f"ldns-verify-zone rejects {path.name}:\n{completed.stdout}{completed.stderr}")


def bind_keys(directory: Path) -> list[str]:
    directory.mkdir()
    keygen = need("dnssec-keygen")
    names = []
    for extra in (["-f", "KSK"], []):
        completed = subprocess.run(
            [keygen, "-q", "-a", "ECDSAP256SHA256", *extra, "-K", str(directory),
             ORIGIN.rstrip(".")], capture_output=True, text=True, check=True)
        names.append(completed.stdout.strip())
    return names


def compare(directory: Path, zone: Path, keys: list[str], repeat: int) -> float:
    """Prints each signer's time; returns regshield's own signing time of the NSEC zone."""
    nsec_signing = float("inf")
    for denial in ("nsec", "nsec3"):
        nsec3 = denial == "nsec3"
        outputs = {name: directory / f"{denial}.{name}" for name in
                   ("regshield", "ldns-signzone", "dnssec-signzone")}
        commands = {
            "regshield": [
                REGSHIELD, "zone", "sign", str(zone), "--out", str(outputs["regshield"]),
                "--keys", str(directory / "keys"), *(["--nsec3"] if nsec3 else [])],
            "ldns-signzone": [
                need("ldns-signzone"), *(["-n", "-t", "0"] if nsec3 else []),
                "-f", str(outputs["ldns-signzone"]), "-o", ORIGIN, str(zone),
                *(str(directory / "keys" / key) for key in keys)],
            "dnssec-signzone": [
                need("dnssec-signzone"), "-P", "-q", "-S", "-K", str(directory / "keys"),
                *(["-3", "-", "-H", "0"] if nsec3 else []),
                "-o", ORIGIN, "-f", str(outputs["dnssec-signzone"]), str(zone)],
        }
        # Best of `repeat`, the tools taking turns, so that a burst of other work on the
        # machine does not fall on one tool only.
        runs = dict.fromkeys(commands, float("inf"))
        own = float("inf")
        for _ in range(repeat):
            for name, command in commands.items():
                seconds, stdout = timed(command, directory)
                runs[name] = min(runs[name], seconds)
                if name == "regshield":
                    own = min(own, float(stdout.split(" s (")[0].rsplit(" ", 1)[1]))
        for output in outputs.values():
            verified(output)
        if not nsec3:
            nsec_signing = own
        base = runs["ldns-signzone"]
        print(f"{denial.upper()} (best of {repeat}):")
        for name, seconds in runs.items():
            note = (f"   (signing itself, without the CLI's start-up: {own:.2f} s, "
                    f"{base / own:.2f}x)") if name == "regshield" else ""
            print(f"  {name:16s} {seconds:7.2f} s   {base / seconds:5.2f}x ldns-signzone's "
                  f"speed{note}")
    return nsec_signing


def incremental(text: str, changes: int, full_signing: float) -> None:
    started = time.perf_counter()
    loaded = dns.zone.from_text(text, relativize=False)
    rrsets = []
    for name, rdataset in loaded.iterate_rdatasets():
        rrset = dns.rrset.RRset(name, rdataset.rdclass, rdataset.rdtype)
        rrset.update(rdataset)  # type: ignore[no-untyped-call]
        rrsets.append(rrset)
    keys = [generate_key(flags=KSK_FLAGS), generate_key(flags=ZSK_FLAGS)]
    now = datetime.now(UTC)
    signed = SignedZone(rrsets, keys, now)
    print(f"incremental: {len(rrsets)} RRsets loaded and signed in "
          f"{time.perf_counter() - started:.1f} s")
    hosts = [r.name for r in rrsets if r.rdtype == dns.rdatatype.AAAA][:changes]
    kinds: dict[str, Callable[[int], list[dns.rrset.RRset]]] = {
        "an RRset replaced": lambda index: [dns.rrset.from_text(
            hosts[index], 300, "IN", "A", f"203.0.113.{index % 250 + 1}")],
        "a name added": lambda index: [dns.rrset.from_text(
            f"new{index}.{ORIGIN}", 300, "IN", "A", "203.0.113.1")],
        "a delegation added": lambda index: [
            dns.rrset.from_text(f"sub{index}.{ORIGIN}", 3600, "IN", "NS",
                                f"ns.sub{index}.{ORIGIN}"),
            dns.rrset.from_text(f"ns.sub{index}.{ORIGIN}", 3600, "IN", "A", "203.0.113.2")],
    }
    for kind, change in kinds.items():
        times = []
        sizes = []
        for index in range(changes):
            replacements = change(index)
            started = time.perf_counter()
            diff = signed.apply(now, replace=replacements)
            times.append(time.perf_counter() - started)
            sizes.append(len(diff.removed) + len(diff.added))
        print(f"  {kind}: change to signed ZoneDiff median {statistics.median(times) * 1000:.2f}"
              f" ms, max {max(times) * 1000:.2f} ms over {changes} changes "
              f"({statistics.median(sizes):.0f} RRsets in the diff)")
    # A ZSK rollover's steps, as the publisher makes them (in place, one journal entry each):
    # the new key pre-published, then taking over, then the old one withdrawn.
    ksk, old_zsk = keys
    new_zsk = generate_key(flags=ZSK_FLAGS)
    for step, step_keys, shown in (
            ("pre-published", keys, [new_zsk.dnskey]),
            ("taking over", [ksk, new_zsk], [old_zsk.dnskey]),
            ("the old key withdrawn", [ksk, new_zsk], [])):
        started = time.perf_counter()
        diff = signed.replace_keys(step_keys, now, publish=shown)
        elapsed = time.perf_counter() - started
        print(f"  a ZSK rollover step, {step}: {elapsed * 1000:.1f} ms, "
              f"{len(diff.removed) + len(diff.added)} RRsets in the diff "
              f"({elapsed / full_signing:.3f}x signing the zone whole)")
    started = time.perf_counter()
    signed.served()
    print(f"  (building the whole ServedZone snapshot afterwards: "
          f"{(time.perf_counter() - started) * 1000:.0f} ms; NOTIFY itself not measured here)")
    # A restart: the zone as the publisher stores it, read back and taken into the signer
    # without signing (dns/wireform.py, SignedZone.restore).
    stored = wireform.encode(signed.rrsets())
    started = time.perf_counter()
    read = wireform.decode(stored)
    decoded = time.perf_counter() - started
    SignedZone.restore(read, keys)
    loaded = time.perf_counter() - started
    print(f"  loaded from its stored form ({len(stored) / 1e6:.1f} MB): {loaded:.2f} s "
          f"(reading the RRsets {decoded:.2f} s, taking them into the signer "
          f"{loaded - decoded:.2f} s), {loaded / full_signing:.2f}x the time of signing it "
          f"whole with `regshield zone sign` ({full_signing:.2f} s); goal: loading costs no "
          f"more than 1.2x that ({'met' if loaded <= 1.2 * full_signing else 'NOT met'})")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--changes", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=1,
                        help="run each signer this many times and keep its best time")
    parser.add_argument("--skip-incremental", action="store_true")
    args = parser.parse_args()

    text = zone_text(args.records)
    with tempfile.TemporaryDirectory(prefix="regshield-sign-bench-") as temporary:
        directory = Path(temporary)
        zone = directory / "bench.zone"
        zone.write_text(text)
        keys = bind_keys(directory / "keys")
        print(f"zone: {args.records} records ({text.count(chr(10)) - 2} lines), half "
              f"delegations; ECDSAP256SHA256; {os.cpu_count()} CPUs; load average "
              f"{os.getloadavg()[0]:.1f}")
        full_signing = compare(directory, zone, keys, args.repeat)
    if not args.skip_incremental:
        incremental(text, args.changes, full_signing)


if __name__ == "__main__":
    main()
