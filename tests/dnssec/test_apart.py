"""A large zone's first signing in the signing process: the zone that comes back is the one
this process would have signed (the same records, chain and signature times), valid, and
taken into the signer without a signature made here; a small zone, or one whose keys are
held in a token, is signed here."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import dns.rdatatype
import dns.rrset
import pytest

from regshield.dnssec import apart
from regshield.dnssec.incremental import SignedZone

from .test_incremental import NOW, _keys, _rrset, _rrsets
from .validators import assert_valid, write_zone


@pytest.fixture(scope="module")
def pool() -> Iterator[ProcessPoolExecutor]:
    started = apart.signing_pool()
    yield started
    started.shutdown()


def _larger() -> list[dns.rrset.RRset]:
    return [*_rrsets(), *(_rrset(f"host{index}", "A", f"198.51.100.{index % 250 + 1}")
                          for index in range(60))]


def _without_signatures(zone: SignedZone) -> set[str]:
    """Every record, RRSIGs by what they sign and when (ECDSA signatures differ each time)."""
    lines = set()
    for rrset in zone.rrsets():
        if rrset.rdtype != dns.rdatatype.RRSIG:
            lines.update(rrset.to_text().splitlines())
            continue
        lines.update(f"{rrset.name} {rrset.ttl} RRSIG {rrsig.type_covered} {rrsig.key_tag} "
                     f"{rrsig.inception} {rrsig.expiration}" for rrsig in rrset)
    return lines


@pytest.mark.parametrize("nsec", ["nsec", "nsec3"])
def test_a_large_zone_signed_apart_is_the_zone_signed_here(
        tmp_path: Path, pool: ProcessPoolExecutor, monkeypatch: pytest.MonkeyPatch,
        nsec: str) -> None:
    monkeypatch.setattr(apart, "SIGN_APART_AT", 50)
    keys = _keys()

    signed = apart.sign_whole(_larger(), keys, NOW, nsec, pool)  # type: ignore[arg-type]

    assert signed.signatures_made == 0  # every signature was made in the signing process
    here = SignedZone(_larger(), keys, NOW, nsec)  # type: ignore[arg-type]
    assert _without_signatures(signed) == _without_signatures(here)
    assert_valid(write_zone(tmp_path / "apart.zone", signed.rrsets()), "example.")
    # It changes here as a zone signed here does.
    diff = signed.apply(NOW, replace=[_rrset("host3", "A", "203.0.113.3")])
    assert 0 < signed.signatures_made < 10 and diff.to_serial == diff.from_serial + 1
    assert_valid(write_zone(tmp_path / "changed.zone", signed.rrsets()), "example.")


def test_a_small_zone_or_no_pool_signs_here(pool: ProcessPoolExecutor) -> None:
    keys = _keys()
    assert apart.sign_whole(_rrsets(), keys, NOW, "nsec", pool).signatures_made > 0
    assert apart.sign_whole(_larger(), keys, NOW, "nsec", None).signatures_made > 0


def test_the_signing_process_exits_when_the_process_that_started_it_is_killed() -> None:
    script = ("import os, sys; from regshield.dnssec import apart; pool = apart.signing_pool();"
              "print(pool.submit(os.getpid).result(), flush=True); sys.stdin.read()")
    parent = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        os.kill(child, 0)  # running
    finally:
        parent.kill()  # SIGKILL: nothing of the parent runs again
        parent.wait()
    deadline = time.monotonic() + 10
    while True:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        assert time.monotonic() < deadline, "the signing process outlived its parent"
        time.sleep(0.1)
