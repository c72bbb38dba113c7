"""The bot's languages: English (the source strings) and French, through gettext catalogs
compiled by Babel (`bot/i18n/locales/<lang>/LC_MESSAGES/sahelwatch.mo`, shipped in the
package). Every string a chat reads goes through `translator(chat language)`.

Strings are marked for extraction (`python -m bot.i18n.catalog`) by the call that
translates them, `tr.gettext("…")` / `tr.ngettext("…", "…", n)`, with `%(name)s`
placeholders filled after translation; a string defined before a chat is known (a
command's description in a table) is marked with `N_("…")` and translated where shown.
"""

from __future__ import annotations

import gettext
from datetime import datetime
from functools import lru_cache
from pathlib import Path

DOMAIN = "sahelwatch"
LOCALES = Path(__file__).parent / "locales"
LANGUAGES = ("en", "fr")
LANGUAGE_NAMES = {"en": "English", "fr": "Français"}  # each in its own language
DEFAULT_LANGUAGE = "en"

Translator = gettext.NullTranslations


def chat_language(code: str | None) -> str:
    """The bot language for a Telegram `language_code` ("fr-CA" -> "fr"); English otherwise."""
    base = (code or "").split("-")[0].split("_")[0].lower()
    return base if base in LANGUAGES else DEFAULT_LANGUAGE


@lru_cache(maxsize=len(LANGUAGES) + 1)
def translator(language: str) -> gettext.NullTranslations:
    """The catalog for `language` (`.gettext`, `.ngettext`); English falls back to the source
    strings."""
    return gettext.translation(
        DOMAIN, localedir=LOCALES, languages=[chat_language(language)], fallback=True
    )


def N_(message: str) -> str:
    """Mark `message` for the catalog without translating it (translated where shown)."""
    return message


class Voice:
    """How one chat is spoken to: its language's catalog and its time zone (for dates)."""

    __slots__ = ("language", "timezone", "tr")

    def __init__(self, language: str = DEFAULT_LANGUAGE, timezone: str = "UTC") -> None:
        self.language = chat_language(language)
        self.timezone = timezone or "UTC"
        self.tr = translator(self.language)

    def gettext(self, message: str) -> str:
        return self.tr.gettext(message)

    def ngettext(self, singular: str, plural: str, count: int) -> str:
        return self.tr.ngettext(singular, plural, count)

    def when(self, moment: datetime) -> str:
        """'7 Apr 2025, 14:30 UTC' in this chat's language and time zone."""
        from bot.i18n import dates

        return dates.when(moment, language=self.language, timezone=self.timezone)

    def when_ago(self, moment: datetime, now: datetime) -> str:
        """The date with the time since beside it: '… (2 hr. ago)', '… (il y a 2 h)'."""
        from bot.i18n import dates

        return dates.when_ago(moment, now, language=self.language, timezone=self.timezone)

    def __repr__(self) -> str:
        return f"Voice({self.language!r}, {self.timezone!r})"


ENGLISH = Voice()
