"""bot.decide.fold: one normal form for accents, case, apostrophes, dashes and spaces."""

from __future__ import annotations

import pytest

from bot.decide.fold import fold, unaccent


@pytest.mark.parametrize(
    ("raw", "folded"),
    [
        ("Tinzaouatène", "tinzaouatene"),
        ("ÉTATS du Sahel", "etats du sahel"),
        ("Goïta, Maïga, Traoré", "goita, maiga, traore"),
        ("Ségou", "segou"),
        ("Straße", "strasse"),
        ("Œuvre et cœur", "oeuvre et coeur"),
        ("ﬁnance", "finance"),
        ("Ｍａｌｉ", "mali"),
    ],
)
def test_accents_and_case_are_folded(raw: str, folded: str) -> None:
    assert fold(raw) == folded


@pytest.mark.parametrize("apostrophe", ["'", "\u2019", "\u2018", "\u02bc", "\u00b4", "`"])
def test_every_apostrophe_becomes_one(apostrophe: str) -> None:
    assert fold(f"L{apostrophe}Algérie") == "l'algerie"


@pytest.mark.parametrize("dash", ["-", "\u2010", "\u2011", "\u2013", "\u2014", "\u2212"])
def test_every_dash_becomes_one(dash: str) -> None:
    assert fold(f"Liptako{dash}Gourma") == "liptako-gourma"


def test_whitespace_is_folded_and_stripped() -> None:
    text = "\u00a0 Bamako\u202f:\tla\n\njunte\u2009dit \u200b "
    assert fold(text) == "bamako : la junte dit"


def test_quotes_are_unified() -> None:
    assert fold("« acte irresponsable » “x”") == '" acte irresponsable " "x"'


def test_fold_is_idempotent() -> None:
    for text in ["L’Algérie ferme son espace aérien", "AES–GCM", "İstanbul", "  x  "]:
        assert fold(fold(text)) == fold(text)


def test_unaccent_keeps_case() -> None:
    assert unaccent("L’Algérie et le Niger") == "L'Algerie et le Niger"


def test_empty() -> None:
    assert fold("") == ""
    assert unaccent("   ") == ""
