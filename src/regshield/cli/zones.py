"""`regshield zone`: hosted DNS zones from the shell."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from regshield.dnssec.keys import (
    ECDSAP256SHA256,
    ED25519,
    KSK_FLAGS,
    RSASHA256,
    ZSK_FLAGS,
    SigningKey,
    generate_key,
    load_bind_private_key,
)
from regshield.dnssec.offline import ZoneFileError, sign_zone_text

zone_app = typer.Typer(help="Hosted DNS zones.", no_args_is_help=True)


class Algorithm(StrEnum):
    ECDSAP256SHA256 = "ecdsap256sha256"
    ED25519 = "ed25519"
    RSASHA256 = "rsasha256"


_ALGORITHMS = {
    Algorithm.ECDSAP256SHA256: ECDSAP256SHA256,
    Algorithm.ED25519: ED25519,
    Algorithm.RSASHA256: RSASHA256,
}


@zone_app.command("sign")
def sign(
    zone_file: Annotated[Path, typer.Argument(help="The unsigned zone, in master-file format.")],
    out: Annotated[Path, typer.Option("--out", help="Where to write the signed zone.")],
    nsec3: Annotated[bool, typer.Option(
        "--nsec3", help="Deny existence with NSEC3 (RFC 9276: no extra iterations, no salt) "
                        "instead of NSEC.")] = False,
    opt_out: Annotated[bool, typer.Option(
        "--opt-out", help="With --nsec3: leave delegations without DS out of the chain "
                          "(RFC 5155 opt-out), for zones of many insecure delegations.")] = False,
    algorithm: Annotated[Algorithm, typer.Option(
        "--algorithm", help="The algorithm of the keys made when --keys is not given."
    )] = Algorithm.ECDSAP256SHA256,
    origin: Annotated[str | None, typer.Option(
        "--origin", help="The zone's name, when the file has no $ORIGIN (default: the SOA "
                         "owner).")] = None,
    days: Annotated[int, typer.Option(
        "--days", min=1, max=365, help="How long the signatures are valid.")] = 14,
    keys_dir: Annotated[Path | None, typer.Option(
        "--keys", help="A directory of BIND key pairs (K*.key and K*.private, as "
                       "dnssec-keygen writes them) to sign with instead of new keys.")] = None,
) -> None:
    """Sign a zone file offline and write the signed zone to --out.

    Without --keys, a KSK and a ZSK of --algorithm are made for this signing only: their
    DNSKEYs are in the output, their private keys are not kept.
    """
    if opt_out and not nsec3:
        typer.echo("error: --opt-out goes with --nsec3", err=True)
        raise typer.Exit(2)
    try:
        text = zone_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        typer.echo(f"error: cannot read {zone_file}: {_reason(exc)}", err=True)
        raise typer.Exit(1) from None
    if keys_dir is not None:
        keys = _bind_keys(keys_dir)
    else:
        number = _ALGORITHMS[algorithm]
        keys = [generate_key(number, KSK_FLAGS), generate_key(number, ZSK_FLAGS)]
    # Backdated an hour for validators whose clocks run behind.
    inception = datetime.now(UTC) - timedelta(hours=1)
    try:
        signed, summary = sign_zone_text(
            text, keys, inception, inception + timedelta(days=days), origin=origin,
            nsec="nsec3" if nsec3 else "nsec", opt_out=opt_out)
    except ZoneFileError as exc:
        typer.echo(f"error: {zone_file}: {exc}", err=True)
        raise typer.Exit(1) from None
    try:
        out.write_text(signed, encoding="utf-8")
    except OSError as exc:
        typer.echo(f"error: cannot write {out}: {_reason(exc)}", err=True)
        raise typer.Exit(1) from None
    tags = ", ".join(f"{'KSK' if key.is_ksk else 'ZSK'} {key.key_tag}" for key in keys)
    typer.echo(f"signed {summary.origin}: {summary.records} records, {summary.signatures} "
               f"signatures, {summary.seconds:.2f} s ({tags}) -> {out}")


def _bind_keys(directory: Path) -> list[SigningKey]:
    """The key pairs in `directory`: each K*.private with the flags of its K*.key."""
    keys = []
    try:
        for private in sorted(directory.glob("K*.private")):
            public = private.with_suffix(".key").read_text(encoding="ascii")
            record = next(line for line in public.splitlines()
                          if " DNSKEY " in line and not line.startswith(";"))
            flags = int(record.split(" DNSKEY ", 1)[1].split()[0])
            keys.append(load_bind_private_key(private.read_text(encoding="ascii"), flags))
    except (OSError, UnicodeDecodeError, StopIteration, ValueError, IndexError) as exc:
        typer.echo(f"error: cannot load the keys in {directory}: {_reason(exc)}", err=True)
        raise typer.Exit(1) from None
    if not keys:
        typer.echo(f"error: no K*.private key files in {directory}", err=True)
        raise typer.Exit(1)
    return keys


def _reason(exc: Exception) -> str:
    if isinstance(exc, StopIteration):
        return "a .key file without a DNSKEY record"
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)


# `regshield zone sign` on its own (see regshield/cli/__init__.py).
offline_app = typer.Typer(add_completion=False)
offline_app.add_typer(zone_app, name="zone")
