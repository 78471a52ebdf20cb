"""The `regshield` command (Typer): parse, call a flow, print. No rules here."""
