from __future__ import annotations

import pytest

from bot.decide.language import detect_language


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Algeria closed its airspace to all aircraft coming from or bound for Mali, the "
            "ministry said on Monday.",
            "en",
        ),
        (
            "Alger a annoncé la fermeture immédiate de son espace aérien à tous les aéronefs en "
            "provenance du Mali.",
            "fr",
        ),
        ("Le Mali riposte et interdit son ciel aux avions algériens", "fr"),
    ],
)
def test_clear_text_decides(text: str, expected: str) -> None:
    other = "fr" if expected == "en" else "en"
    assert detect_language(text, other) == expected


@pytest.mark.parametrize("text", ["", "Mali Algérie", "AES 2025: Bamako, Niamey, Ouagadougou"])
def test_unclear_text_keeps_the_default(text: str) -> None:
    assert detect_language(text, "fr") == "fr"
    assert detect_language(text, "en") == "en"
