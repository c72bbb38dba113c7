"""Tell English from French by their commonest short words.

Feeds often declare no language or the wrong one (a news-search feed mixes both), and the
matcher's lexicon depends on it, so the text decides when it is clear enough.
"""

from __future__ import annotations

import re

_WORD = re.compile(r"[a-zàâçéèêëîïôûùüÿœæ]+", re.IGNORECASE)

_MARKERS: dict[str, frozenset[str]] = {
    "en": frozenset(
        [
            "the",
            "of",
            "and",
            "to",
            "in",
            "is",
            "was",
            "for",
            "on",
            "that",
            "with",
            "as",
            "by",
            "at",
            "from",
            "it",
            "its",
            "has",
            "have",
            "were",
            "are",
            "this",
            "said",
            "after",
            "which",
            "would",
            "will",
            "be",
            "been",
            "their",
            "they",
            "not",
            "but",
            "an",
        ]
    ),
    "fr": frozenset(
        [
            "le",
            "la",
            "les",
            "des",
            "du",
            "de",
            "et",
            "en",
            "un",
            "une",
            "est",
            "dans",
            "pour",
            "que",
            "qui",
            "sur",
            "au",
            "aux",
            "par",
            "avec",
            "ses",
            "son",
            "sa",
            "ont",
            "été",
            "selon",
            "depuis",
            "après",
            "cette",
            "ce",
            "il",
            "elle",
            "ne",
            "pas",
            "plus",
            "a",
        ]
    ),
}


def detect_language(text: str, default: str, *, min_markers: int = 3) -> str:
    """ "en" or "fr" when the text says so clearly (twice as many markers), else `default`."""
    counts = dict.fromkeys(_MARKERS, 0)
    for word in _WORD.findall(text[:4000].lower()):
        for language, markers in _MARKERS.items():
            if word in markers:
                counts[language] += 1
    best = max(counts, key=lambda lang: counts[lang])
    others = max(n for lang, n in counts.items() if lang != best)
    if counts[best] >= min_markers and counts[best] >= 2 * others:
        return best
    return default
