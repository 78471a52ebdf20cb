"""Settings: data directory, database URL, listeners.

Precedence, highest first: command-line options, environment (`REGSHIELD_*`), the config file
`regshield.toml` in the data directory, built-in embedded defaults.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from regshield.errors import ConfigurationError

DEFAULT_HOME = "./regshield-data"
CONFIG_FILE_NAME = "regshield.toml"
DEFAULT_HTTP_LISTEN = "127.0.0.1:8080"


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


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str
    http: Listen = field(default_factory=lambda: Listen.parse(DEFAULT_HTTP_LISTEN))
    # A master key ring given in the environment instead of the key file (see security/keyring.py).
    master_key_env: str | None = None
    log_level: str = "info"
    # Copies of the event chain head, kept outside the database (see eventlog/anchors.py).
    event_anchor_file: Path | None = None

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
            master_key_env=env.get("REGSHIELD_MASTER_KEY") or None,
            log_level=env.get("REGSHIELD_LOG_LEVEL") or _get(file_values, "log", "level") or "info",
            event_anchor_file=_path(env.get("REGSHIELD_EVENT_ANCHORS")
                                    or _get(file_values, "events", "anchor_file")),
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


def _path(text: str | None) -> Path | None:
    return Path(text).expanduser().absolute() if text else None


def _get(values: dict[str, Any], section: str, key: str) -> str | None:
    value = values.get(section, {}).get(key)
    return str(value) if value is not None else None
