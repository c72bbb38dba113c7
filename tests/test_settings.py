from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bot.errors import ConfigError
from bot.settings import DEFAULT_DATABASE_URL, load_settings, sqlalchemy_url

REPO = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sw.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_minimal_file_defaults_everything(tmp_path: Path) -> None:
    path = write(tmp_path, '[[feeds]]\nurl = "https://example.org/rss"\n')
    s = load_settings({"SAHEL_WATCH_CONFIG": str(path)})
    assert [f.url for f in s.feed_specs()] == ["https://example.org/rss"]
    assert s.feed_specs()[0].name == "https://example.org/rss"  # the name defaults to the url
    assert s.poll_interval == 300
    assert s.max_age_hours == 48
    assert s.database_url == DEFAULT_DATABASE_URL
    assert s.telegram_bot_token is None
    assert s.telegram_api_url == "https://api.telegram.org"


def test_environment_overrides(tmp_path: Path) -> None:
    path = write(tmp_path, '[[feeds]]\nurl = "https://example.org/rss"\nname = "Ex"\n')
    s = load_settings(
        {
            "SAHEL_WATCH_CONFIG": str(path),
            "DATABASE_URL": "postgresql://u@h/db",
            "TELEGRAM_BOT_TOKEN": "123456:secret-token-value",
            "TELEGRAM_API_URL": "http://127.0.0.1:9999",
            "METRICS_PORT": "9100",
            "METRICS_HOST": "0.0.0.0",
        }
    )
    assert s.database_url == "postgresql://u@h/db"
    assert s.telegram_bot_token is not None
    assert s.telegram_bot_token.get_secret_value() == "123456:secret-token-value"
    assert "secret-token-value" not in repr(s)  # SecretStr hides it
    assert s.telegram_api_url == "http://127.0.0.1:9999"
    assert s.ops.metrics_port == 9100
    assert s.ops.metrics_host == "0.0.0.0"


def test_default_config_file_is_valid_and_has_real_feeds() -> None:
    s = load_settings({"SAHEL_WATCH_CONFIG": str(REPO / "config" / "sahel-watch.toml")})
    feeds = s.feed_specs()
    assert len(feeds) >= 12
    assert {f.language for f in feeds} == {"en", "fr"}
    assert all(f.url.startswith("https://") and f.name != f.url for f in feeds)
    assert len({f.url for f in feeds}) == len(feeds)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[[feeds]]\nurl = "ftp://x"\n', "feeds.0.url"),
        ('poll_interval = "often"\n[[feeds]]\nurl = "https://x.org"\n', "poll_interval"),
        ('[[feeds]]\nurl = "https://x.org"\nlanguge = "fr"\n', "feeds.0.languge"),
        ("feeds = []\n", "feeds"),
        (
            '[limits]\nmax_body_bytes = -1\n[[feeds]]\nurl = "https://x.org"\n',
            "limits.max_body_bytes",
        ),
        ("[[feeds]\nurl=", "not valid TOML"),
    ],
)
def test_wrong_file_names_file_and_key(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_settings({"SAHEL_WATCH_CONFIG": str(path)})
    assert str(path) in str(err.value)
    assert expected in str(err.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_settings({"SAHEL_WATCH_CONFIG": str(tmp_path / "nope.toml")})


def test_cli_wrong_file_exits_2_without_traceback(tmp_path: Path) -> None:
    path = write(tmp_path, '[[feeds]]\nurl = "https://x.org"\npoll_interval = 0\n')
    proc = subprocess.run(
        [sys.executable, "-m", "bot", "feeds"],
        env={"SAHEL_WATCH_CONFIG": str(path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert str(path) in proc.stderr and "poll_interval" in proc.stderr


def test_sqlalchemy_url_picks_psycopg() -> None:
    assert sqlalchemy_url("postgres://u@h/d") == "postgresql+psycopg://u@h/d"
    assert sqlalchemy_url("postgresql://u@h/d") == "postgresql+psycopg://u@h/d"
    assert sqlalchemy_url("sqlite:///x.db") == "sqlite:///x.db"


def test_relative_paths_in_the_file_are_beside_the_file(tmp_path: Path) -> None:
    folder = tmp_path / "deploy"
    folder.mkdir()
    path = folder / "sw.toml"
    path.write_text(
        'seeds_dir = "stories"\ndatabase_url = "sqlite:///state/sw.db"\n'
        '[[feeds]]\nurl = "https://x.org"\n',
        encoding="utf-8",
    )
    s = load_settings({"SAHEL_WATCH_CONFIG": str(path)})
    assert s.seeds_dir == str(folder / "stories")
    assert s.database_url == f"sqlite:///{folder / 'state' / 'sw.db'}"
    env = load_settings({"SAHEL_WATCH_CONFIG": str(path), "DATABASE_URL": "sqlite:///here.db"})
    assert env.database_url == "sqlite:///here.db"  # the environment's is taken as given


def test_a_bad_environment_value_names_the_variable_not_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, 'poll_interval = 0\n[[feeds]]\nurl = "https://x.org"\n')
    env = {"SAHEL_WATCH_CONFIG": str(path), "LOG_LEVEL": "LOUD", "TELEGRAM_BOT_TOKEN": "1:2"}
    with pytest.raises(ConfigError) as err:
        load_settings({**env, "METRICS_PORT": "x"})
    assert str(err.value) == (
        f"{path}: poll_interval: Input should be greater than or equal to 1; "
        "environment variable METRICS_PORT='x': Input should be a valid integer, unable to "
        "parse string as an integer; environment variable LOG_LEVEL='LOUD': not a log level; "
        "use one of DEBUG, INFO, WARNING, ERROR, CRITICAL"
    )
