"""scripts/audit: an advisory found in the locked dependencies fails the build unless it is
accepted in security-advisories.toml with a reason and an expiry that has not passed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
AUDIT = ROOT / "scripts" / "audit"
TODAY = "2026-12-06"


def audit(tmp_path: Path, advisories: str) -> subprocess.CompletedProcess[str]:
    """The real script, up to the point where it would ask the vulnerability service."""
    path = tmp_path / "security-advisories.toml"
    path.write_text(advisories)
    return subprocess.run(
        [sys.executable, str(AUDIT), "--advisories", str(path), "--today", TODAY, "--dry-run",
         str(ROOT / "requirements" / "test.lock")],
        capture_output=True, text=True, timeout=60, check=False)


def entry(advisory_id: str = "GHSA-aaaa-bbbb-cccc", reason: str | None = "not reachable",
          expires: str | None = "2027-01-31") -> str:
    lines = ["[[advisory]]", f'id = "{advisory_id}"']
    if reason is not None:
        lines.append(f'reason = "{reason}"')
    if expires is not None:
        lines.append(f"expires = {expires}")
    return "\n".join(lines) + "\n"


def test_an_unexpired_acceptance_with_a_reason_is_passed_to_pip_audit(tmp_path: Path) -> None:
    result = audit(tmp_path, entry(expires="2026-12-06"))

    assert result.returncode == 0, result.stderr
    assert "--ignore-vuln GHSA-aaaa-bbbb-cccc" in result.stdout
    assert "-s pypi" in result.stdout and "--require-hashes" in result.stdout


def test_an_expired_acceptance_is_refused(tmp_path: Path) -> None:
    result = audit(tmp_path, entry(expires="2026-12-05") + entry("PYSEC-2026-1"))

    assert result.returncode == 2
    assert "GHSA-aaaa-bbbb-cccc: expires: the acceptance expired on 2026-12-05" in result.stderr
    assert "--ignore-vuln" not in result.stdout


def test_an_acceptance_without_a_reason_is_refused(tmp_path: Path) -> None:
    result = audit(tmp_path, entry(reason=None) + entry("PYSEC-2026-2", reason="  "))

    assert result.returncode == 2
    assert "GHSA-aaaa-bbbb-cccc: reason: missing" in result.stderr
    assert "PYSEC-2026-2: reason: missing" in result.stderr


def test_an_acceptance_without_an_expiry_or_for_longer_than_a_year_is_refused(
        tmp_path: Path) -> None:
    result = audit(tmp_path, entry(expires=None) + entry("PYSEC-2026-3", expires="2028-01-01")
                   + entry("PYSEC-2026-4", expires='"soon"'))

    assert result.returncode == 2
    assert "GHSA-aaaa-bbbb-cccc: expires: missing or not a date" in result.stderr
    assert "PYSEC-2026-3: expires: 2028-01-01 is more than 365 days ahead" in result.stderr
    assert "PYSEC-2026-4: expires: missing or not a date" in result.stderr


def test_no_accepted_advisory_ignores_nothing(tmp_path: Path) -> None:
    result = audit(tmp_path, "# nothing accepted\n")

    assert result.returncode == 0, result.stderr
    assert "--ignore-vuln" not in result.stdout


def test_the_shipped_acceptances_are_valid_today() -> None:
    result = subprocess.run([sys.executable, str(AUDIT), "--dry-run", "requirements/test.lock"],
                            capture_output=True, text=True, timeout=60, check=False, cwd=ROOT)

    assert result.returncode == 0, result.stderr
