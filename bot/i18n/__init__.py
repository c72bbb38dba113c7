"""The bot's languages: English (the source strings) and French, through gettext catalogs
compiled by Babel (`bot/i18n/locales/<lang>/LC_MESSAGES/sahelwatch.mo`, shipped in the
package). Every string a chat reads goes through `translator(chat language)`."""

from __future__ import annotations

import gettext
from functools import lru_cache
from pathlib import Path

DOMAIN = "sahelwatch"
LOCALES = Path(__file__).parent / "locales"
LANGUAGES = ("en", "fr")
DEFAULT_LANGUAGE = "en"


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
