"""Reader topics from decision categories (bot/topics.py)."""

from __future__ import annotations

from bot import topics
from bot.decide.match import CATEGORY_NAMES


def test_every_decision_category_has_a_reader_topic() -> None:
    assert {c for t in topics.TOPICS for c in t.categories} == set(CATEGORY_NAMES.values())
    assert topics.of_categories("security,diplomacy") == {"security", "relations"}
    assert topics.of_categories(["justice"]) == {"relations"}
    assert topics.of_categories("sec, eco") == {"security", "economy"}
    assert topics.of_categories("") == frozenset()


def test_stored_choices_are_canonical() -> None:
    assert topics.stored(["economy", "security"]) == "security,economy"
    assert topics.stored(topics.KEYS) == "" and topics.stored([]) == ""
    assert topics.parse("security, nonsense,ECONOMY") == {"security", "economy"}
    assert topics.parse("") == frozenset()


def test_choose_from_all_and_never_to_none() -> None:
    assert topics.choose("", "security", False) == "relations,politics,economy,humanitarian"
    assert topics.choose("", "security", True) == ""
    assert topics.choose("security", "economy", True) == "security,economy"
    assert topics.choose("security,economy", "economy", False) == "security"
    assert topics.choose("security,economy", "economy", True) == "security,economy"
    assert topics.choose("security", "security", False) is None
    assert topics.choose("relations,politics,economy,humanitarian", "security", True) == ""
    assert topics.choose("security", "bogus", True) == "security"


def test_wanted() -> None:
    assert topics.wanted("", "economy")
    assert topics.wanted("security", "security,politics")
    assert not topics.wanted("security", "economy")
    assert topics.wanted("relations", "diplomacy")
    assert topics.wanted("security", "")  # a story of no known topic reaches everyone
    assert topics.labels({"economy", "relations"}) == ["Algeria–AES relations",
                                                       "Economy and resources"]  # fmt: skip
