"""Configuration: one TOML file plus a few environment variables, read once, typed.

Precedence: environment > config file > defaults. A wrong file raises `ConfigError`
naming the file, the key and the problem; `bot.__main__` turns that into exit status 2.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from bot.errors import ConfigError
from bot.records import FeedSpec

DEFAULT_CONFIG = Path("config/sahel-watch.toml")
DEFAULT_DATABASE_URL = "sqlite:///data/sahel-watch.db"
DEFAULT_TELEGRAM_API_URL = "https://api.telegram.org"
DEFAULT_USER_AGENT = "SahelWatch/0.1 (+https://github.com/sahel-watch/sahel-watch; news alert bot)"


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
    log_format: str = Field(default="text", pattern="^(text|json)$")
    log_level: str = "INFO"

    def feed_specs(self) -> list[FeedSpec]:
        return [f.spec() for f in self.feeds]


def _describe(error: ValidationError) -> str:
    problems = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(top level)"
        problems.append(f"{key}: {item['msg']}")
    return "; ".join(problems)


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read the config file named by SAHEL_WATCH_CONFIG (or the default) and the environment."""
    env = os.environ if env is None else env
    path = Path(env.get("SAHEL_WATCH_CONFIG") or DEFAULT_CONFIG)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found (set SAHEL_WATCH_CONFIG)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None

    overrides: dict[str, Any] = {"config_path": str(path)}
    for var, key in (
        ("DATABASE_URL", "database_url"),
        ("TELEGRAM_BOT_TOKEN", "telegram_bot_token"),
        ("TELEGRAM_API_URL", "telegram_api_url"),
        ("LOG_FORMAT", "log_format"),
        ("LOG_LEVEL", "log_level"),
    ):
        if env.get(var):
            overrides[key] = env[var]
    ops = dict(raw.get("ops", {}))
    for var, key in (("METRICS_PORT", "metrics_port"), ("METRICS_HOST", "metrics_host")):
        if env.get(var):
            ops[key] = env[var]
    if ops:
        overrides["ops"] = ops
    try:
        settings = Settings.model_validate({**raw, **overrides})
    except ValidationError as exc:
        raise ConfigError(f"{path}: {_describe(exc)}") from None

    from bot.decide.match import (
        load_rules,  # local import: settings must not depend on match at import
    )

    try:
        load_rules(settings.topics)
    except ValueError as exc:
        raise ConfigError(f"{path}: topics: {exc}") from None
    return settings


def sqlalchemy_url(database_url: str) -> str:
    """Accept the common spellings and pick the driver this project ships."""
    for prefix in ("postgres://", "postgresql://"):
        if database_url.startswith(prefix):
            return "postgresql+psycopg://" + database_url[len(prefix) :]
    return database_url
