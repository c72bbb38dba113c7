"""bot.decide.features: the language-neutral features dedup and summaries rely on."""

from __future__ import annotations

import pytest

from bot.decide.features import BODY, LEAD, TITLE, item_features, split_sentences


def keys(title: str, text: str = "", language: str = "en") -> dict[str, tuple[float, int]]:
    return item_features(title, text, language)


@pytest.mark.parametrize(
    ("text", "language", "key"),
    [
        ("a 5,000-strong force", "en", "num:5000"),
        ("une force de 5 000 hommes", "fr", "num:5000"),
        ("a 0.5% levy", "en", "pct:0.5"),
        ("un prélèvement de 0,5 %", "fr", "pct:0.5"),
        ("the night of 31 March to 1 April", "en", "date:3-31"),
        ("on March 31", "en", "date:3-31"),
        ("dans la nuit du 31 mars au 1er avril", "fr", "date:4-1"),
        ("the July 2024 treaty", "en", "yr:2024"),
    ],
)
def test_numbers_and_dates_survive_translation(text: str, language: str, key: str) -> None:
    assert key in keys("", text, language)


def test_unknown_proper_names_become_features() -> None:
    found = keys("", "The mine near Arlit is run by Kelvöra. It belongs to Orano.")
    assert "n:kelvora" in found
    assert "ORANO" in found  # a known company is a concept, not a name
    assert not any(k in found for k in ("n:the", "n:it"))  # sentence starts are not names


def test_title_case_headlines_do_not_make_every_word_a_name() -> None:
    found = keys(
        "Militants Storm Army Base Near Lierville", "Fighters attacked a base near Lierville."
    )
    assert "n:lierville" in found  # confirmed by the text
    assert "n:militants" not in found and "n:storm" not in found


def test_positions_title_lead_body() -> None:
    found = keys("Algeria closes its airspace", "The drone was downed. Mali protested at the UN.")
    assert found["AIRSPACE"][1] == TITLE
    assert found["DRONE"][1] == LEAD
    assert found["UN"][1] == BODY


@pytest.mark.parametrize(
    ("title", "language", "role"),
    [
        ("Algeria shuts its airspace to flights from Mali", "en", "act:ALGERIA:CLOSE"),
        ("Le Mali riposte et interdit son ciel aux avions algériens", "fr", "act:MALI:CLOSE"),
        ("Alger rappelle ses ambassadeurs au Mali", "fr", "act:ALGERIA:RECALL_ENVOY"),
        ("Bamako files ICJ case against Algiers", "en", "act:MALI:LAWSUIT"),
    ],
)
def test_roles_name_who_does_what(title: str, language: str, role: str) -> None:
    assert role in keys(title, "", language)


def test_adjectives_are_not_actors_and_lists_act_together() -> None:
    adjective = keys("Drone malien abattu près de la frontière", "", "fr")
    assert not any(k.startswith("act:MALI") for k in adjective)
    together = keys("Mali, Burkina Faso and Niger announce withdrawal from the ICC")
    for who in ("MALI", "BURKINA", "NIGER"):
        assert f"act:{who}:WITHDRAW" in together


def test_a_bloc_speaks_for_its_members() -> None:
    found = keys("The AES recalls its ambassadors")
    assert {"act:AES:RECALL_ENVOY", "act:MALI:RECALL_ENVOY", "act:NIGER:RECALL_ENVOY"} <= set(found)


def test_split_sentences_is_verbatim() -> None:
    text = "Gen. Maïga spoke. He said “no”! Mr. Diop, 2.5 km away, agreed… Then 3 left."
    parts = split_sentences(text)
    assert parts == [
        "Gen. Maïga spoke.",
        "He said “no”!",
        "Mr. Diop, 2.5 km away, agreed…",
        "Then 3 left.",
    ]
    assert all(p in text for p in parts)
    assert split_sentences("") == []
