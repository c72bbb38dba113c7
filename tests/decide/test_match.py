"""bot.decide.match: topic rules (load, merge, validate) and the relevance decision."""

from __future__ import annotations

from typing import Any

import pytest

from bot.decide.match import Matcher, MatchResult, TopicRules, compile_rules, load_rules


@pytest.fixture(scope="module")
def matcher() -> Matcher:
    return compile_rules(load_rules(None))


# --- rules ----------------------------------------------------------------------------------


def test_defaults_load_and_are_frozen() -> None:
    rules = load_rules(None)
    assert isinstance(rules, TopicRules)
    assert {"mali", "niger", "algeria", "aes", "burkina_faso"} <= rules.terms.keys()
    with pytest.raises(Exception, match="frozen"):
        rules.min_anchor = 3.0  # type: ignore[misc]


def test_user_table_extends_the_defaults() -> None:
    rules = load_rules(
        {"terms": {"chad": {"name": "Chad", "names": ["Chad"], "aliases": ["tchad"]}}}
    )
    assert "chad" in rules.terms and "mali" in rules.terms
    result = compile_rules(rules).match(
        "Le Tchad ferme sa frontière", "Le gouvernement a décidé.", "fr"
    )
    assert result.relevant and result.terms == ("Chad",)


def test_user_term_replaces_and_disables() -> None:
    rules = load_rules({"terms": {"mali": {"enabled": False}}, "signals": ["kite festival"]})
    assert not rules.terms["mali"].enabled
    assert rules.signals[-1] == "kite festival" and len(rules.signals) == 1
    result = compile_rules(rules).match(
        "Mali: junta dissolves parties", "The government acted.", "en"
    )
    assert not result.relevant


def test_replace_drops_the_defaults() -> None:
    rules = load_rules({"replace": True, "terms": {"x": {"aliases": ["zanzibar"]}}})
    assert list(rules.terms) == ["x"] and rules.negative == {}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {"terms": {"algeria": {"aliases": ["algeria", "algerie", 3]}}},
            "terms.algeria.aliases[2]: not a string",
        ),
        ({"terms": {"mali": {"nmaes": ["Mali"]}}}, "terms.mali.nmaes: unknown key"),
        ({"terms": {"mali": {"names": ["(Mali"]}}}, "terms.mali.names[0]: pattern"),
        ({"terms": {"mali": {"weight": -1}}}, "terms.mali.weight"),
        ({"terms": {"x": {"weight": 1}}}, "terms.x: needs names or aliases"),
        (
            {"negative": {"c": {"terms": ["nope"], "patterns": ["x"]}}},
            "negative.c.terms[0]: unknown term 'nope'",
        ),
        (
            {"negative": {"c": {"terms": ["mali"], "patterns": ["(x"]}}},
            "negative.c.patterns[0]: bad regex",
        ),
        ({"signal_categories": ["sport"]}, "signal_categories[0]: unknown category 'sport'"),
        ({"min_anchor": "lots"}, "min_anchor: not a number"),
        ({"terms": []}, "terms: not a table"),
    ],
)
def test_bad_rules_name_the_key_and_the_problem(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as info:
        load_rules(raw)
    assert str(info.value).startswith(message)


# --- relevance ------------------------------------------------------------------------------

RELEVANT = [
    (
        "en",
        "Mali's junta suspends two French broadcasters",
        "The transitional authorities in Bamako said the channels had spread false information "
        "about the army.",
    ),
    (
        "fr",
        "Le Niger expulse trois diplomates européens",
        "Niamey accuse les diplomates d'ingérence dans les affaires intérieures du pays.",
    ),
    (
        "en",
        "Gunmen kill 12 soldiers near Djibo",
        "The attack on an army post in northern Burkina Faso was claimed by JNIM.",
    ),
    (
        "fr",
        "L'Algérie et le Mali échangent de nouvelles accusations",
        "Alger dénonce des violations répétées de sa frontière par des drones.",
    ),
    (
        "en",
        "AES finance ministers approve a common investment bank",
        "The Alliance of Sahel States said the bank would fund roads and power lines.",
    ),
    (
        "fr",
        "Tillabéri : une embuscade fait plusieurs morts parmi les soldats nigériens",
        "L'armée du Niger a lancé une opération de ratissage.",
    ),
]


@pytest.mark.parametrize(("lang", "title", "text"), RELEVANT)
def test_regional_politics_and_security_are_relevant(
    matcher: Matcher, lang: str, title: str, text: str
) -> None:
    result = matcher.match(title, text, lang)
    assert result.relevant, result.reasons
    assert result.terms
    assert result.reasons[0].startswith("matched: ")


NOT_RELEVANT = [
    (
        "en",
        "Router vendor patches AES-128 key leak",
        "A flaw let attackers recover AES keys from the firmware; encryption is restored by the "
        "update.",
        "negative context (encryption)",
    ),
    (
        "en",
        "AES Corporation beats quarterly forecasts",
        "Shares of AES Corporation rose after the utility raised its renewables outlook.",
        "negative context (company)",
    ),
    (
        "en",
        "AES convention opens in Paris",
        "The Audio Engineering Society gathers sound engineers and microphone makers.",
        "negative context (audio)",
    ),
    (
        "en",
        "Cruising the Niger river by pirogue",
        "Travellers drift along the Niger river past fishing villages and sandbanks.",
        "negative context (niger_river)",
    ),
    (
        "en",
        "Police free kidnapped farmers in Niger State",
        "Security forces rescued 9 people abducted near Minna, the Niger State police command "
        "said.",
        "negative context (niger_state)",
    ),
    (
        "en",
        "Feeding birds in winter",
        "Hang a feeder with Niger seed and goldfinches will come; keep the seed dry, the garden "
        "centre says.",
        "negative context (niger_seed)",
    ),
    (
        "en",
        "Wicketkeeper Rohan Mali called up for the tour",
        "Rohan Mali, 21, has been named in the squad after a strong season with his club.",
        "as a person's name",
    ),
    (
        "fr",
        "Exposition : l'empire du Mali au temps de Mansa Moussa",
        "Le musée retrace l'histoire de l'empire du Mali et de ses manuscrits.",
        "negative context (mali_empire)",
    ),
    (
        "fr",
        "« La Bataille d'Alger » ressort en salles",
        "Le film de 1966 revient au cinéma en version restaurée, entre réseaux du FLN et armée "
        "française.",
        "negative context (algiers_history)",
    ),
    (
        "fr",
        "Sahel : de nouvelles variétés de sorgho résistent à la sécheresse",
        "Des agronomes testent des semences à cycle court dans des stations de recherche.",
        "only in passing",
    ),
    (
        "fr",
        "Mercato : un milieu burkinabè rejoint un club allemand",
        "L'international burkinabè signe trois ans ; le montant du transfert n'a pas été révélé "
        "par le club.",
        "off-topic",
    ),
    (
        "en",
        "Drone deliveries of blood reach remote clinics",
        "A logistics start-up flies medical supplies to hospitals in the hills.",
        "no watched term",
    ),
    (
        "fr",
        "La Confédération paysanne manifeste contre les importations",
        "Le syndicat agricole appelle à bloquer les routes.",
        "no watched term",
    ),
    (
        "en",
        "Nigeria's central bank cuts rates",
        "The naira firmed after the decision in Abuja.",
        "no watched term",
    ),
    (
        "en",
        "Volkswagen unveils a plug-in Touareg",
        "The Touareg SUV gets a larger battery and a new infotainment system.",
        "negative context (car)",
    ),
]


@pytest.mark.parametrize(("lang", "title", "text", "why"), NOT_RELEVANT)
def test_other_senses_of_watched_words_are_not_relevant(
    matcher: Matcher, lang: str, title: str, text: str, why: str
) -> None:
    result = matcher.match(title, text, lang)
    assert not result.relevant
    assert any(why in reason for reason in result.reasons), result.reasons


def test_word_boundaries(matcher: Matcher) -> None:
    assert not matcher.match(
        "Somalia and Nigeria sign a trade deal", "Ministers met in Abuja.", "en"
    ).relevant
    assert matcher.match(
        "Malian troops retake a town", "The army said the town was secured.", "en"
    ).relevant


def test_country_names_need_a_capital(matcher: Matcher) -> None:
    assert not matcher.match(
        "niger and millet prices rise", "Traders said the government did nothing.", "en"
    ).relevant


def test_a_passing_mention_is_not_enough(matcher: Matcher) -> None:
    text = (
        "Ministers discussed the budget and pensions at length. Defence spending will rise. "
        "A delegation will later travel to several countries including Mali."
    )
    assert not matcher.match("Parliament passes the budget", text, "en").relevant


def test_match_is_pure(matcher: Matcher) -> None:
    args = ("Le Mali saisit la CIJ", "Bamako accuse Alger d'avoir violé sa souveraineté.", "fr")
    first = matcher.match(*args)
    assert first == matcher.match(*args) == compile_rules(load_rules(None)).match(*args)
    assert isinstance(first, MatchResult) and first.relevant


def test_share_of_watched_terms_written_as_a_nationality(matcher: Matcher) -> None:
    abroad = matcher.match(
        "Court in Marseille jails man for arson attack on a warehouse",
        "The court heard that the 34-year-old Algerian had set the fire at night.",
        "en",
    )
    assert abroad.mentions == 1 and abroad.nationality == 1.0
    at_home = matcher.match(
        "Algeria closes its border crossings with Mali",
        "Algerian authorities said the crossings near Tin Zaouatine would stay shut.",
        "en",
    )
    assert 0.0 < at_home.nationality < 1.0
    assert matcher.match("Mali and Algeria hold talks", "", "en").nationality == 0.0


def test_a_capital_in_a_street_name_elsewhere_is_another_sense(matcher: Matcher) -> None:
    street = matcher.match(
        "Incendie dans un immeuble de la rue d'Alger à Paris",
        "Les pompiers sont intervenus dans la nuit, aucun blessé n'est à déplorer.",
        "fr",
    )
    assert not street.relevant
    assert any("street_names" in r for r in street.reasons)
    city = matcher.match("Manifestation à Alger contre la vie chère", "La police a bloqué.", "fr")
    assert not any("street_names" in r for r in city.reasons)
