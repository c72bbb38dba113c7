"""bot.decide.lexicon: phrase syntax, the phrase trie, tokens, the packaged bilingual lexicon."""

from __future__ import annotations

import pytest

from bot.decide.lexicon import (
    PhraseGate,
    PhraseTrie,
    Tokens,
    build_lexicon,
    default_lexicon,
    expand,
    folded_words,
)


def concepts(text: str, language: str) -> set[str]:
    lexicon = default_lexicon()
    return {cid for cid, _i, _j in lexicon.tag(Tokens(text).low, language)}


def test_expand_alternatives_and_optionals() -> None:
    assert sorted(
        map(" ".join, expand("joint [operational] (staff|chiefs of staff) committee"))
    ) == [
        "joint chiefs of staff committee",
        "joint operational chiefs of staff committee",
        "joint operational staff committee",
        "joint staff committee",
    ]
    assert expand("Tin-Zaouatène") == [["tin", "zaouatene"]]
    assert expand("l'espace aérien") == [["l", "espace", "aerien"]]


@pytest.mark.parametrize("bad", ["(a|b", "a]", "visas?", "(de )?(l|la)", "(a||b)"])
def test_expand_rejects_malformed_patterns(bad: str) -> None:
    with pytest.raises(ValueError, match="pattern"):
        expand(bad)


def test_trie_prefers_the_longest_phrase_then_whole_words() -> None:
    trie = PhraseTrie[str]()
    trie.add("court", "COURT")
    trie.add("international court of justice", "ICJ")
    trie.add("europe", "EUROPE")
    trie.add("euro*", "ECONOMY")
    low = Tokens("The International Court of Justice and a court in Europe").low
    assert [p for p, _i, _j in trie.scan(low)] == ["ICJ", "COURT", "EUROPE"]


def test_trie_stems_need_three_letters_and_wildcards_are_rescanned() -> None:
    trie = PhraseTrie[str]()
    with pytest.raises(ValueError, match="3\\+ letters"):
        trie.add("ab*", "X")
    trie.add("take* ? to court", "LAWSUIT")
    trie.add("algeria", "ALGERIA")
    hits = trie.scan(Tokens("Mali takes Algeria to court").low)
    assert ("LAWSUIT", 1, 5) in hits
    assert ("ALGERIA", 2, 3) in hits  # the word `?` stood for still counts


def test_tokens_sentences_and_clauses() -> None:
    tokens = Tokens("Gen. Maïga spoke at 10.30 in Bamako. The levy is 0.5%: it starts today.")
    sentence_of = dict(zip(tokens.low, tokens.sent, strict=False))
    assert sentence_of["maiga"] == 0 and sentence_of["bamako"] == 0  # "Gen." does not end it
    assert sentence_of["levy"] == 1
    assert tokens.clause[tokens.low.index("starts")] > tokens.clause[tokens.low.index("levy")]
    assert tokens.first[tokens.low.index("the")] and not tokens.first[tokens.low.index("maiga")]


@pytest.mark.parametrize(
    ("english", "french", "concept"),
    [
        ("Algeria closed its airspace", "l'Algérie ferme son espace aérien", "AIRSPACE"),
        ("a case at the International Court of Justice", "une requête devant la CIJ", "ICJ"),
        ("recalled its ambassadors", "rappelle ses ambassadeurs", "AMBASSADOR"),
        ("Niger nationalises the mine", "le Niger nationalise la mine", "NATIONALISE"),
        ("a 0.5% levy on imports", "un prélèvement de 0,5 % sur les importations", "LEVY"),
        ("a fuel blockade", "un blocus sur le carburant", "BLOCKADE"),
        ("schools were closed", "les écoles sont fermées", "SCHOOLS"),
        ("the Trans-Saharan gas pipeline", "le gazoduc transsaharien", "PIPELINE"),
        ("an AES summit", "un sommet de l'AES", "SUMMIT"),
        ("two industrial gold mines", "deux mines d'or industrielles", "GOLD"),
        ("near Tin Zaouatine", "près de Tinzaouatène", "TIN_ZAOUATINE"),
        ("near Tin-Zaouatene", "près de Tinzaouaten", "TIN_ZAOUATINE"),
    ],
)
def test_english_and_french_meet_on_one_concept(english: str, french: str, concept: str) -> None:
    assert concept in concepts(english, "en")
    assert concept in concepts(french, "fr")


@pytest.mark.parametrize(
    ("text", "language", "absent"),
    [
        ("la Palme d'or pour un drame", "fr", "GOLD"),
        ("or, selon lui, rien ne change", "fr", "GOLD"),
        ("according to officials", "en", "AGREEMENT"),
        ("one of the most important sites", "en", "IMPORT"),
        ("a couple of days", "en", "COUP"),
        ("il rappelle que la loi", "fr", "RECALL_ENVOY"),
        ("a close ally of the president", "en", "CLOSE"),
    ],
)
def test_look_alike_words_do_not_fire(text: str, language: str, absent: str) -> None:
    assert absent not in concepts(text, language)


def test_implied_and_member_concepts_exist() -> None:
    lexicon = default_lexicon()
    assert "MALI" in lexicon.concepts["BAMAKO"].implies
    assert set(lexicon.concepts["AES"].members) == {"MALI", "BURKINA", "NIGER"}


def test_build_lexicon_errors_name_the_concept() -> None:
    with pytest.raises(ValueError, match=r"concepts\.X\.k: unknown kind"):
        build_lexicon({"concepts": {"X": {"k": "planet", "any": ["x"]}}})
    with pytest.raises(ValueError, match=r"concepts\.X\.en: must be a list of strings"):
        build_lexicon({"concepts": {"X": {"en": "x"}}})
    with pytest.raises(ValueError, match=r"concepts\.X: unknown concept 'NOPE'"):
        build_lexicon({"concepts": {"X": {"any": ["x"], "up": ["NOPE"]}}})
    with pytest.raises(ValueError, match=r"concepts\.X: pattern"):
        build_lexicon({"concepts": {"X": {"any": ["(x"]}}})


def test_phrase_gate_says_no_only_where_no_pattern_can_occur() -> None:
    gate = PhraseGate(["in salah", "tin zaouat*", "burkina [faso]", "(alger|algiers)"])
    assert gate.could_occur(folded_words("Storm near In Salah"))
    assert gate.could_occur(folded_words("Drone à Tin-Zaouatène"))
    assert gate.could_occur(folded_words("Burkina"))
    assert gate.could_occur(folded_words("ALGIERS"))
    assert not gate.could_occur(folded_words("Salah scores twice"))  # "in" is missing
    # present, but a stemmed word is required: "tin" alone does not open the gate
    assert not gate.could_occur(folded_words("A tin of beans"))
    assert not gate.could_occur(folded_words("Faso"))
