"""`regshield`: set up, serve and administer an installation from the shell."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from sqlalchemy.exc import DBAPIError

from regshield import logs
from regshield.cli.zones import zone_app
from regshield.config import Listen, Settings
from regshield.errors import RegshieldError, ValidationFailed
from regshield.eventlog.anchors import anchor_head, check_anchors, read_anchors
from regshield.eventlog.chain import verify
from regshield.flows.accounts import AccountCreate
from regshield.flows.auth import TokenCreate
from regshield.flows.context import RequestContext, system_actor
from regshield.flows.keys import rotate_master_key
from regshield.flows.registrar import RegistrarUpdate
from regshield.flows.runner import Flow, run_flow
from regshield.flows.users import UserCreate, email_index
from regshield.flows.zones import SecondaryAdd, ZoneImport, ZoneVerify, zone_export
from regshield.loading import modules_loading
from regshield.services import Services
from regshield.setup import initialize
from regshield.store.queries.users import user_by_email_index

T = TypeVar("T")
app = typer.Typer(help="regshield: a security-first platform for domain registrars.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
account_app = typer.Typer(help="Customer accounts.", no_args_is_help=True)
user_app = typer.Typer(help="Staff and customer users.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens.", no_args_is_help=True)
events_app = typer.Typer(help="The hash-chained event log.", no_args_is_help=True)
keys_app = typer.Typer(help="Master keys of the field encryption.", no_args_is_help=True)
registrar_app = typer.Typer(help="The registrar's own record.", no_args_is_help=True)
sandbox_app = typer.Typer(help="The built-in sandbox registry (an EPP server for test TLDs).",
                          no_args_is_help=True)
registry_app = typer.Typer(help="The registries regshield is linked to: their message queues "
                                "and drift.", no_args_is_help=True)
for sub, name in ((account_app, "account"), (user_app, "user"), (token_app, "token"),
                  (events_app, "events"), (keys_app, "keys"), (registrar_app, "registrar"),
                  (sandbox_app, "sandbox-registry"), (registry_app, "registry")):
    app.add_typer(sub, name=name)
app.add_typer(zone_app, name="zone")


@dataclass
class Options:
    home: str | None
    database_url: str | None

    def settings(self, http: str | None = None, dns: str | None = None,
                 whois: str | None = None) -> Settings:
        try:
            return Settings.load(home=self.home, database_url=self.database_url, http=http,
                                 dns=dns, whois=whois)
        except RegshieldError as exc:  # a bad URL or listen address: a message, no traceback
            raise fail(f"error: {exc.detail}") from None


@app.callback()
def main_options(
    ctx: typer.Context,
    home: Annotated[str | None, typer.Option(
        "--home", envvar="REGSHIELD_HOME",
        help="Data directory (default ./regshield-data).")] = None,
    database_url: Annotated[str | None, typer.Option(
        "--database-url", envvar="REGSHIELD_DATABASE_URL",
        help="postgresql://... to use PostgreSQL instead of the embedded SQLite file.")] = None,
) -> None:
    # Files this process creates (database, WAL, keys) are for its owner only.
    os.umask(0o077)
    logs.configure("warning")
    ctx.obj = Options(home, database_url)


def fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(code)


def run(coroutine: Coroutine[Any, Any, T],
        runner: Callable[[Coroutine[Any, Any, T]], T] = asyncio.run) -> T:
    """Run one command's coroutine (with `runner`); render regshield errors as messages, not
    tracebacks."""
    try:
        return runner(coroutine)
    except ValidationFailed as exc:
        lines = [f"error: {exc.detail}"] + [f"  {e.field}: {e.message} ({e.code})"
                                            for e in exc.errors]
        raise fail("\n".join(lines)) from None
    except RegshieldError as exc:
        raise fail(f"error: {exc.detail}") from None
    except DBAPIError as exc:
        if exc.statement is not None:  # a failing statement is a bug: keep its traceback
            raise
        raise fail(f"error: cannot connect to the database: {exc.orig}") from None
    except OSError as exc:  # refused connection, unreachable host, unreadable file
        raise fail(f"error: {exc}") from None


async def with_services(options: Options, action: Callable[[Services], Awaitable[T]]) -> T:
    services = Services.open(options.settings())
    try:
        return await action(services)
    finally:
        await services.close()


def cli_flow(options: Options, flow: Flow[T]) -> T:
    async def go(services: Services) -> T:
        return await run_flow(services, system_actor("cli"), RequestContext("cli"), flow)
    return run(with_services(options, go))


def read_password_stdin() -> str:
    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise fail("error: --password-stdin expects the password on standard input")
    return password


@app.command()
def init(ctx: typer.Context) -> None:
    """Create the data directory, master key ring and database schema (safe to repeat)."""
    settings: Settings = ctx.obj.settings()
    report = run(initialize(settings))
    typer.echo(f"data directory: {settings.home}" + (" (created)" if report.created_home else ""))
    keys = "REGSHIELD_MASTER_KEY" if settings.master_key_env else str(settings.key_file)
    typer.echo(f"master keys:    {keys}" + (" (created)" if report.created_keys else ""))
    typer.echo(f"database:       {_redact_url(settings.database_url)} (schema up to date)")


@app.command()
def serve(
    ctx: typer.Context,
    http: Annotated[str | None, typer.Option(
        "--http", help="HOST:PORT of the HTTP API (default 127.0.0.1:8080).")] = None,
    dns: Annotated[str | None, typer.Option(
        "--dns", help="HOST:PORT of the embedded DNS server, UDP and TCP (default "
                      "127.0.0.1:5353), or 'off'.")] = None,
    whois: Annotated[str | None, typer.Option(
        "--whois", help="HOST:PORT where WHOIS (port 43 protocol) answers (default: "
                        "[rdds] whois_listen; off unless set).")] = None,
) -> None:
    """Start every listener on this installation, initializing it on first run."""
    with modules_loading():
        from regshield.processes import run_serving
        from regshield.server import serve_forever

    settings: Settings = ctx.obj.settings(http=http, dns=dns, whois=whois)
    logs.configure(settings.log_level)
    run(serve_forever(settings, announce=typer.echo), run_serving)


@account_app.command("create")
def account_create(ctx: typer.Context, name: str) -> None:
    """Open a customer account."""
    account = cli_flow(ctx.obj, AccountCreate(name))
    typer.echo(f"account {account.public_id} {account.name}")


@user_app.command("create")
def user_create(
    ctx: typer.Context,
    email: str,
    role: Annotated[str, typer.Option(help="admin, operator, support, compliance, auditor "
                                           "(staff) or owner, member (customer).")],
    account: Annotated[str | None, typer.Option(help="Account name or id (customers).")] = None,
    password_stdin: Annotated[bool, typer.Option(
        "--password-stdin", help="Read the password from standard input.")] = False,
) -> None:
    """Create a user. The password is read from standard input, never from arguments."""
    if not password_stdin:
        raise fail("error: pass --password-stdin and give the password on standard input", 2)
    created = cli_flow(ctx.obj, UserCreate(email, read_password_stdin(), role, account))
    typer.echo(f"user {created.user.public_id} role {created.user.role}"
               + (f" account {created.account}" if created.account else ""))


@token_app.command("create")
def token_create(
    ctx: typer.Context,
    email: str,
    name: Annotated[str, typer.Option(help="A label for the token.")] = "cli",
    expires_days: Annotated[int | None, typer.Option(help="Lifetime in days.")] = None,
    scope: Annotated[list[str] | None, typer.Option(
        help="Limit the token to scope:resource:action patterns (repeatable).")] = None,
) -> None:
    """Create an API token for a user; the token is printed once, alone on the last line."""
    async def go(services: Services) -> str:
        async with services.store.read() as session:
            user = await user_by_email_index(session, email_index(services.keyring, email))
        if user is None:
            raise fail("error: no user with this email")
        issued = await run_flow(services, system_actor("cli"), RequestContext("cli"),
                                TokenCreate(user.public_id, name, expires_days,
                                            tuple(scope or ["*"])))
        typer.echo(f"token {issued.public_id} expires {issued.expires_at:%Y-%m-%d %H:%M} UTC")
        return issued.value
    typer.echo(run(with_services(ctx.obj, go)))


@events_app.command("verify")
def events_verify(ctx: typer.Context) -> None:
    """Walk the hash chain; exit 1 naming the first event that does not verify."""
    async def go(services: Services) -> None:
        anchor_file = services.settings.anchor_file
        try:
            anchors = read_anchors(anchor_file)
        except ValueError as exc:
            raise fail(f"error: {exc}") from None
        # One snapshot: the chain and its head as they were together, while `serve` appends.
        async with services.store.snapshot() as session:
            report = await verify(session)
            broken_anchor = await check_anchors(session, anchors)
        if not report.ok:
            raise fail(f"event {report.first_bad_seq} does not verify: {report.reason} "
                       f"({report.verified} events before it verified)")
        if broken_anchor:
            raise fail(f"event {broken_anchor[0]} does not verify: {broken_anchor[1]} "
                       f"(anchors in {anchor_file})")
        async with services.store.read() as session:
            await anchor_head(session, anchor_file, services.clock.now())
        typer.echo(f"{report.verified} events verified; head {report.head_hash}")
        if anchors:
            typer.echo(f"{len(anchors)} anchors in {anchor_file} hold")
    run(with_services(ctx.obj, go))


@keys_app.command("rotate")
def keys_rotate(ctx: typer.Context) -> None:
    """New master key; re-wrap every data key while the service runs; retire the old key."""
    async def go(services: Services) -> None:
        report = await rotate_master_key(services, system_actor("cli"), RequestContext("cli"))
        typer.echo(f"new master key {report.new_key}; {report.rewrapped} data keys re-wrapped")
        if report.retired:
            typer.echo("retired " + ", ".join(report.retired))
        else:
            typer.echo("old keys kept: data keys were written under them meanwhile; run again")
    run(with_services(ctx.obj, go))


@registrar_app.command("set")
def registrar_set(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Option()] = None,
    iana_id: Annotated[int | None, typer.Option()] = None,
    abuse_email: Annotated[str | None, typer.Option()] = None,
    abuse_phone: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Set the registrar's name, IANA ID and abuse contact."""
    record = cli_flow(ctx.obj, RegistrarUpdate(name, iana_id, abuse_email, abuse_phone))
    typer.echo(f"registrar {record.name} (IANA ID {record.iana_id or 'unset'})")


@sandbox_app.command("serve")
def sandbox_serve(
    ctx: typer.Context,
    listen: Annotated[str, typer.Option(
        "--listen", help="HOST:PORT for EPP over TLS (default 127.0.0.1:7700).")] =
        "127.0.0.1:7700",
    dns_listen: Annotated[str | None, typer.Option(
        "--dns-listen", help="HOST:PORT where the TLD zones are served over DNS, signed "
                             "(default: [sandbox] dns_listen, 127.0.0.1:5354), or 'off'.")]
        = None,
) -> None:
    """Run the sandbox registry until interrupted; state in <home>/sandbox-registry/."""
    from regshield.registry.sandbox.server import SandboxServer
    from regshield.registry.sandbox.state import SandboxConfig

    settings: Settings = ctx.obj.settings()
    logs.configure(settings.log_level)
    try:
        address = Listen.parse(listen, "--listen")
        dns_address = settings.sandbox_dns_listen if dns_listen is None else (
            None if dns_listen == "off" else Listen.parse(dns_listen, "--dns-listen"))
    except RegshieldError as exc:
        raise fail(f"error: {exc.detail}", 2) from None
    config = SandboxConfig.of(settings, listen=address, dns_listen=dns_address)

    async def go() -> None:
        server = await SandboxServer.start(config)
        try:
            typer.echo(f"sandbox registry: EPP over TLS on "
                       f"{Listen(address.host, server.port)}")
            typer.echo(f"server certificate: {server.certificate}")
            typer.echo(f"TLDs: {', '.join(config.tlds)}")
            if server.dns is not None and dns_address is not None:
                typer.echo(f"TLD zones over DNS on {Listen(dns_address.host, server.dns.port)}; "
                           "trust anchors:")
                for line in server.dns.trust_anchors():
                    typer.echo(f"  {line}")
            await server.serve_forever()
        finally:
            await server.close()

    with contextlib.suppress(KeyboardInterrupt):
        run(go())


@sandbox_app.command("add-registrar")
def sandbox_add_registrar(
    ctx: typer.Context,
    registrar_id: Annotated[str, typer.Argument(
        metavar="ID", help="The registrar's EPP client identifier (clID), 3 to 16 characters.")],
    password_stdin: Annotated[bool, typer.Option(
        "--password-stdin", help="Read the EPP password (6 to 16 characters) from standard "
                                 "input.")] = False,
    client_cert: Annotated[Path | None, typer.Option(
        "--client-cert", metavar="PEM", help="A certificate the registrar must present.")]
        = None,
    lock_password_file: Annotated[Path | None, typer.Option(
        "--lock-password-file", metavar="PATH",
        help="A file whose first line is the registry-lock password (6 to 16 characters, not "
             "the EPP password): a login with it may only set or lift registry-lock "
             "statuses.")] = None,
) -> None:
    """Accredit a registrar with the sandbox registry."""
    from regshield.registry.sandbox.state import SandboxConfig, SandboxState, sandbox_directory

    if not password_stdin:
        raise fail("error: pass --password-stdin and give the password on standard input", 2)
    password = read_password_stdin()
    lock_password = None if lock_password_file is None \
        else _read_first_line(lock_password_file, "--lock-password-file")
    config = SandboxConfig(directory=sandbox_directory(ctx.obj.settings().home))

    async def go() -> str | None:
        certificate = None if client_cert is None else client_cert.read_bytes()
        state = await SandboxState.open(config)
        try:
            added = await state.add_registrar(registrar_id, password, certificate,
                                              lock_password=lock_password)
        finally:
            await state.close()
        return added.certificate_sha256

    sha256 = run(go())
    typer.echo(f"registrar {registrar_id} added to the sandbox registry"
               + (f" (client certificate SHA-256 {sha256})" if sha256 else "")
               + ("; registry-lock password set" if lock_password is not None else ""))


EXIT_DRIFT = 3  # `registry sync`: drift was found (and adopted)


def _unreachable(name: str, exc: RegshieldError) -> typer.Exit:
    """A registry that could not be asked (or broke off): one line naming it, no traceback."""
    from regshield.registry.client import RegistryLoginRefused, RegistryUnavailable

    if isinstance(exc, RegistryUnavailable):
        return fail(f"error: the registry {name} cannot be reached: {exc.detail}")
    if isinstance(exc, RegistryLoginRefused):
        return fail(f"error: the registry {name} refused regshield's login: {exc.detail}")
    return fail(f"error: the registry {name}: {exc.title.lower()}: {exc.detail}")


@registry_app.command("poll")
def registry_poll(ctx: typer.Context) -> None:
    """Read every registry's message queue once: record each message as an event, apply what
    it means (transfers in and out), acknowledge it."""
    from regshield.flows.poll import poll_registry
    from regshield.registry.client import RegistryError

    async def go(services: Services) -> list[tuple[str, int]]:
        counts: list[tuple[str, int]] = []
        for name in sorted(services.registries.links):
            try:
                counts.append((name, await poll_registry(services, name)))
            except RegistryError as exc:
                raise _unreachable(name, exc) from None
        return counts

    for name, count in run(with_services(ctx.obj, go)):
        typer.echo(f"{name}: {count} message{'' if count == 1 else 's'}")


@registry_app.command("sync")
def registry_sync(
    ctx: typer.Context,
    registry: Annotated[str | None, typer.Option(
        "--registry", metavar="NAME", help="Only this registry link (default: every one).")]
        = None,
) -> None:
    """Compare every live domain with the registry's copy; record each difference as drift
    and adopt the registry's values. Exit 0: no drift; 3: drift found; 1: an error."""
    from regshield.flows.registry_sync import SyncReport, sync_registry
    from regshield.registry.client import RegistryLoginRefused, RegistryUnavailable

    async def go(services: Services) -> list[SyncReport]:
        names = [registry] if registry is not None else sorted(services.registries.links)
        reports: list[SyncReport] = []
        for name in names:
            try:
                reports.append(await sync_registry(services, name))
            except (RegistryUnavailable, RegistryLoginRefused) as exc:
                raise _unreachable(name, exc) from None
        return reports

    reports = run(with_services(ctx.obj, go))
    for report in reports:
        typer.echo(f"{report.link}: {report.checked} checked, {report.in_step} in step, "
                   f"{len(report.drift)} with drift, {len(report.skipped)} skipped, "
                   f"{len(report.errors)} errors")
        for drift in report.drift:
            typer.echo(f"  drift    {drift.domain}: {', '.join(drift.differences)}")
        for name, why in report.skipped:
            typer.echo(f"  skipped  {name}: {why}")
        for name, what in report.errors:
            typer.echo(f"  error    {name}: {what}")
    if any(report.errors for report in reports):
        raise typer.Exit(1)
    if any(report.drift for report in reports):
        raise typer.Exit(EXIT_DRIFT)


def _read_first_line(path: Path, option: str) -> str:
    """The first line of a secret file, without its line ending; a message when there is
    none."""
    try:
        with path.open(encoding="utf-8") as handle:
            line = handle.readline().rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise fail(f"error: {option}: cannot read {path}: "
                   f"{getattr(exc, 'strerror', None) or type(exc).__name__}") from None
    if not line:
        raise fail(f"error: {option}: the first line of {path} is empty")
    return line


def _redact_url(url: str) -> str:
    if "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"


def main() -> None:
    app()


# --- hosted zones --------------------------------------------------------------------------


secondary_app = typer.Typer(help="Secondary servers that transfer hosted zones.",
                            no_args_is_help=True)
app.add_typer(secondary_app, name="secondary")


@zone_app.command("import")
def zone_import(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The zone, e.g. example.com.")],
    zone_file: Annotated[Path, typer.Argument(help="A zone file; '-' reads standard input.")],
    account: Annotated[str | None, typer.Option(
        "--account", help="Host the zone for this account first when it is not hosted yet.")
    ] = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Replace more than 30 % of the zone's RRsets.")] = False,
) -> None:
    """Replace a hosted zone's RRsets with a zone file's (DNSSEC records are made again)."""
    text = sys.stdin.read() if str(zone_file) == "-" else _read_text(zone_file)
    report = cli_flow(ctx.obj, ZoneImport(name, text, account, force=force))
    typer.echo(f"{report.zone} serial {report.serial}: {report.rrsets} RRsets, "
               f"{report.records} records" + (
                   f" ({report.dropped_signer_records} signer records left out)"
                   if report.dropped_signer_records else ""))


@zone_app.command("verify")
def zone_verify_command(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The zone, e.g. example.com.")],
) -> None:
    """Serve a zone waiting for proof of control once its _regshield-challenge TXT record is
    served by every server its parent delegates it to."""
    view = cli_flow(ctx.obj, ZoneVerify(name))
    typer.echo(f"{view.name} {view.state}")


@zone_app.command("export")
def zone_export_command(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The zone, e.g. example.com.")],
) -> None:
    """Print a hosted zone as a zone file (unsigned: the signer's records are made on
    publication)."""
    async def go(services: Services) -> str:
        return await zone_export(services, system_actor("cli"), name)
    typer.echo(run(with_services(ctx.obj, go)), nl=False)


@secondary_app.command("add")
def secondary_add(
    ctx: typer.Context,
    zone: Annotated[str, typer.Argument(help="The hosted zone.")],
    address: Annotated[str, typer.Argument(help="ADDRESS:PORT of the secondary, e.g. "
                                                "192.0.2.53:53 or [2001:db8::53]:53.")],
    tsig: Annotated[str, typer.Option("--tsig", help="The TSIG key name; a new key is made "
                                                     "unless one of this name exists.")],
) -> None:
    """Let a secondary transfer a zone (AXFR/IXFR with TSIG hmac-sha256) and send it NOTIFY.
    A new key's secret is printed once: configure it on the secondary."""
    try:
        listen = Listen.parse(address, "address")
    except RegshieldError as exc:
        raise fail(f"error: {exc.detail}") from None
    added = cli_flow(ctx.obj, SecondaryAdd(zone, listen.host, listen.port, tsig))
    typer.echo(f"secondary {added.secondary.address} port {added.secondary.port} transfers "
               f"{zone.rstrip('.')}. with TSIG key {added.tsig_key} (hmac-sha256)")
    if added.tsig_secret is not None:
        typer.echo("secret (shown once):")
        typer.echo(added.tsig_secret)
    else:
        typer.echo("the key exists already: its secret is not shown again")


def _read_text(path: Path) -> str:
    try:
        return path.read_text()
    except UnicodeDecodeError:
        raise fail(f"error: {path} is not a text file") from None
