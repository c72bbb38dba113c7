"""Dates as a chat reads them: in its language (Babel, CLDR data) and its time zone, with
the time since beside them ("7 Apr 2025, 16:30 UTC+2 (2 hr. ago)", "7 avr. 2025, 16:30
UTC+2 (il y a 2 h)")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel.dates import format_datetime, format_timedelta

from bot.i18n import chat_language

PATTERN = "d MMM y, HH:mm"


@lru_cache(maxsize=256)
def zone(name: str) -> tzinfo:
    """The IANA zone `name`; UTC when it is unknown (or the system has no zone data)."""
    try:
        return ZoneInfo(name) if name and name != "UTC" else UTC
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def offset_label(moment: datetime) -> str:
    """'UTC', 'UTC+1', 'UTC-3:30': the same in both languages, unlike CLDR's zone names."""
    offset = moment.utcoffset() or timedelta(0)
    minutes = int(offset.total_seconds()) // 60
    if minutes == 0:
        return "UTC"
    sign = "+" if minutes > 0 else "-"
    hours, rest = divmod(abs(minutes), 60)
    return f"UTC{sign}{hours}" + (f":{rest:02d}" if rest else "")


def when(moment: datetime, *, language: str = "en", timezone: str = "UTC") -> str:
    """'7 Apr 2025, 14:30 UTC' in the chat's language and time zone."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    local = moment.astimezone(zone(timezone))
    stamp = format_datetime(local, PATTERN, tzinfo=local.tzinfo, locale=chat_language(language))
    return f"{stamp} {offset_label(local)}"


def ago(moment: datetime, now: datetime, *, language: str = "en") -> str:
    """'2 hr. ago', 'il y a 2 h'; 'in 5 min.' for a moment ahead of `now`."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return format_timedelta(
        moment - now,
        format="short",
        add_direction=True,
        threshold=1.0,
        locale=chat_language(language),
    )


def when_ago(
    moment: datetime, now: datetime, *, language: str = "en", timezone: str = "UTC"
) -> str:
    """The date with the time since beside it: '7 Apr 2025, 14:30 UTC (2 hr. ago)'."""
    stamp = when(moment, language=language, timezone=timezone)
    return f"{stamp} ({ago(moment, now, language=language)})"
