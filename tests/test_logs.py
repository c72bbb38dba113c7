from __future__ import annotations

import json
import logging

import pytest

from bot.logs import JsonFormatter, RedactingFilter, redact, setup_logging

TOKEN = "123456789:AAHfakeTokenValue_abcdefghijklmnop"


def test_redact_known_secret_and_token_shapes() -> None:
    url = f"https://api.telegram.org/bot{TOKEN}/sendMessage"
    assert TOKEN not in redact(url, (TOKEN,))
    assert TOKEN not in redact(url)  # shape alone is enough
    assert redact("plain text, 12:34") == "plain text, 12:34"


def test_filter_rewrites_args_and_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.redact")
    handler = caplog.handler
    handler.addFilter(RedactingFilter((TOKEN,)))
    try:
        with caplog.at_level(logging.DEBUG, logger="test.redact"):
            logger.debug("POST %s", f"/bot{TOKEN}/getMe")
            try:
                raise RuntimeError(f"failed at /bot{TOKEN}/x")
            except RuntimeError:
                logger.exception("send failed")
    finally:
        handler.removeFilter(handler.filters[-1])
    assert caplog.text and TOKEN not in caplog.text
    assert "<redacted>" in caplog.text


def test_json_formatter_one_object_per_line() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello %s", ("world",), None)
    line = JsonFormatter().format(record)
    data = json.loads(line)
    assert data["message"] == "hello world" and data["level"] == "INFO" and "\n" not in line


def test_alembic_plugin_lines_are_quiet_and_migrations_are_not(
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    alembic = logging.getLogger("alembic")
    alembic_level = alembic.level  # other commands run in this process may have quietened it
    alembic.setLevel(logging.NOTSET)
    try:
        setup_logging()
        logging.getLogger("alembic.runtime.plugins").info("setup plugin alembic.x")
        logging.getLogger("alembic.runtime.migration").info("Running upgrade 0001 -> 0002")
        err = capsys.readouterr().err
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
        alembic.setLevel(alembic_level)
    assert "setup plugin" not in err
    assert "Running upgrade 0001 -> 0002" in err
