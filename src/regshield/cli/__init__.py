"""The `regshield` command (Typer): parse, call a flow, print. No rules here."""

from __future__ import annotations

import sys

from regshield.loading import modules_loading


def main() -> None:
    """Run `regshield`. Offline zone signing (`regshield zone sign`) needs no installation,
    so it starts without loading the platform (store, flows, API): a second less per run."""
    if sys.argv[1:3] == ["zone", "sign"]:
        with modules_loading():
            from regshield.cli.zones import offline_app

        offline_app()
        return
    with modules_loading():
        from regshield.cli.main import main as full

    full()
