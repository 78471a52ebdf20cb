"""Settings: data directory, database URL, listeners.

Precedence, highest first: command-line options, environment (`REGSHIELD_*`), the config file
`regshield.toml` in the data directory, built-in embedded defaults.
"""

from __future__ import annotations

import ipaddress
import os
import sys
import tomllib
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from regshield.errors import ConfigurationError

DEFAULT_HOME = "./regshield-data"
CONFIG_FILE_NAME = "regshield.toml"
DEFAULT_HTTP_LISTEN = "127.0.0.1:8080"
DEFAULT_SANDBOX_LISTEN = "127.0.0.1:7700"  # EPP's port 700 needs privileges
DEFAULT_SANDBOX_DNS_LISTEN = "127.0.0.1:5354"  # beside the embedded server's 5353
DEFAULT_DNS_LISTEN = "127.0.0.1:5353"  # port 53 needs privileges
MIB = 1024 * 1024
DEFAULT_ZONE_IMPORT_MAX_BYTES = 16 * MIB


@dataclass(frozen=True)
class Listen:
    host: str
    port: int

    @classmethod
    def parse(cls, text: str, option: str = "listen") -> Listen:
        host, sep, port_text = text.rpartition(":")
        if not sep or not host or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
            raise ConfigurationError(f"{option}: expected HOST:PORT, got {text!r}")
        return cls(host=host.strip("[]"), port=int(port_text))

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


SMTP_SECURITY_MODES = ("none", "starttls", "tls")
# The usual port of each mode, used when none is configured.
SMTP_DEFAULT_PORTS = {"none": 25, "starttls": 587, "tls": 465}
SMTP_FILE_KEYS = frozenset({"enabled", "host", "port", "sender", "security", "username",
                            "password_file", "timeout", "ca_file", "report_to"})
SMTP_MAX_TIMEOUT = 600.0


@dataclass(frozen=True)
class SmtpSettings:
    """Outgoing mail (notices of sensitive changes): `REGSHIELD_SMTP_*` over `[smtp]`.

    Disabled by default: a fresh embedded install has no mail server, so messages are written
    as `.eml` files to `<home>/outbox-mail/` instead (notify/delivery.py). The password comes
    from `REGSHIELD_SMTP_PASSWORD` or the file named by `password_file`, never from
    regshield.toml, which tends to be readable by many and kept in version control.
    """

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 25
    # The From address and the envelope sender (bounces go there).
    sender: str = "regshield@localhost"
    security: str = "none"  # one of SMTP_SECURITY_MODES; certificates are always verified
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    password_file: Path | None = None
    timeout: float = 30.0
    # Certificates to trust for the server's (default: the system's trust store).
    ca_file: Path | None = None
    # Where recipients report a change they did not make (default: the registrar's abuse
    # address from the registrar record).
    report_to: str | None = None

    def read_password(self) -> str | None:
        """The password: from the environment, else read from `password_file` when needed, so
        that a rotated file is picked up without a restart."""
        if self.password is not None or self.password_file is None:
            return self.password
        try:
            return self.password_file.read_text().rstrip("\r\n")
        except OSError as exc:
            raise ConfigurationError(
                f"smtp.password_file: cannot read {self.password_file} ({exc.strerror})") from exc

    @classmethod
    def load(cls, env: dict[str, str], file_values: dict[str, Any]) -> SmtpSettings:
        table = file_values.get("smtp", {})
        if not isinstance(table, dict):
            raise ConfigurationError("smtp: expected an [smtp] table")
        if "password" in table:
            raise ConfigurationError("smtp.password: not read from regshield.toml; set "
                                     "REGSHIELD_SMTP_PASSWORD or smtp.password_file")
        unknown = sorted(set(table) - SMTP_FILE_KEYS)
        if unknown:
            raise ConfigurationError(f"smtp: unknown settings: {', '.join(unknown)}")

        def value(key: str) -> str | None:
            return env.get(f"REGSHIELD_SMTP_{key.upper()}") or _get(file_values, "smtp", key)

        enabled_text = (value("enabled") or "false").strip().lower()
        if enabled_text not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
            raise ConfigurationError(f"smtp.enabled: expected true or false, got {enabled_text!r}")
        security = (value("security") or "none").strip().lower()
        if security not in SMTP_SECURITY_MODES:
            raise ConfigurationError(f"smtp.security: expected one of "
                                     f"{', '.join(SMTP_SECURITY_MODES)}, got {security!r}")
        port_text = value("port") or str(SMTP_DEFAULT_PORTS[security])
        if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            raise ConfigurationError(f"smtp.port: expected a port number, got {port_text!r}")
        timeout_text = value("timeout") or "30"
        try:
            timeout = float(timeout_text)
        except ValueError:
            timeout = -1.0
        if not 0 < timeout <= SMTP_MAX_TIMEOUT:
            raise ConfigurationError(
                f"smtp.timeout: expected seconds from 0 to {SMTP_MAX_TIMEOUT:g}, "
                f"got {timeout_text!r}")
        sender = value("sender") or "regshield@localhost"
        report_to = value("report_to")
        for option, address in (("sender", sender), ("report_to", report_to)):
            if address is not None and not _looks_like_address(address):
                raise ConfigurationError(f"smtp.{option}: expected an email address")
        settings = cls(
            enabled=enabled_text in ("true", "1", "yes", "on"), host=value("host") or "127.0.0.1",
            port=int(port_text), sender=sender, security=security,
            username=value("username") or None,
            password=env.get("REGSHIELD_SMTP_PASSWORD") or None,
            password_file=_path(value("password_file")), timeout=timeout,
            ca_file=_path(value("ca_file")), report_to=report_to,
        )
        if settings.username and security == "none":
            raise ConfigurationError("smtp.username: signing in needs security starttls or tls; "
                                     "the password would cross the network in clear")
        if (settings.enabled and settings.username and settings.password is None
                and settings.password_file is None):
            raise ConfigurationError("smtp.username is set but no password: set "
                                     "REGSHIELD_SMTP_PASSWORD or smtp.password_file")
        return settings


def _looks_like_address(text: str) -> bool:
    local, at, domain = text.rpartition("@")
    return bool(at and local and domain) and text.isprintable() and " " not in text


SERIAL_SCHEMES = ("unixtime", "increment", "date")
DNS_FILE_KEYS = frozenset({"listen", "nameservers", "hostmaster", "serial_scheme",
                           "resolver", "hsm_module", "hsm_token", "hsm_pin_file",
                           "allowed_secondary_networks", "rrl", "tcp_connections_per_source"})
DNS_RRL_KEYS = frozenset({"enabled", "responses_per_second", "slip", "window",
                          "exempt_networks"})
DNS_FILE_KEYS |= {"workers"}
DEFAULT_HSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
DEFAULT_TCP_CONNECTIONS_PER_SOURCE = 16


@dataclass(frozen=True)
class RrlSettings:
    """Response rate limiting of the embedded DNS server's UDP answers: `[dns.rrl]`.

    Each client prefix (IPv4 /24, IPv6 /56) may get `responses_per_second` answers, and up
    to `responses_per_second * window` at once after a quiet spell; beyond that every
    `slip`-th answer goes out truncated (the client retries over TCP) and the others are
    dropped (`slip = 0` drops them all, `slip = 1` truncates them all). Addresses in
    `exempt_networks` and the zones' secondaries are never limited. `enabled = false` turns
    it off (not advised on a public address: the server becomes an amplifier)."""

    enabled: bool = True
    responses_per_second: float = 200.0
    slip: int = 2
    window: float = 1.0
    exempt_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @classmethod
    def load(cls, table: Any) -> RrlSettings:
        if not isinstance(table, dict):
            raise ConfigurationError("dns.rrl: expected a table ([dns.rrl])")
        unknown = sorted(set(table) - DNS_RRL_KEYS)
        if unknown:
            raise ConfigurationError(
                f"dns.rrl: unknown settings: {', '.join(unknown)} (known: "
                f"{', '.join(sorted(DNS_RRL_KEYS))})")
        enabled = table.get("enabled", cls.enabled)
        if not isinstance(enabled, bool):
            raise ConfigurationError("dns.rrl.enabled: expected true or false")
        rate = table.get("responses_per_second", cls.responses_per_second)
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not rate > 0:
            raise ConfigurationError("dns.rrl.responses_per_second: expected a number above 0")
        slip = table.get("slip", cls.slip)
        if isinstance(slip, bool) or not isinstance(slip, int) or not 0 <= slip <= 10:
            raise ConfigurationError("dns.rrl.slip: expected a whole number from 0 (drop every "
                                     "limited answer) to 10")
        window = table.get("window", cls.window)
        if isinstance(window, bool) or not isinstance(window, int | float) or not (
                0 < window <= 60):
            raise ConfigurationError("dns.rrl.window: expected seconds above 0, at most 60")
        networks = _networks(table.get("exempt_networks", []), "dns.rrl.exempt_networks")
        return cls(enabled=enabled, responses_per_second=float(rate), slip=slip,
                   window=float(window), exempt_networks=networks)


@dataclass(frozen=True)
class DnsSettings:
    """Hosted zones and the embedded server: `[dns]` in regshield.toml, `REGSHIELD_DNS_LISTEN`.

    `nameservers` make a new zone's apex NS RRset and its SOA MNAME (the first); `hostmaster`
    is the SOA RNAME, as a domain name. `listen` is where `regshield serve` answers DNS
    (UDP and TCP, with transfers to the secondaries); "off" turns it off. `[dns.rrl]` limits
    its UDP answers (`RrlSettings`); `tcp_connections_per_source` caps the TCP connections
    one address holds open. `workers` processes answer there (`REGSHIELD_DNS_WORKERS`; one
    per core by default; dns/workers.py)."""

    listen: Listen | None = field(default_factory=lambda: Listen.parse(DEFAULT_DNS_LISTEN))
    nameservers: tuple[str, ...] = ("ns1.regshield.test.", "ns2.regshield.test.")
    hostmaster: str = "hostmaster.regshield.test."
    serial_scheme: str = "unixtime"
    # The resolver asked for customers' live DNSKEY sets (DS checks); None: the system's.
    resolver: Listen | None = None
    # The port asked on the servers a delegation names (a zone's proof-of-control check);
    # only tests, whose servers listen on loopback ports, set another.
    authoritative_port: int = 53
    # With a token label, new zone keys are made in that PKCS#11 token and never leave it
    # (dnssec/hsm.py); the PIN comes from REGSHIELD_HSM_PIN or `hsm_pin_file`.
    hsm_module: str = DEFAULT_HSM_MODULE
    hsm_token: str | None = None
    hsm_pin: str | None = field(default=None, repr=False)
    # Networks whose addresses may be secondaries (NOTIFY and SOA queries go there) although
    # they are not public: loopback, private, link-local... (rules/addresses.py). None by
    # default: a secondary must be on a public address.
    allowed_secondary_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    # Response rate limiting of UDP answers ([dns.rrl], see RrlSettings).
    rrl: RrlSettings = field(default_factory=RrlSettings)
    # TCP connections one address may hold open at once; beyond, new ones are closed at once.
    tcp_connections_per_source: int = DEFAULT_TCP_CONNECTIONS_PER_SOURCE
    # Processes answering on `listen` together (SO_REUSEPORT): this one and `workers - 1`
    # children fed every snapshot by it (dns/workers.py). 0 in the file: one per core.
    workers: int = 1

    @classmethod
    def load(cls, env: dict[str, str], file_values: dict[str, Any],
             listen: str | None = None) -> DnsSettings:
        table = _table(file_values, "dns", DNS_FILE_KEYS)
        listen_text = (listen or env.get("REGSHIELD_DNS_LISTEN")
                       or _get(file_values, "dns", "listen"))
        address = None if listen_text == "off" else Listen.parse(
            listen_text or DEFAULT_DNS_LISTEN, "dns.listen")
        nameservers = table.get("nameservers", list(cls.nameservers))
        if (not isinstance(nameservers, list) or not nameservers
                or not all(isinstance(n, str) and n for n in nameservers)):
            raise ConfigurationError("dns.nameservers: expected a list of host names")
        scheme = str(table.get("serial_scheme", cls.serial_scheme))
        if scheme not in SERIAL_SCHEMES:
            raise ConfigurationError(f"dns.serial_scheme: expected one of "
                                     f"{', '.join(SERIAL_SCHEMES)}, got {scheme!r}")
        resolver_text = env.get("REGSHIELD_DNS_RESOLVER") or _get(file_values, "dns", "resolver")
        resolver = Listen.parse(resolver_text, "dns.resolver") if resolver_text else None
        token = env.get("REGSHIELD_HSM_TOKEN") or _get(file_values, "dns", "hsm_token")
        pin = env.get("REGSHIELD_HSM_PIN")
        pin_file = _get(file_values, "dns", "hsm_pin_file")
        if token and pin is None and pin_file:
            try:
                pin = Path(pin_file).expanduser().read_text().strip()
            except OSError as exc:
                raise ConfigurationError(
                    f"dns.hsm_pin_file: cannot read {pin_file} ({exc.strerror})") from exc
        if token and not pin:
            raise ConfigurationError("dns.hsm_token is set but no PIN: set REGSHIELD_HSM_PIN "
                                     "or dns.hsm_pin_file")
        networks_text = env.get("REGSHIELD_DNS_ALLOWED_SECONDARY_NETWORKS")
        networks = _networks(networks_text.split(",") if networks_text is not None
                             else table.get("allowed_secondary_networks", []),
                             "dns.allowed_secondary_networks")
        rrl = RrlSettings.load(table.get("rrl", {}))
        per_source = table.get("tcp_connections_per_source", DEFAULT_TCP_CONNECTIONS_PER_SOURCE)
        if isinstance(per_source, bool) or not isinstance(per_source, int) or per_source < 1:
            raise ConfigurationError("dns.tcp_connections_per_source: expected a whole number "
                                     "of at least 1")
        return cls(listen=address, nameservers=tuple(_absolute(n) for n in nameservers),
                   hostmaster=_absolute(str(table.get("hostmaster", cls.hostmaster))),
                   serial_scheme=scheme, resolver=resolver,
                   hsm_module=env.get("REGSHIELD_HSM_MODULE")
                   or _get(file_values, "dns", "hsm_module") or DEFAULT_HSM_MODULE,
                   hsm_token=token or None, hsm_pin=pin if token else None,
                   allowed_secondary_networks=networks, rrl=rrl,
                   tcp_connections_per_source=per_source,
                   workers=_workers(env.get("REGSHIELD_DNS_WORKERS")
                                    or table.get("workers", 0), "dns.workers"))


MAX_WORKERS = 256


def _workers(value: Any, option: str) -> int:
    """A number of processes: 0 (or "auto") for one per core the process may run on.

    Several processes on one port need Linux: its SO_REUSEPORT spreads datagrams over them
    (elsewhere the last one bound gets them all), and children are watched by pidfd."""
    linux = sys.platform == "linux"
    if value in (0, "0", "auto"):
        return max(1, len(os.sched_getaffinity(0))) if linux else 1
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_WORKERS:
        raise ConfigurationError(f"{option}: expected a number of processes from 1 to "
                                 f"{MAX_WORKERS}, or 0 for one per core, got {value!r}")
    if value > 1 and not linux:
        raise ConfigurationError(f"{option}: more than one process needs Linux (SO_REUSEPORT "
                                 f"spreading queries over them), not {sys.platform}")
    return value


def _http_workers(value: Any, *, sqlite: bool) -> int:
    """`[http] workers`: the processes serving HTTP, the main one counted. By default (or 0,
    "auto") one per core on PostgreSQL, and one on SQLite, whose writes one process serializes
    (`Store._write_turn`) and which several would meet as a locked database file."""
    if value is None or value in (0, "0", "auto"):
        return 1 if sqlite else _workers(0, "http.workers")
    count = _workers(value, "http.workers")
    if count > 1 and sqlite:
        raise ConfigurationError(
            f"http.workers: {count} processes need PostgreSQL; on SQLite one process serves "
            "HTTP (its writes are serialized within one process and would meet SQLite's "
            "file lock across several): set it to 1, or use a postgresql:// database")
    return count


def _networks(values: Any, option: str
              ) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """A list of networks in CIDR notation (an address alone is a network of one)."""
    if not isinstance(values, list):
        raise ConfigurationError(f"{option}: expected a list of networks, such as "
                                 '["10.0.0.0/8", "fd00::/8"]')
    networks = []
    for value in values:
        text = str(value).strip()
        if not text:
            continue
        try:
            networks.append(ipaddress.ip_network(text))
        except ValueError:
            raise ConfigurationError(
                f"{option}: expected networks such as 10.0.0.0/8 (no host bits set), "
                f"got {text!r}") from None
    return tuple(networks)


RDAP_FILE_KEYS = frozenset({"base_url"})
RDDS_FILE_KEYS = frozenset({"registrar_url", "terms_url", "whois_listen",
                            "whois_server", "per_minute", "burst", "authenticated_per_minute"})
DEFAULT_RDDS_PER_MINUTE = 60
DEFAULT_RDDS_BURST = 30
DEFAULT_RDDS_AUTHENTICATED_PER_MINUTE = 600


@dataclass(frozen=True)
class RddsSettings:
    """RDAP and WHOIS: `[rdds]` in regshield.toml, and `[rdap] base_url`.

    `rdap_base_url` (`[rdap] base_url`, `REGSHIELD_RDAP_BASE_URL`) is the base registered with
    IANA and used in RDAP links (by default `<http.public_url>/rdap/`); `registrar_url` and
    `terms_url` are the registrar's web site and its terms of service (by default pages of the
    public URL). `whois_listen` is where
    `regshield serve` answers port-43 WHOIS (off unless set, or `serve --whois`).
    Limits are per source network per minute, with a burst; authenticated requesters get
    `authenticated_per_minute` each."""

    rdap_base_url: str | None = None
    registrar_url: str | None = None
    terms_url: str | None = None
    whois_listen: Listen | None = None
    whois_server: str | None = None  # the host name WHOIS answers name as their server
    per_minute: int = DEFAULT_RDDS_PER_MINUTE
    burst: int = DEFAULT_RDDS_BURST
    authenticated_per_minute: int = DEFAULT_RDDS_AUTHENTICATED_PER_MINUTE

    @classmethod
    def load(cls, env: dict[str, str], file_values: dict[str, Any],
             whois: str | None = None) -> RddsSettings:
        for section, known in (("rdds", RDDS_FILE_KEYS), ("rdap", RDAP_FILE_KEYS)):
            _table(file_values, section, known)

        def value(key: str) -> str | None:
            return env.get(f"REGSHIELD_RDDS_{key.upper()}") or _get(file_values, "rdds", key)

        urls = {key: _public_url(value(key), f"rdds.{key}")
                for key in ("registrar_url", "terms_url")}
        base = _public_url(env.get("REGSHIELD_RDAP_BASE_URL")
                           or _get(file_values, "rdap", "base_url"), "rdap.base_url")
        whois_text = whois or value("whois_listen")
        return cls(
            rdap_base_url=base if base is None or base.endswith("/") else f"{base}/",
            registrar_url=urls["registrar_url"], terms_url=urls["terms_url"],
            whois_listen=_listen_or_off(whois_text, "rdds.whois_listen") if whois_text else None,
            whois_server=value("whois_server"),
            per_minute=_count(value("per_minute"), "rdds.per_minute", DEFAULT_RDDS_PER_MINUTE),
            burst=_count(value("burst"), "rdds.burst", DEFAULT_RDDS_BURST),
            authenticated_per_minute=_count(value("authenticated_per_minute"),
                                            "rdds.authenticated_per_minute",
                                            DEFAULT_RDDS_AUTHENTICATED_PER_MINUTE))


LIMITS_FILE_KEYS = frozenset({
    "store", "redis_url", "store_timeout_ms", "api_per_minute", "api_burst",
    "contact_sender_per_day", "whois_connections_per_source", "http_connections_per_source",
    "http_header_timeout", "http_body_timeout", "http_keep_alive_timeout"})
LIMIT_STORES = ("redis", "database", "process")


@dataclass(frozen=True)
class LimitsSettings:
    """Limits that hold across processes and instances: `[limits]` in regshield.toml, each key
    also `REGSHIELD_LIMITS_<KEY>` (and `REGSHIELD_REDIS_URL` for `redis_url`).

    `store` is where the rate-limit buckets of RDAP, WHOIS, the contact form and the API are
    kept (security/limits.py): `redis` (the default when `redis_url` is set), `database` (the
    default otherwise: a table every instance shares) or `process` (this process only). A
    store that does not answer within `store_timeout_ms` leaves the decision to the process's
    own buckets. `api_per_minute` and `api_burst` bound the API per source address and, apart,
    per bearer token. `contact_sender_per_day` is how many messages one sender (source
    network) may send to one domain's contacts in a day, within the domain's own daily cap.
    `whois_connections_per_source` and `http_connections_per_source` cap one source's open
    connections; the HTTP listener closes a connection that has not sent a request's headers
    within `http_header_timeout` seconds (counted from its start or from the last answer), or
    its body within `http_body_timeout`, and an idle keep-alive connection after
    `http_keep_alive_timeout`."""

    store: str = "database"
    redis_url: str | None = None
    store_timeout_ms: int = 500
    api_per_minute: int = 1200
    api_burst: int = 600
    contact_sender_per_day: int = 3
    whois_connections_per_source: int = 8
    http_connections_per_source: int = 64
    http_header_timeout: int = 10
    http_body_timeout: int = 60
    http_keep_alive_timeout: int = 5

    @classmethod
    def load(cls, env: dict[str, str], file_values: dict[str, Any]) -> LimitsSettings:
        _table(file_values, "limits", LIMITS_FILE_KEYS)

        def value(key: str) -> str | None:
            return env.get(f"REGSHIELD_LIMITS_{key.upper()}") or _get(file_values, "limits", key)

        redis_url = env.get("REGSHIELD_REDIS_URL") or value("redis_url") or None
        if redis_url is not None and not redis_url.startswith(("redis://", "rediss://",
                                                               "unix://")):
            raise ConfigurationError("limits.redis_url: expected a redis://, rediss:// or "
                                     "unix:// URL")
        store = (value("store") or ("redis" if redis_url else "database")).lower()
        if store not in LIMIT_STORES:
            raise ConfigurationError(f"limits.store: expected one of {', '.join(LIMIT_STORES)}, "
                                     f"got {store!r}")
        if store == "redis" and redis_url is None:
            raise ConfigurationError("limits.store: redis needs limits.redis_url "
                                     "(or REGSHIELD_REDIS_URL)")
        defaults = cls()
        counts = {key: _count(value(key), f"limits.{key}", getattr(defaults, key))
                  for key in ("store_timeout_ms", "api_per_minute", "api_burst",
                              "contact_sender_per_day", "whois_connections_per_source",
                              "http_connections_per_source", "http_header_timeout",
                              "http_body_timeout", "http_keep_alive_timeout")}
        return cls(store=store, redis_url=redis_url, **counts)


SANDBOX_CAPS = ("max_connections", "connections_per_source", "max_frame_bytes",
                "login_timeout", "idle_timeout", "max_login_failures")
SANDBOX_FILE_KEYS = frozenset({"listen", "dns_listen", *SANDBOX_CAPS})


@dataclass(frozen=True)
class SandboxCaps:
    """What the built-in sandbox registry allows a client (registry/sandbox/state.py
    `SandboxConfig` says what each does): `[sandbox]` keys in regshield.toml, each also
    `REGSHIELD_SANDBOX_<KEY>`. Timeouts are in seconds."""

    max_connections: int = 256
    connections_per_source: int = 16
    max_frame_bytes: int = 256 * 1024
    login_timeout: int = 60
    idle_timeout: int = 600
    max_login_failures: int = 3

    @classmethod
    def load(cls, env: dict[str, str], file_values: dict[str, Any]) -> SandboxCaps:
        _table(file_values, "sandbox", SANDBOX_FILE_KEYS)
        defaults = cls()
        return cls(**{key: _count(env.get(f"REGSHIELD_SANDBOX_{key.upper()}")
                                  or _get(file_values, "sandbox", key), f"sandbox.{key}",
                                  getattr(defaults, key))
                      for key in SANDBOX_CAPS})


def _table(file_values: dict[str, Any], section: str, known: frozenset[str]) -> dict[str, Any]:
    """`[section]` of regshield.toml (empty when absent), refused unless it is a table of
    known settings only."""
    table = file_values.get(section, {})
    if not isinstance(table, dict):
        raise ConfigurationError(f"{section}: expected a [{section}] table")
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigurationError(f"{section}: unknown settings: {', '.join(unknown)}")
    return table


def _count(text: str | None, option: str, default: int) -> int:
    if text is None:
        return default
    if not text.isdigit() or not 1 <= int(text) <= 10_000_000:
        raise ConfigurationError(
            f"{option}: expected a whole number from 1 to 10000000, got {text!r}")
    return int(text)


def _absolute(name: str) -> str:
    return name.lower() if name.endswith(".") else f"{name.lower()}."


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str
    http: Listen = field(default_factory=lambda: Listen.parse(DEFAULT_HTTP_LISTEN))
    # Processes serving HTTP on `http` together (SO_REUSEPORT), this one counted: `[http]
    # workers`, `REGSHIELD_HTTP_WORKERS` (api/workers.py; see `_http_workers` for the default).
    http_workers: int = 1
    # Reverse proxies in front of the HTTP listener, whose X-Forwarded-For names the client:
    # `[http] trusted_proxies`, `REGSHIELD_HTTP_TRUSTED_PROXIES` (api/forwarded.py).
    http_trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    dns: DnsSettings = field(default_factory=DnsSettings)
    rdds: RddsSettings = field(default_factory=RddsSettings)
    limits: LimitsSettings = field(default_factory=LimitsSettings)
    # A master key ring given in the environment instead of the key file (see security/keyring.py).
    master_key_env: str | None = None
    log_level: str = "info"
    # Copies of the event chain head, kept outside the database (see eventlog/anchors.py).
    event_anchor_file: Path | None = None
    # `[registries.NAME]` tables of the config file, read by registry/links.py; none means
    # the embedded default: the built-in sandbox registry, started by `regshield serve`.
    registries: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Where `regshield serve` runs the sandbox registry when it is the link in use.
    sandbox_listen: Listen = field(default_factory=lambda: Listen.parse(DEFAULT_SANDBOX_LISTEN))
    # Where the sandbox serves its TLD zones over DNS; None ("off") serves none.
    sandbox_dns_listen: Listen | None = field(
        default_factory=lambda: Listen.parse(DEFAULT_SANDBOX_DNS_LISTEN))
    # The sandbox registry's caps on its clients (`[sandbox]`).
    sandbox_caps: SandboxCaps = field(default_factory=SandboxCaps)
    # Overrides the security policy's step-up window (minutes since the last second factor).
    step_up_minutes: int | None = None
    # When the Transfer Policy Review rules take effect here (policy/transfer.py); None keeps
    # the 2016/2024 Transfer Policy.
    tpr_effective: date | None = None
    # Whether every registry-lock request also needs a second staff member's approval.
    registry_lock_approval: bool = False
    # The address the public reaches this installation's HTTP listener at (verification links,
    # the contact form, the disclosure portal, RDAP links); by default the listener itself.
    public_url_setting: str | None = None
    # Days that are not business days for disclosure-request deadlines, beside weekends.
    disclosure_holidays: frozenset[date] = frozenset()
    # The largest zone-import request body (every other request body: 1 MiB, api/body_limit.py).
    zone_import_max_bytes: int = DEFAULT_ZONE_IMPORT_MAX_BYTES

    @property
    def public_url(self) -> str:
        """The public base URL, without a trailing slash."""
        if self.public_url_setting:
            return self.public_url_setting.rstrip("/")
        return f"http://{self.http}"

    @property
    def rdap_base_url(self) -> str:
        """The RDAP base URL, ending in a slash."""
        return self.rdds.rdap_base_url or f"{self.public_url}/rdap/"

    @property
    def registrar_url(self) -> str:
        return self.rdds.registrar_url or f"{self.public_url}/"

    @property
    def terms_url(self) -> str:
        return self.rdds.terms_url or f"{self.public_url}/rdap/help"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def key_file(self) -> Path:
        return self.home / "keys" / "master.json"

    @property
    def anchor_file(self) -> Path:
        return self.event_anchor_file or self.home / "event-anchors.log"

    @classmethod
    def load(
        cls,
        home: str | Path | None = None,
        database_url: str | None = None,
        http: str | None = None,
        environ: dict[str, str] | None = None,
        dns: str | None = None,
        whois: str | None = None,
    ) -> Settings:
        env = dict(os.environ) if environ is None else environ
        home_path = Path(home or env.get("REGSHIELD_HOME") or DEFAULT_HOME).expanduser().absolute()
        file_values = _read_config_file(home_path / CONFIG_FILE_NAME)
        url = (
            database_url
            or env.get("REGSHIELD_DATABASE_URL")
            or _get(file_values, "database", "url")
            or f"sqlite:///{home_path / 'regshield.db'}"
        )
        http_text = (
            http or env.get("REGSHIELD_HTTP") or _get(file_values, "http", "listen")
            or DEFAULT_HTTP_LISTEN
        )
        return cls(
            home=home_path,
            database_url=normalize_database_url(url),
            http=Listen.parse(http_text, "http"),
            http_workers=_http_workers(
                env.get("REGSHIELD_HTTP_WORKERS") or file_values.get("http", {}).get("workers"),
                sqlite=normalize_database_url(url).startswith("sqlite")),
            http_trusted_proxies=_networks(
                env["REGSHIELD_HTTP_TRUSTED_PROXIES"].split(",")
                if env.get("REGSHIELD_HTTP_TRUSTED_PROXIES")
                else file_values.get("http", {}).get("trusted_proxies", []),
                "http.trusted_proxies"),
            smtp=SmtpSettings.load(env, file_values),
            dns=DnsSettings.load(env, file_values, dns),
            rdds=RddsSettings.load(env, file_values, whois),
            limits=LimitsSettings.load(env, file_values),
            master_key_env=env.get("REGSHIELD_MASTER_KEY") or None,
            log_level=env.get("REGSHIELD_LOG_LEVEL") or _get(file_values, "log", "level") or "info",
            event_anchor_file=_path(env.get("REGSHIELD_EVENT_ANCHORS")
                                    or _get(file_values, "events", "anchor_file")),
            registries=_registries(file_values),
            sandbox_listen=Listen.parse(
                env.get("REGSHIELD_SANDBOX_LISTEN") or _get(file_values, "sandbox", "listen")
                or DEFAULT_SANDBOX_LISTEN, "sandbox.listen"),
            sandbox_dns_listen=_listen_or_off(
                env.get("REGSHIELD_SANDBOX_DNS_LISTEN")
                or _get(file_values, "sandbox", "dns_listen") or DEFAULT_SANDBOX_DNS_LISTEN,
                "sandbox.dns_listen"),
            sandbox_caps=SandboxCaps.load(env, file_values),
            step_up_minutes=_minutes(env.get("REGSHIELD_STEP_UP_MINUTES")
                                     or _get(file_values, "security", "step_up_minutes"),
                                     "security.step_up_minutes"),
            tpr_effective=_date(env.get("REGSHIELD_TPR_EFFECTIVE")
                                or _get(file_values, "policy", "transfer_policy_review_effective"),
                                "policy.transfer_policy_review_effective"),
            registry_lock_approval=(env.get("REGSHIELD_REGISTRY_LOCK_APPROVAL")
                                    or _get(file_values, "registry_lock", "approval")
                                    or "false").lower() in ("1", "true", "yes"),
            disclosure_holidays=_holidays(env.get("REGSHIELD_DISCLOSURE_HOLIDAYS"),
                                          file_values),
            public_url_setting=_public_url(env.get("REGSHIELD_PUBLIC_URL")
                                           or _get(file_values, "http", "public_url"),
                                           "http.public_url"),
            zone_import_max_bytes=_byte_count(
                env.get("REGSHIELD_ZONE_IMPORT_MAX_BYTES")
                or _get(file_values, "http", "zone_import_max_bytes"),
                "http.zone_import_max_bytes", DEFAULT_ZONE_IMPORT_MAX_BYTES),
        )


def normalize_database_url(url: str) -> str:
    """Accept plain `postgresql://` and `sqlite:///` URLs and pick the async drivers."""
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url.split(":///", 1)[1]
    if url.startswith(("postgresql+asyncpg://", "sqlite+aiosqlite:///")):
        return url
    raise ConfigurationError(
        f"database URL must start with postgresql:// or sqlite:///, got {url.split(':', 1)[0]}:"
    )


def _read_config_file(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{path}: {exc}") from exc


def _registries(values: dict[str, Any]) -> dict[str, dict[str, Any]]:
    tables = values.get("registries", {})
    if not isinstance(tables, dict) or not all(isinstance(t, dict) for t in tables.values()):
        raise ConfigurationError("registries: expected [registries.NAME] tables")
    return {str(name): dict(table) for name, table in tables.items()}


def _listen_or_off(text: str, option: str) -> Listen | None:
    return None if text == "off" else Listen.parse(text, option)


def _date(text: str | None, option: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ConfigurationError(f"{option}: expected a date (YYYY-MM-DD), got {text!r}") from None


def _holidays(text: str | None, file_values: dict[str, Any]) -> frozenset[date]:
    """`REGSHIELD_DISCLOSURE_HOLIDAYS` (comma-separated dates) or `[disclosure] holidays`."""
    option = "disclosure.holidays"
    table = file_values.get("disclosure", {})
    if not isinstance(table, dict) or set(table) - {"holidays"}:
        raise ConfigurationError("disclosure: expected a [disclosure] table with holidays only")
    values: Any = text.split(",") if text is not None else table.get("holidays", [])
    if not isinstance(values, list):
        raise ConfigurationError(f"{option}: expected a list of dates (YYYY-MM-DD)")
    days = set()
    for value in values:
        day = _date(str(value).strip(), option) if str(value).strip() else None
        if day is not None:
            days.add(day)
    return frozenset(days)


def _byte_count(value: object, option: str, default: int) -> int:
    """A size in bytes, from 1 MiB to 1 GiB."""
    if value is None:
        return default
    text = str(value).strip()
    if not text.isdigit() or not MIB <= int(text) <= 1024 * MIB:
        raise ConfigurationError(f"{option}: expected a number of bytes from {MIB} to "
                                 f"{1024 * MIB}, got {text!r}")
    return int(text)


def _minutes(text: str | None, option: str) -> int | None:
    if text is None:
        return None
    if not text.isdigit() or not 1 <= int(text) <= 60:
        raise ConfigurationError(f"{option}: expected whole minutes from 1 to 60, got {text!r}")
    return int(text)


def _public_url(text: str | None, option: str) -> str | None:
    if text is None:
        return None
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query \
            or parts.fragment:
        raise ConfigurationError(
            f"{option}: expected an http(s) URL without query or fragment, got {text!r}")
    return text


def _path(text: str | None) -> Path | None:
    return Path(text).expanduser().absolute() if text else None


def _get(values: dict[str, Any], section: str, key: str) -> str | None:
    value = values.get(section, {}).get(key)
    return str(value) if value is not None else None
