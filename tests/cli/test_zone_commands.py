"""`regshield zone import|export` and `regshield secondary add` from the shell."""

from __future__ import annotations

from pathlib import Path

from conftest import World

from cli.test_cli import regshield
from regshield.config import Settings

ZONE_FILE = """$ORIGIN shell.example.
$TTL 600
@ IN SOA ns1.example.net. hostmaster.example.net. 2026010100 7200 3600 1209600 300
@ IN NS ns1.regshield.test.
www IN A 192.0.2.10
mail IN MX 10 www
"""


async def test_a_zone_file_imported_from_the_shell_exports_again(
        settings: Settings, world: World, tmp_path: Path) -> None:
    account = await world.account("Shell Customer")
    path = tmp_path / "shell.zone"
    path.write_text(ZONE_FILE)

    imported = await regshield(settings, "zone", "import", "shell.example", str(path),
                               "--account", account)
    assert imported.code == 0, imported.stderr
    assert imported.lines == ["shell.example. serial 2026010101: 3 RRsets, 3 records"]

    exported = await regshield(settings, "zone", "export", "shell.example")
    assert exported.code == 0, exported.stderr
    assert "www.shell.example. 600 IN A 192.0.2.10" in exported.lines
    assert "mail.shell.example. 600 IN MX 10 www.shell.example." in exported.lines
    assert " 2026010101 " in exported.lines[1]

    broken = await regshield(settings, "zone", "import", "shell.example", "-",
                             stdin="www IN A 192.0.2.300\n")
    assert broken.code == 1 and "Traceback" not in broken.stderr
    assert broken.stderr.startswith("error: ")


async def test_a_secondary_added_from_the_shell_prints_its_secret_once(
        settings: Settings, world: World, tmp_path: Path) -> None:
    account = await world.account("Shell Customer")
    path = tmp_path / "shell.zone"
    path.write_text(ZONE_FILE)
    assert (await regshield(settings, "zone", "import", "shell.example", str(path),
                            "--account", account)).code == 0
    private = await regshield(settings, "secondary", "add", "shell.example", "10.0.0.53:53",
                              "--tsig", "shell-xfr")
    assert private.code == 1 and "Traceback" not in private.stderr
    assert "address: must be a public address, not a private address" in private.stderr
    # The documentation networks stand for networks an administrator allowed.
    settings.home.mkdir(mode=0o700, exist_ok=True)
    (settings.home / "regshield.toml").write_text(
        '[dns]\nallowed_secondary_networks = ["192.0.2.0/24", "2001:db8::/32"]\n')

    added = await regshield(settings, "secondary", "add", "shell.example", "192.0.2.53:5300",
                            "--tsig", "shell-xfr")
    assert added.code == 0, added.stderr
    assert added.lines[0] == ("secondary 192.0.2.53 port 5300 transfers shell.example. with "
                              "TSIG key shell-xfr. (hmac-sha256)")
    assert added.lines[1] == "secret (shown once):" and len(added.lines[2]) == 44
    again = await regshield(settings, "secondary", "add", "shell.example", "[2001:db8::53]:53",
                            "--tsig", "shell-xfr")
    assert again.code == 0 and added.lines[2] not in again.stdout
    bad = await regshield(settings, "secondary", "add", "shell.example", "nowhere",
                          "--tsig", "shell-xfr")
    assert bad.code == 1 and "Traceback" not in bad.stderr


async def test_a_generate_bomb_imported_from_the_shell_is_refused_with_the_line(
        settings: Settings, world: World) -> None:
    account = await world.account("Shell Customer")
    bomb = ZONE_FILE + "$GENERATE 1-10000000 host$ A 192.0.2.1\n"
    refused = await regshield(settings, "zone", "import", "shell.example", "-",
                              "--account", account, stdin=bomb)
    assert refused.code == 1 and "Traceback" not in refused.stderr
    assert "line 7: $GENERATE would make 10000000 records" in refused.stderr
    exported = await regshield(settings, "zone", "export", "shell.example")
    assert exported.code != 0  # nothing was written: the zone was not even created
