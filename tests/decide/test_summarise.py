"""bot.decide.summarise: extractive, novelty-first, bounded summaries."""

from __future__ import annotations

import pytest

from bot.decide.dedup import fingerprint
from bot.decide.features import split_sentences
from bot.decide.summarise import summarise

SEED = fingerprint(
    "Algeria shoots down a Malian drone near Tin Zaouatine; the AES recalls its ambassadors",
    "Algeria said the drone violated its airspace. Mali, Burkina Faso and Niger recalled their "
    "ambassadors.",
    "en",
)
TEXT = (
    "The move follows the downing of a Malian drone near Tin Zaouatine last week. "
    "Algeria closed its airspace to all flights to and from Mali on Monday, citing repeated "
    "violations. "
    "Air Algérie cancelled its Bamako route until further notice. "
    "Officials in Algiers did not say how long the closure would last."
)


def test_every_sentence_comes_verbatim_from_the_text() -> None:
    summary = summarise("Algeria shuts airspace to Mali", TEXT, known=[SEED])
    for sentence in split_sentences(summary):
        assert sentence in TEXT


def test_it_leads_with_what_is_new() -> None:
    summary = summarise("Algeria shuts airspace to Mali", TEXT, known=[SEED])
    assert summary.startswith("Algeria closed its airspace")
    assert not summary.startswith("The move follows")  # background the reader already has


def test_what_an_earlier_item_said_is_known_too() -> None:
    earlier = fingerprint(
        "Algeria closes its airspace to Malian flights",
        "Algeria closed its airspace to all flights from Mali, citing violations.",
        "en",
    )
    summary = summarise("Algeria shuts airspace to Mali", TEXT, known=[SEED, earlier])
    assert summary.startswith("Air Algérie cancelled its Bamako route")


def test_without_known_facts_it_still_summarises() -> None:
    summary = summarise("Algeria shuts airspace to Mali", TEXT, known=[], max_sentences=2)
    assert 1 <= len(split_sentences(summary)) <= 2


@pytest.mark.parametrize("n", [1, 2, 3])
def test_sentence_budget(n: int) -> None:
    summary = summarise("t", TEXT, known=[SEED], max_sentences=n)
    assert len(split_sentences(summary)) == n


def test_followers_keep_the_order_of_the_text() -> None:
    summary = summarise("t", TEXT, known=[SEED], max_sentences=3)
    rest = split_sentences(summary)[1:]
    assert [TEXT.index(s) for s in rest] == sorted(TEXT.index(s) for s in rest)


def test_length_is_bounded_and_cut_at_a_word() -> None:
    long_sentence = "Algeria closed its airspace " + "to flights from many places " * 40 + "today."
    summary = summarise("t", long_sentence, known=[], max_chars=120)
    assert len(summary) <= 120
    assert summary.endswith("…")
    assert long_sentence.startswith(summary[:-1].rstrip())
    assert summary[:-1].split()[-1] in long_sentence.split()


def test_short_budget_drops_sentences_that_do_not_fit() -> None:
    summary = summarise("t", TEXT, known=[SEED], max_chars=110)
    assert len(summary) <= 110 and summary in TEXT


def test_empty_and_title_only_texts() -> None:
    assert summarise("Algeria shuts airspace", "", known=[SEED]) == ""
    assert summarise("Algeria shuts airspace", "   ", known=[]) == ""
    assert (
        summarise("Algeria shuts airspace to Mali", "Algeria shuts airspace to Mali.", known=[])
        == ""
    )
    assert summarise("t", TEXT, known=[], max_sentences=0) == ""
