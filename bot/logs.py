"""Logging set-up: readable lines or one JSON object per line; secrets redacted everywhere."""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime

# A Bot API token looks like 123456789:AA… ; it also appears in request URLs as /bot<token>/.
_TOKEN_SHAPE = re.compile(r"\d{5,}:[A-Za-z0-9_-]{20,}")


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """`text` with every known secret and anything shaped like a bot token replaced."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "<redacted>")
    return _TOKEN_SHAPE.sub("<redacted>", text)


class RedactingFilter(logging.Filter):
    """Rewrites each record's final message so no handler can print a secret."""

    def __init__(self, secrets: tuple[str, ...] = ()) -> None:
        super().__init__()
        self._secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
            record.exc_text = None
        record.msg = redact(message, self._secrets)
        record.args = None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        return json.dumps(payload, ensure_ascii=False)


def setup_logging(fmt: str = "text", level: str = "INFO", secrets: tuple[str, ...] = ()) -> None:
    """Configure the root logger once, from `main()` only."""
    handler = logging.StreamHandler()
    handler.addFilter(RedactingFilter(secrets))
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # httpx logs every request URL at INFO; Bot API URLs contain the token.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, root.level))
    logging.getLogger("httpcore").setLevel(max(logging.WARNING, root.level))
    # newer Alembic releases log each of their plugins at INFO before migrating: noise
    logging.getLogger("alembic.runtime.plugins").setLevel(max(logging.WARNING, root.level))


def quiet_migrations() -> None:
    """Alembic's INFO lines ("Running upgrade …") off, for commands where migrating is a side
    effect; `run` and `db upgrade` keep them. Warnings still show."""
    logger = logging.getLogger("alembic")
    logger.setLevel(max(logging.WARNING, logger.getEffectiveLevel()))
