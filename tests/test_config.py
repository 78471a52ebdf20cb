"""Settings: command line over environment over the config file over embedded defaults."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import pytest

from regshield.config import Listen, Settings, SmtpSettings, normalize_database_url
from regshield.errors import ConfigurationError
from regshield.registry.sandbox.state import SandboxConfig


def test_embedded_defaults_put_sqlite_in_the_data_directory(tmp_path: Path) -> None:
    settings = Settings.load(home=tmp_path, environ={})
    assert settings.database_url == f"sqlite+aiosqlite:///{tmp_path / 'regshield.db'}"
    assert str(settings.http) == "127.0.0.1:8080"
    assert settings.key_file == tmp_path / "keys" / "master.json"


def test_home_defaults_to_regshield_data_in_the_working_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert Settings.load(environ={}).home == tmp_path / "regshield-data"


def test_environment_overrides_config_file_and_option_overrides_environment(
        tmp_path: Path) -> None:
    (tmp_path / "regshield.toml").write_text(
        '[database]\nurl = "postgresql://file@db/a"\n[http]\nlisten = "127.0.0.1:9000"\n')
    from_file = Settings.load(home=tmp_path, environ={})
    assert from_file.database_url == "postgresql+asyncpg://file@db/a"
    assert from_file.http.port == 9000
    environ = {"REGSHIELD_DATABASE_URL": "postgresql://env@db/b"}
    assert Settings.load(home=tmp_path, environ=environ).database_url.endswith("env@db/b")
    chosen = Settings.load(home=tmp_path, database_url="postgresql://opt@db/c", environ=environ)
    assert chosen.database_url.endswith("opt@db/c")


def test_home_comes_from_the_environment(tmp_path: Path) -> None:
    settings = Settings.load(environ={"REGSHIELD_HOME": str(tmp_path / "elsewhere")})
    assert settings.home == tmp_path / "elsewhere"


@pytest.mark.parametrize("url", ["mysql://root@localhost/x", "postgres", "sqlite:memory"])
def test_unknown_database_urls_are_refused_with_the_scheme_named(url: str) -> None:
    with pytest.raises(ConfigurationError, match="must start with postgresql:// or sqlite:///"):
        normalize_database_url(url)


@pytest.mark.parametrize("text", ["8080", "host:", ":80", "host:99999", "host:http"])
def test_listen_addresses_need_host_and_port(text: str) -> None:
    with pytest.raises(ConfigurationError, match="HOST:PORT"):
        Listen.parse(text, "http")


def test_ipv6_listen_addresses_keep_their_brackets() -> None:
    listen = Listen.parse("[::1]:8443")
    assert (listen.host, listen.port, str(listen)) == ("::1", 8443, "[::1]:8443")


def test_a_broken_config_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "regshield.toml").write_text("[database\n")
    with pytest.raises(ConfigurationError, match=r"regshield\.toml"):
        Settings.load(home=tmp_path, environ={})


def test_smtp_is_off_by_default_and_points_at_a_local_server(tmp_path: Path) -> None:
    smtp = Settings.load(home=tmp_path, environ={}).smtp
    assert smtp == SmtpSettings()
    assert (smtp.enabled, smtp.host, smtp.port, smtp.security) == (False, "127.0.0.1", 25, "none")
    assert smtp.sender == "regshield@localhost"


def test_smtp_environment_overrides_the_smtp_table(tmp_path: Path) -> None:
    (tmp_path / "regshield.toml").write_text(
        '[smtp]\nenabled = true\nhost = "relay.example.net"\nsecurity = "starttls"\n'
        'sender = "notices@registrar.example"\nusername = "regshield"\n'
        'password_file = "smtp-password"\ntimeout = 12.5\n'
        'report_to = "security@registrar.example"\n')
    from_file = Settings.load(home=tmp_path, environ={}).smtp
    assert from_file.enabled and from_file.host == "relay.example.net"
    assert (from_file.security, from_file.port, from_file.timeout) == ("starttls", 587, 12.5)
    assert from_file.password_file == Path("smtp-password").absolute()
    assert from_file.report_to == "security@registrar.example"

    environ = {"REGSHIELD_SMTP_HOST": "127.0.0.1", "REGSHIELD_SMTP_PORT": "2525",
               "REGSHIELD_SMTP_SECURITY": "tls", "REGSHIELD_SMTP_ENABLED": "false",
               "REGSHIELD_SMTP_PASSWORD": "from the environment"}
    from_env = Settings.load(home=tmp_path, environ=environ).smtp
    assert (from_env.host, from_env.port, from_env.security) == ("127.0.0.1", 2525, "tls")
    assert not from_env.enabled
    assert from_env.read_password() == "from the environment"
    assert "from the environment" not in repr(from_env)


@pytest.mark.parametrize(("security", "port"), [("none", 25), ("starttls", 587), ("tls", 465)])
def test_smtp_port_defaults_to_the_usual_port_of_the_security_mode(
        tmp_path: Path, security: str, port: int) -> None:
    environ = {"REGSHIELD_SMTP_SECURITY": security}
    assert Settings.load(home=tmp_path, environ=environ).smtp.port == port


def test_smtp_password_is_never_read_from_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "regshield.toml").write_text('[smtp]\npassword = "hunter2"\n')
    with pytest.raises(ConfigurationError, match="REGSHIELD_SMTP_PASSWORD"):
        Settings.load(home=tmp_path, environ={})


def test_smtp_password_file_is_read_when_needed(tmp_path: Path) -> None:
    secret = tmp_path / "smtp-password"
    environ = {"REGSHIELD_SMTP_PASSWORD_FILE": str(secret), "REGSHIELD_SMTP_USERNAME": "rs",
               "REGSHIELD_SMTP_SECURITY": "starttls", "REGSHIELD_SMTP_ENABLED": "true"}
    smtp = Settings.load(home=tmp_path, environ=environ).smtp
    with pytest.raises(ConfigurationError, match="cannot read"):
        smtp.read_password()
    secret.write_text("rotated passphrase\n")
    assert smtp.read_password() == "rotated passphrase"


@pytest.mark.parametrize(("environ", "message"), [
    ({"REGSHIELD_SMTP_SECURITY": "ssl"}, "smtp.security"),
    ({"REGSHIELD_SMTP_PORT": "0"}, "smtp.port"),
    ({"REGSHIELD_SMTP_ENABLED": "maybe"}, "smtp.enabled"),
    ({"REGSHIELD_SMTP_TIMEOUT": "nan"}, "smtp.timeout"),
    ({"REGSHIELD_SMTP_SENDER": "not an address"}, "smtp.sender"),
    ({"REGSHIELD_SMTP_USERNAME": "rs", "REGSHIELD_SMTP_PASSWORD": "x"}, "in clear"),
    ({"REGSHIELD_SMTP_USERNAME": "rs", "REGSHIELD_SMTP_SECURITY": "tls",
      "REGSHIELD_SMTP_ENABLED": "1"}, "no password"),
])
def test_bad_smtp_settings_are_named(tmp_path: Path, environ: dict[str, str],
                                     message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Settings.load(home=tmp_path, environ=environ)


def test_unknown_smtp_settings_are_refused(tmp_path: Path) -> None:
    (tmp_path / "regshield.toml").write_text('[smtp]\nhostname = "relay"\n')
    with pytest.raises(ConfigurationError, match="unknown settings: hostname"):
        Settings.load(home=tmp_path, environ={})


def test_dns_settings_take_the_listener_the_nameservers_and_a_token(tmp_path: Path) -> None:
    (tmp_path / "regshield.toml").write_text(
        '[dns]\nnameservers = ["NS1.Example.NET", "ns2.example.net."]\n'
        'hostmaster = "dns.example.net"\nserial_scheme = "increment"\nhsm_token = "zones"\n'
        f'hsm_pin_file = "{tmp_path / "pin"}"\n')
    (tmp_path / "pin").write_text("0000\n")
    settings = Settings.load(home=tmp_path, environ={"REGSHIELD_DNS_LISTEN": "off"})

    assert settings.dns.listen is None
    assert settings.dns.nameservers == ("ns1.example.net.", "ns2.example.net.")
    assert (settings.dns.hostmaster, settings.dns.serial_scheme) == ("dns.example.net.",
                                                                    "increment")
    assert (settings.dns.hsm_token, settings.dns.hsm_pin) == ("zones", "0000")
    assert "0000" not in repr(settings)


@pytest.mark.parametrize(("table", "option"), [
    ('serial_scheme = "weekly"', "dns.serial_scheme"),
    ("nameservers = []", "dns.nameservers"),
    ('hsm_token = "zones"', "dns.hsm_token"),
    ('listen = "nowhere"', "dns.listen"),
    ("tsig = 1", "dns: unknown settings: tsig"),
    ('allowed_secondary_networks = "10.0.0.0/8"', "dns.allowed_secondary_networks"),
    ('allowed_secondary_networks = ["10.0.0.1/8"]', "dns.allowed_secondary_networks"),
    ('allowed_secondary_networks = ["intranet"]', "dns.allowed_secondary_networks"),
])
def test_bad_dns_settings_are_refused_naming_the_option(tmp_path: Path, table: str,
                                                        option: str) -> None:
    (tmp_path / "regshield.toml").write_text(f"[dns]\n{table}\n")
    with pytest.raises(ConfigurationError) as refused:
        Settings.load(home=tmp_path, environ={})
    assert str(refused.value).startswith(option)


def test_rdap_base_url_and_rdds_settings(tmp_path: Path) -> None:
    (tmp_path / "regshield.toml").write_text(
        '[rdap]\nbase_url = "https://rdap.registrar.example/rdap"\n'
        '[rdds]\nwhois_listen = "127.0.0.1:4343"\nper_minute = 120\n')
    settings = Settings.load(home=tmp_path, environ={})
    assert settings.rdap_base_url == "https://rdap.registrar.example/rdap/"
    assert str(settings.rdds.whois_listen) == "127.0.0.1:4343"
    assert settings.rdds.per_minute == 120
    assert settings.registrar_url == "http://127.0.0.1:8080/"
    overridden = Settings.load(home=tmp_path, environ={
        "REGSHIELD_RDAP_BASE_URL": "https://other.example/rdap/",
        "REGSHIELD_PUBLIC_URL": "https://registrar.example"})
    assert overridden.rdap_base_url == "https://other.example/rdap/"
    assert overridden.registrar_url == "https://registrar.example/"


@pytest.mark.parametrize(("table", "message"), [
    ('[rdap]\nbase_url = "ftp://x.example/"\n', "rdap.base_url"),
    ('[rdap]\nurl = "https://x.example/"\n', "rdap: unknown settings: url"),
    ('[rdds]\nper_minute = 0\n', "rdds.per_minute"),
    ('[rdds]\nwhois = "127.0.0.1:43"\n', "rdds: unknown settings: whois"),
])
def test_bad_rdds_settings_name_the_setting(tmp_path: Path, table: str, message: str) -> None:
    (tmp_path / "regshield.toml").write_text(table)
    with pytest.raises(ConfigurationError, match=message):
        Settings.load(home=tmp_path, environ={})


def test_limits_are_kept_in_the_database_unless_redis_is_configured(tmp_path: Path) -> None:
    embedded = Settings.load(home=tmp_path, environ={})
    assert (embedded.limits.store, embedded.limits.redis_url) == ("database", None)
    assert embedded.limits.contact_sender_per_day == 3

    (tmp_path / "regshield.toml").write_text(
        '[limits]\nredis_url = "redis://127.0.0.1:6379/0"\napi_per_minute = 300\n'
        'http_header_timeout = 5\n')
    configured = Settings.load(home=tmp_path, environ={})
    assert (configured.limits.store, configured.limits.api_per_minute) == ("redis", 300)
    assert configured.limits.http_header_timeout == 5
    from_environment = Settings.load(home=tmp_path, environ={
        "REGSHIELD_REDIS_URL": "redis://10.0.0.5:6379/1", "REGSHIELD_LIMITS_STORE": "process"})
    assert from_environment.limits.redis_url == "redis://10.0.0.5:6379/1"
    assert from_environment.limits.store == "process"


@pytest.mark.parametrize(("table", "message"), [
    ('[limits]\nstore = "memcached"\n', "limits.store: expected one of redis, database"),
    ('[limits]\nstore = "redis"\n', "limits.store: redis needs limits.redis_url"),
    ('[limits]\nredis_url = "http://x"\n', "limits.redis_url"),
    ('[limits]\napi_burst = 0\n', "limits.api_burst"),
    ('[limits]\nper_minute = 10\n', "limits: unknown settings: per_minute"),
])
def test_bad_limits_settings_name_the_setting(tmp_path: Path, table: str,
                                              message: str) -> None:
    (tmp_path / "regshield.toml").write_text(table)
    with pytest.raises(ConfigurationError, match=message):
        Settings.load(home=tmp_path, environ={})


def test_the_sandbox_registrys_caps_come_from_the_file_or_the_environment(
        tmp_path: Path) -> None:
    defaults = Settings.load(home=tmp_path, environ={})
    assert SandboxConfig.of(defaults) == SandboxConfig(
        directory=tmp_path / "sandbox-registry", listen=defaults.sandbox_listen,
        dns_listen=defaults.sandbox_dns_listen)  # the caps' defaults are the sandbox's own
    (tmp_path / "regshield.toml").write_text(
        '[sandbox]\nmax_connections = 32\nconnections_per_source = 4\nlogin_timeout = 20\n')
    config = SandboxConfig.of(Settings.load(home=tmp_path, environ={
        "REGSHIELD_SANDBOX_CONNECTIONS_PER_SOURCE": "2",
        "REGSHIELD_SANDBOX_MAX_FRAME_BYTES": "65536"}))
    assert (config.max_connections, config.connections_per_source, config.login_timeout,
            config.max_frame_bytes, config.idle_timeout) == (32, 2, 20, 65536, 600)


@pytest.mark.parametrize(("table", "message"), [
    ("[sandbox]\nmax_connections = 0\n", r"sandbox\.max_connections: expected a whole number"),
    ('[sandbox]\nidle_timeout = "soon"\n', r"sandbox\.idle_timeout"),
    ("[sandbox]\nmax_sessions = 3\n", "sandbox: unknown settings: max_sessions"),
])
def test_bad_sandbox_settings_name_the_setting(tmp_path: Path, table: str,
                                               message: str) -> None:
    (tmp_path / "regshield.toml").write_text(table)
    with pytest.raises(ConfigurationError, match=message):
        Settings.load(home=tmp_path, environ={})


def test_disclosure_holidays_come_from_the_file_or_the_environment(tmp_path: Path) -> None:
    (tmp_path / "regshield.toml").write_text(
        '[disclosure]\nholidays = ["2026-12-25", "2026-12-26"]\n')
    assert Settings.load(home=tmp_path, environ={}).disclosure_holidays == frozenset(
        {date(2026, 12, 25), date(2026, 12, 26)})
    assert Settings.load(home=tmp_path, environ={
        "REGSHIELD_DISCLOSURE_HOLIDAYS": "2027-01-01"}).disclosure_holidays == frozenset(
        {date(2027, 1, 1)})
    (tmp_path / "regshield.toml").write_text('[disclosure]\nholidays = ["Christmas"]\n')
    with pytest.raises(ConfigurationError, match=r"disclosure\.holidays"):
        Settings.load(home=tmp_path, environ={})


def test_secondaries_may_be_on_private_networks_only_where_the_configuration_allows(
        tmp_path: Path) -> None:
    assert Settings.load(home=tmp_path, environ={}).dns.allowed_secondary_networks == ()
    (tmp_path / "regshield.toml").write_text(
        '[dns]\nallowed_secondary_networks = ["10.0.0.0/8", "fd00::/8", "192.0.2.53"]\n')
    from_file = Settings.load(home=tmp_path, environ={}).dns.allowed_secondary_networks
    assert [str(network) for network in from_file] == ["10.0.0.0/8", "fd00::/8",
                                                       "192.0.2.53/32"]
    from_environment = Settings.load(home=tmp_path, environ={
        "REGSHIELD_DNS_ALLOWED_SECONDARY_NETWORKS": "127.0.0.0/8, ::1"})
    assert [str(network) for network in from_environment.dns.allowed_secondary_networks] == [
        "127.0.0.0/8", "::1/128"]


def test_dns_answers_in_one_process_per_core_unless_told_how_many(tmp_path: Path) -> None:
    cores = len(os.sched_getaffinity(0))
    assert Settings.load(home=tmp_path, environ={}).dns.workers == cores
    (tmp_path / "regshield.toml").write_text("[dns]\nworkers = 3\n")
    assert Settings.load(home=tmp_path, environ={}).dns.workers == 3
    assert Settings.load(home=tmp_path,
                         environ={"REGSHIELD_DNS_WORKERS": "1"}).dns.workers == 1
    assert Settings.load(home=tmp_path,
                         environ={"REGSHIELD_DNS_WORKERS": "auto"}).dns.workers == cores


POSTGRES = "postgresql://regshield@db.example/regshield"


def test_http_is_served_by_one_process_per_core_on_postgresql_and_one_on_sqlite(
        tmp_path: Path) -> None:
    cores = len(os.sched_getaffinity(0))
    assert Settings.load(home=tmp_path, environ={}).http_workers == 1
    assert Settings.load(home=tmp_path, database_url=POSTGRES,
                         environ={}).http_workers == cores
    (tmp_path / "regshield.toml").write_text("[http]\nlisten = \"127.0.0.1:8081\"\n"
                                             "workers = 3\n")
    from_file = Settings.load(home=tmp_path, database_url=POSTGRES, environ={})
    assert (from_file.http_workers, str(from_file.http)) == (3, "127.0.0.1:8081")
    assert Settings.load(home=tmp_path, database_url=POSTGRES,
                         environ={"REGSHIELD_HTTP_WORKERS": "2"}).http_workers == 2
    # 0 and "auto" mean the default: one per core, and one on SQLite.
    for auto in ("0", "auto"):
        assert Settings.load(home=tmp_path, database_url=POSTGRES,
                             environ={"REGSHIELD_HTTP_WORKERS": auto}).http_workers == cores
        assert Settings.load(home=tmp_path,
                             environ={"REGSHIELD_HTTP_WORKERS": auto}).http_workers == 1


def test_more_than_one_http_process_on_sqlite_is_refused_saying_why(tmp_path: Path) -> None:
    assert Settings.load(home=tmp_path,
                         environ={"REGSHIELD_HTTP_WORKERS": "1"}).http_workers == 1
    (tmp_path / "regshield.toml").write_text("[http]\nworkers = 2\n")
    with pytest.raises(ConfigurationError,
                       match=r"^http\.workers: 2 processes need PostgreSQL; .*SQLite"):
        Settings.load(home=tmp_path, environ={})


@pytest.mark.parametrize("value", ["-1", "257", '"many"', "2.5", "true"])
def test_a_bad_number_of_http_workers_is_refused_naming_the_option(tmp_path: Path,
                                                                   value: str) -> None:
    (tmp_path / "regshield.toml").write_text(f"[http]\nworkers = {value}\n")
    with pytest.raises(ConfigurationError, match=r"^http\.workers: expected a number"):
        Settings.load(home=tmp_path, database_url=POSTGRES, environ={})


@pytest.mark.parametrize("value", ["-1", "257", '"many"', "2.5", "true"])
def test_a_bad_number_of_dns_workers_is_refused_naming_the_option(tmp_path: Path,
                                                                  value: str) -> None:
    (tmp_path / "regshield.toml").write_text(f"[dns]\nworkers = {value}\n")
    with pytest.raises(ConfigurationError, match=r"^dns\.workers: expected a number"):
        Settings.load(home=tmp_path, environ={})
