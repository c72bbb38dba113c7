"""Configuration: one TOML file plus a few environment variables, read once, typed.

Precedence: environment > config file > defaults. A wrong value raises `ConfigError` naming
where it came from (the file and the key, or the environment variable) and the problem;
`bot.cli` turns that into one line and exit status 2.

Relative paths written in the file (`seeds_dir`, a SQLite `database_url`) are relative to
the folder of the file, not to the current folder; `DATABASE_URL` in the environment, and
the defaults of keys the file leaves out, are taken from the current folder.
"""

from __future__ import annotations

import logging
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from bot.errors import ConfigError
from bot.records import FeedSpec

DEFAULT_CONFIG = Path("config/sahel-watch.toml")
DEFAULT_DATABASE_URL = "sqlite:///data/sahel-watch.db"
DEFAULT_TELEGRAM_API_URL = "https://api.telegram.org"
DEFAULT_USER_AGENT = "SahelWatch/0.1 (+https://github.com/sahel-watch/sahel-watch; news alert bot)"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# environment variable -> the settings key it sets (ops.* keys live in the [ops] table)
ENVIRONMENT = {
    "DATABASE_URL": ("database_url",),
    "TELEGRAM_BOT_TOKEN": ("telegram_bot_token",),
    "TELEGRAM_API_URL": ("telegram_api_url",),
    "LOG_FORMAT": ("log_format",),
    "LOG_LEVEL": ("log_level",),
    "METRICS_PORT": ("ops", "metrics_port"),
    "METRICS_HOST": ("ops", "metrics_host"),
}
SECRET_VARIABLES = frozenset({"TELEGRAM_BOT_TOKEN"})  # never echoed in an error
_PASSWORD = re.compile(r"(://[^/:@\s]*:)[^@\s]*@")  # a URL's password, never echoed


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FeedConfig(_Strict):
    url: str
    name: str = ""
    language: str = "en"

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value

    def spec(self) -> FeedSpec:
        return FeedSpec(url=self.url, name=self.name or self.url, language=self.language)


class Limits(_Strict):
    """Fetch limits: every number bounds time, memory or load on someone's server."""

    max_body_bytes: int = Field(default=5_000_000, gt=0)
    connect_timeout: float = Field(default=5.0, gt=0)
    read_timeout: float = Field(default=10.0, gt=0)
    total_timeout: float = Field(default=30.0, gt=0)
    max_redirects: int = Field(default=5, ge=0)
    concurrency: int = Field(default=50, gt=0)
    per_host_concurrency: int = Field(default=4, gt=0)
    backoff_base_seconds: float = Field(default=60.0, gt=0)
    backoff_max_seconds: float = Field(default=6 * 3600.0, gt=0)
    max_entries_per_feed: int = Field(default=200, gt=0)
    # CPU seconds one feed's parse may use (in a child process, bot/feeds/bounded.py)
    parse_cpu_seconds: int = Field(default=5, ge=1, le=300)
    user_agent: str = DEFAULT_USER_AGENT
    allow_private_addresses: bool = True  # config feeds only; chat-added feeds never


class DedupConfig(_Strict):
    window_days: float = Field(default=21.0, gt=0)
    max_candidates: int = Field(default=64, gt=0)


class TelegramConfig(_Strict):
    mode: str = Field(default="polling", pattern="^(polling|webhook)$")
    webhook_url: str = ""
    webhook_listen: str = "0.0.0.0"  # noqa: S104 - the webhook must be reachable
    webhook_port: int = Field(default=8443, gt=0, lt=65536)
    max_send_attempts: int = Field(default=8, gt=0)
    # seconds to wait for Telegram's answer to a send; PTB's 5 s default turned a slow Bot
    # API into repeated alerts (a timed-out send may have been delivered, see deliver.py)
    send_timeout: float = Field(default=30.0, gt=0, le=300)
    # replicas: one reads updates, holding a lease renewed every 1/4 of this (bot/role.py);
    # another takes over within 1.25 x this after the holder dies
    updates_lease_seconds: float = Field(default=45.0, ge=2, le=300)


class OpsConfig(_Strict):
    metrics_port: int = Field(default=0, ge=0, lt=65536)  # 0: off
    metrics_host: str = "127.0.0.1"


class FileConfig(_Strict):
    """The shape of `config/sahel-watch.toml`; only `feeds` is required."""

    feeds: list[FeedConfig] = Field(min_length=1)
    poll_interval: float = Field(default=300.0, ge=1)
    # the longest a healthy feed waits between polls (bot/feeds/schedule.py); at least poll_interval
    max_poll_interval: float = Field(default=6 * 3600.0, ge=1)
    max_age_hours: float = Field(default=48.0, ge=0)
    admin_chat_ids: list[int] = Field(default_factory=list)
    seeds_dir: str = "seeds"
    limits: Limits = Field(default_factory=Limits)
    dedup: DedupConfig = Field(default_factory=DedupConfig)
    telegram: TelegramConfig = Field(default_factory=TelegramConfig)
    ops: OpsConfig = Field(default_factory=OpsConfig)
    topics: dict[str, Any] | None = None  # validated by bot.decide.match.load_rules


class Settings(FileConfig):
    """Everything the program needs, after the environment has had its say."""

    config_path: str
    database_url: str = DEFAULT_DATABASE_URL
    telegram_bot_token: SecretStr | None = None
    telegram_api_url: str = DEFAULT_TELEGRAM_API_URL
    log_format: Literal["text", "json"] = "text"
    log_level: str = "INFO"

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in LOG_LEVELS or not isinstance(logging.getLevelName(level), int):
            raise ValueError(f"not a log level; use one of {', '.join(LOG_LEVELS)}")
        return level

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, value: str) -> str:
        problem = database_url_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("telegram_api_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    def feed_specs(self) -> list[FeedSpec]:
        return [f.spec() for f in self.feeds]


def database_url_problem(database_url: str) -> str | None:
    """Why `database_url` is not a database this project can use, or None."""
    usage = "use sqlite:///PATH or postgresql://USER@HOST/DATABASE"
    try:
        url = make_url(sqlalchemy_url(database_url))
    except ArgumentError:
        return f"not a database URL; {usage}"
    backend, driver = url.get_backend_name(), url.get_driver_name()
    if (backend, driver) not in (("sqlite", "pysqlite"), ("postgresql", "psycopg")):
        return f"unsupported database {url.drivername!r}; {usage}"
    if backend == "sqlite" and not url.database:
        return f"no file named; {usage}"
    return None


def _describe(error: ValidationError, path: Path, sources: Mapping[tuple[str, ...], str]) -> str:
    """One line: each problem with where its value came from."""
    problems = []
    for item in error.errors():
        loc = tuple(str(part) for part in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        var = sources.get(loc[:2]) or sources.get(loc[:1])
        if var is None:
            problems.append(f"{path}: {'.'.join(loc) or '(top level)'}: {message}")
        elif var in SECRET_VARIABLES:
            problems.append(f"environment variable {var}: {message}")
        else:
            value = _PASSWORD.sub(r"\1***@", " ".join(str(item.get("input", "")).split()))[:120]
            problems.append(f"environment variable {var}={value!r}: {message}")
    return "; ".join(problems)


def _config_path(env: Mapping[str, str]) -> tuple[Path, str]:
    """The config file's path, and how to say where that path came from."""
    if env.get("SAHEL_WATCH_CONFIG"):
        path = Path(env["SAHEL_WATCH_CONFIG"])
        return path, f"{path} (from SAHEL_WATCH_CONFIG)"
    return DEFAULT_CONFIG, f"{DEFAULT_CONFIG} (the default; set SAHEL_WATCH_CONFIG)"


def _beside(config: Path, relative: str) -> str:
    """`relative` taken from the folder of the config file (an absolute path stays)."""
    return str((config.parent / Path(relative).expanduser()).resolve())


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read the config file named by SAHEL_WATCH_CONFIG (or the default) and the environment."""
    env = os.environ if env is None else env
    path, named = _config_path(env)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{named}: file not found in {Path.cwd()}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{named}: cannot read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None

    data: dict[str, Any] = {**raw, "config_path": str(path)}
    sources: dict[tuple[str, ...], str] = {}
    for var, key in ENVIRONMENT.items():
        if not env.get(var):
            continue
        sources[key] = var
        if len(key) == 1:
            data[key[0]] = env[var]
        else:
            table = data.get(key[0])
            data[key[0]] = {**(table if isinstance(table, dict) else {}), key[1]: env[var]}
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, path, sources)) from None

    update = {}  # a path the file names is beside the file; a default, from the current folder
    if "seeds_dir" in raw:
        update["seeds_dir"] = _beside(path, settings.seeds_dir)
    if ("database_url",) not in sources and "database_url" in raw:
        update["database_url"] = _file_database_url(path, settings.database_url)
    settings = settings.model_copy(update=update)

    from bot.decide.match import (
        load_rules,  # local import: settings must not depend on match at import
    )

    try:
        load_rules(settings.topics)
    except ValueError as exc:
        raise ConfigError(f"{path}: topics: {exc}") from None
    return settings


def _file_database_url(config: Path, database_url: str) -> str:
    """A SQLite file named in the config file, relative to the file's folder."""
    url = make_url(sqlalchemy_url(database_url))
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return database_url
    if Path(url.database).is_absolute():
        return database_url
    return url.set(database=_beside(config, url.database)).render_as_string(hide_password=False)


def sqlalchemy_url(database_url: str) -> str:
    """Accept the common spellings and pick the driver this project ships."""
    for prefix in ("postgres://", "postgresql://"):
        if database_url.startswith(prefix):
            return "postgresql+psycopg://" + database_url[len(prefix) :]
    return database_url
