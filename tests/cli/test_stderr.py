"""What `regshield` writes to stderr on a clean start: nothing. A warning printed at every start
(cryptography's DSA deprecation, raised while dnspython's DNSSEC module is imported) hides the
real messages and breaks every caller that reads stderr for `error:`."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

REGSHIELD = str(Path(sys.executable).with_name("regshield"))


async def run(*args: str) -> tuple[int, str, str]:
    """The installed `regshield` in a process of its own, with Python's default warning filters
    (no PYTHONWARNINGS, no REGSHIELD_* settings from the test's environment)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("REGSHIELD_") and k != "PYTHONWARNINGS"}
    process = await asyncio.create_subprocess_exec(
        REGSHIELD, *args, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=env)
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


@pytest.mark.parametrize("args", [("--help",), ("zone", "sign", "--help")])
async def test_help_writes_nothing_to_stderr(args: tuple[str, ...]) -> None:
    code, stdout, stderr = await run(*args)

    assert code == 0, stderr
    assert "Usage" in stdout
    assert stderr == ""


async def test_setting_up_an_installation_writes_no_warning_to_stderr(tmp_path: Path) -> None:
    home = tmp_path / "home"

    code, stdout, stderr = await run("--home", str(home), "--database-url",
                                     f"sqlite:///{home / 'regshield.db'}", "init")

    assert code == 0, stderr
    assert "(created)" in stdout
    assert "Warning" not in stderr and "warn" not in stderr.lower(), stderr
    assert stderr == ""


async def test_a_refusal_is_the_first_thing_on_stderr(tmp_path: Path) -> None:
    code, _, stderr = await run("--home", str(tmp_path / "home"), "--database-url",
                                "mysql://root@127.0.0.1/regshield", "init")

    assert code != 0
    assert stderr.startswith("error:"), stderr
