"""Settings: command line over environment over the config file over embedded defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from regshield.config import Listen, Settings, normalize_database_url
from regshield.errors import ConfigurationError


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
