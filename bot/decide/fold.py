"""Text folding: the one normal form every comparison in the decision core uses.

`fold` strips accents (NFKD, combining marks dropped), casefolds, and unifies the
typographic variants feeds mix freely: curly and modifier apostrophes become `'`, every
dash and minus becomes `-`, every kind of space (no-break, thin, ideographic…) becomes one
plain space. `unaccent` does the same without the casefold, for the places that still need
to see capitals (names, sentence starts).
"""

from __future__ import annotations

import re
import unicodedata

_APOSTROPHES = "\u2018\u2019\u201b\u02bc\u02b9\u02bb\u02bd\u2032\u0060\u00b4\uff07"
_DASHES = "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d\u2043"
_QUOTES = "\u201c\u201d\u201e\u201f\u00ab\u00bb\u2039\u203a\uff02"
# Letters NFKD leaves whole but that readers treat as two plain letters.
_LETTERS = {
    "œ": "oe",
    "Œ": "OE",
    "æ": "ae",
    "Æ": "AE",
    "ø": "o",
    "Ø": "O",
    "đ": "d",
    "Đ": "D",
    "ł": "l",
    "Ł": "L",
    "ı": "i",
    "ß": "ss",
    "þ": "th",
    "Þ": "Th",
}

_TABLE = str.maketrans(
    {
        **{c: "'" for c in _APOSTROPHES},
        **{c: "-" for c in _DASHES},
        **{c: '"' for c in _QUOTES},
        **_LETTERS,
        "\u00ad": None,  # soft hyphen
        "\u200b": None,  # zero-width space
        "\u200c": None,
        "\u200d": None,
        "\ufeff": None,
    }
)
_SPACES = re.compile(r"\s+")
_MARKS = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]+")


def unaccent(text: str) -> str:
    """Accents stripped, punctuation variants unified, whitespace folded; case kept."""
    text = text.translate(_TABLE)
    if not text.isascii():
        text = _MARKS.sub("", unicodedata.normalize("NFKD", text)).translate(_TABLE)
    return _SPACES.sub(" ", text).strip()


def fold(text: str) -> str:
    """The matching form of `text`: `unaccent` plus casefold (`"Ségou’s"` -> `"segou's"`)."""
    folded = unaccent(text).casefold()
    return folded if folded.isascii() else unaccent(folded)
