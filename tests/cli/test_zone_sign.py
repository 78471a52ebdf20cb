"""`regshield zone sign`: a zone file in, a signed zone the validators accept out, and clear
messages (no traceback) for files that cannot be signed."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import dns.rdatatype
import dns.zone
import pytest
from typer.testing import CliRunner

from regshield.cli.main import app

ZONE = """$ORIGIN example.
$TTL 3600
@        IN SOA ns1 hostmaster 1 7200 900 1209600 300
@        IN NS  ns1
ns1      IN A   192.0.2.1
www      IN A   192.0.2.10
delegated IN NS ns.delegated
ns.delegated IN A 192.0.2.20
"""


def _sign(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["zone", "sign", *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize(
    ("options", "denial", "algorithm"),
    [
        ([], dns.rdatatype.NSEC, 13),
        (["--nsec3", "--algorithm", "ed25519"], dns.rdatatype.NSEC3, 15),
        (["--nsec3", "--opt-out"], dns.rdatatype.NSEC3, 13),
        (["--algorithm", "rsasha256"], dns.rdatatype.NSEC, 8),
    ],
)
def test_sign_writes_a_signed_zone_and_a_one_line_summary(
    tmp_path: Path, options: list[str], denial: int, algorithm: int
) -> None:
    source, out = tmp_path / "example.zone", tmp_path / "example.signed"
    source.write_text(ZONE)
    code, stdout, stderr = _sign(str(source), "--out", str(out), *options)
    assert (code, stderr) == (0, "")
    assert stdout.startswith("signed example.: ") and "signatures" in stdout
    assert len(stdout.strip().splitlines()) == 1
    zone = dns.zone.from_text(out.read_text(), origin="example.", relativize=False)
    types = {rdataset.rdtype for _, rdataset in zone.iterate_rdatasets()}
    assert {dns.rdatatype.DNSKEY, dns.rdatatype.RRSIG, denial} <= types
    dnskeys = zone.get_rdataset("example.", "DNSKEY")
    assert dnskeys is not None
    assert sorted(key.flags for key in dnskeys) == [256, 257]
    assert {key.algorithm for key in dnskeys} == {algorithm}


def test_origin_option_names_a_zone_file_without_origin(tmp_path: Path) -> None:
    source, out = tmp_path / "plain.zone", tmp_path / "plain.signed"
    source.write_text("$TTL 300\n@ SOA ns1 hostmaster 1 2 3 4 5\n@ NS ns1\nns1 A 192.0.2.1\n")
    code, stdout, _ = _sign(str(source), "--out", str(out), "--origin", "example.net")
    assert code == 0 and stdout.startswith("signed example.net.: ")
    assert "ns1.example.net.\t" in out.read_text()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read"),
        ("$ORIGIN example.\n$TTL 60\nwww A 192.0.2.1\n", "has no SOA record"),
        ("$ORIGIN example.\n$TTL 60\n@ SOA a b 1 2 3 4 5\nwww A 192.0.2.999\n", "line 4: bad A"),
        ("$ORIGIN example.\n$TTL 60\n@ SOA a b 1 2 3 4 5\nwww NOTATYPE x\n", "line 4: unknown"),
    ],
)
def test_files_that_cannot_be_signed_give_a_message_and_a_failing_exit(
    tmp_path: Path, content: str | None, message: str
) -> None:
    source, out = tmp_path / "bad.zone", tmp_path / "bad.signed"
    if content is not None:
        source.write_text(content)
    code, stdout, stderr = _sign(str(source), "--out", str(out))
    assert code == 1 and stdout == ""
    assert stderr.startswith("error: ") and message in stderr
    assert "Traceback" not in stderr
    assert not out.exists()


def _keygen(directory: Path, *options: str) -> str:
    keygen = shutil.which("dnssec-keygen")
    if keygen is None:
        pytest.fail("dnssec-keygen is not installed (scripts/test-services installs it)")
    completed = subprocess.run(
        [keygen, "-q", "-K", str(directory), *options, "example"],
        capture_output=True, text=True, check=True)
    return completed.stdout.strip()


def test_keys_option_signs_with_bind_key_files(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    ksk = _keygen(keys, "-a", "ECDSAP256SHA256", "-f", "KSK")
    zsk = _keygen(keys, "-a", "ECDSAP256SHA256")
    source, out = tmp_path / "example.zone", tmp_path / "example.signed"
    source.write_text(ZONE)
    code, stdout, _ = _sign(str(source), "--out", str(out), "--keys", str(keys))
    ksk_tag, zsk_tag = int(ksk.rsplit("+", 1)[1]), int(zsk.rsplit("+", 1)[1])
    assert code == 0 and f"KSK {ksk_tag}" in stdout and f"ZSK {zsk_tag}" in stdout
    zone = dns.zone.from_text(out.read_text(), origin="example.", relativize=False)
    sigs = zone.get_rdataset("www.example.", "RRSIG", "A")
    assert sigs is not None and [rrsig.key_tag for rrsig in sigs] == [zsk_tag]
    ldns = shutil.which("ldns-verify-zone")
    assert ldns is not None, "ldns-verify-zone is not installed"
    assert subprocess.run([ldns, str(out)], capture_output=True, check=False).returncode == 0


def test_keys_option_refuses_a_directory_without_keys(tmp_path: Path) -> None:
    source = tmp_path / "example.zone"
    source.write_text(ZONE)
    code, _, stderr = _sign(str(source), "--out", str(tmp_path / "out"), "--keys", str(tmp_path))
    assert code == 1 and "no K*.private key files" in stderr


def test_opt_out_without_nsec3_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "example.zone"
    source.write_text(ZONE)
    code, _, stderr = _sign(str(source), "--out", str(tmp_path / "out"), "--opt-out")
    assert code == 2 and "--opt-out goes with --nsec3" in stderr
