"""The three independent validators a signed zone must pass: ldns, BIND and Knot DNS."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import dns.rrset
import pytest

VALIDATORS = ("ldns-verify-zone", "dnssec-verify", "kzonecheck")


@dataclass(frozen=True)
class Verdict:
    tool: str
    ok: bool
    output: str


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed (scripts/test-services installs it)")
    return path


def verify(path: Path, origin: str) -> list[Verdict]:
    """Run every validator on the signed zone file at `path`; one verdict each."""
    commands = {
        "ldns-verify-zone": [_binary("ldns-verify-zone"), str(path)],
        "dnssec-verify": [_binary("dnssec-verify"), "-o", origin, str(path)],
        "kzonecheck": [_binary("kzonecheck"), "-o", origin, "-d", "on", str(path)],
    }
    verdicts = []
    for tool, command in commands.items():
        completed = subprocess.run(
            command, capture_output=True, text=True, timeout=120, check=False)
        verdicts.append(
            Verdict(tool, completed.returncode == 0, completed.stdout + completed.stderr))
    return verdicts


def assert_valid(path: Path, origin: str) -> None:
    failed = [v for v in verify(path, origin) if not v.ok]
    assert not failed, "\n".join(f"{v.tool}:\n{v.output[-2000:]}" for v in failed)


def write_zone(path: Path, rrsets: Iterable[dns.rrset.RRset]) -> Path:
    """The RRsets as a master file, the SOA first (as the validators expect)."""
    ordered = sorted(rrsets, key=lambda rrset: rrset.rdtype != dns.rdatatype.SOA)
    path.write_text("".join(rrset.to_text() + "\n" for rrset in ordered))
    return path
