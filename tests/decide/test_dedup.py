"""bot.decide.dedup: fingerprints, index keys, seed coverage and item comparison."""

from __future__ import annotations

import pytest

from bot.decide.dedup import (
    Fingerprint,
    SeedPrint,
    dup_score,
    fingerprint,
    index_keys,
    seed_print,
    title_key,
)
from bot.records import Seed

SEED = Seed(
    id="test-seed",
    title="Algeria shoots down a Malian drone near Tin Zaouatine; the AES recalls its "
    "ambassadors from Algiers",
    language="en",
    summary="Algeria downed a Malian drone near Tin Zaouatine on the night of 31 March to 1 "
    "April 2025.",
    text=(
        "A Malian surveillance drone shot down near the Algerian border sparked a crisis. Mali, "
        "Burkina "
        "Faso and Niger recalled their ambassadors from Algiers. Mali's prime minister, General "
        "Abdoulaye "
        "Maiga, accused Algeria of sponsoring international terrorism. Algiers said the drone "
        "violated "
        "its airspace by two kilometres. In January 2025 Niger's defence minister announced a "
        "5,000-strong "
        "joint force for the Liptako-Gourma."
    ),
    events=(
        "Algerian air defences shoot down a Malian drone near Tin Zaouatine",
        "The Alliance of Sahel States recalls its ambassadors from Algiers",
        "Background: a 5,000-strong AES joint force announced in January 2025",
    ),
)


@pytest.fixture(scope="module")
def seeds() -> list[SeedPrint]:
    return [seed_print(SEED)]


# --- keys and fingerprints -----------------------------------------------------------------


def test_title_key_folds_case_accents_and_punctuation() -> None:
    assert (
        title_key("  L’Algérie ferme son espace aérien ! ") == "l algerie ferme son espace aerien"
    )
    assert title_key("L'ALGERIE — ferme son espace aérien") == title_key(
        "l’algérie ferme son espace aerien"
    )


def test_fingerprint_round_trips_through_json() -> None:
    fp = fingerprint("Le Mali saisit la CIJ", "Bamako dépose une requête contre Alger.", "fr")
    again = Fingerprint.from_json(fp.to_json())
    assert again == fp
    assert again.mass == pytest.approx(fp.mass) and again.families == fp.families
    assert '"v":1' in fp.to_json()


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "[]",
        '{"v":2,"lang":"en","f":[]}',
        '{"v":1,"lang":"en"}',
        '{"v":1,"lang":"en","f":[["A",1,7]]}',
        '{"v":1,"lang":"en","f":[["A","x",0]]}',
        "not json",
    ],
)
def test_bad_stored_fingerprints_raise_value_error(bad: str) -> None:
    with pytest.raises(ValueError):
        Fingerprint.from_json(bad)


def test_index_keys_are_bounded_and_discriminative() -> None:
    text = " ".join(f"Officials met delegate Zorvan{k} in Bamako." for k in range(80))
    fp = fingerprint("Mali and Algeria sign a border deal at Tin Zaouatine", text, "en")
    keys = index_keys(fp)
    assert 0 < len(keys) <= 40
    assert "TIN_ZAOUATINE" in keys
    assert not keys & {"MALI", "ALGERIA", "GOVERNMENT", "MEETING"}  # common, weak keys stay out


def test_seed_print_marks_core_and_background(seeds: list[SeedPrint]) -> None:
    features = seeds[0].fingerprint.as_map()
    assert features["TIN_ZAOUATINE"][1] == 0  # core: title, summary, main events
    assert features["JOINT_FORCE"][1] > 0  # known, but only as background
    assert "act:ALGERIA:SHOOT_DOWN" in features and "act:MALI:RECALL_ENVOY" in features


# --- comparing items ------------------------------------------------------------------


def test_the_same_action_by_another_actor_is_a_conflict() -> None:
    story = fingerprint(
        "Algeria closes its airspace to flights from Mali",
        "Algeria shut its skies to all aircraft coming from or going to Mali with immediate "
        "effect.",
        "en",
    )
    fp = fingerprint(
        "Le Mali ferme à son tour son espace aérien aux avions algériens",
        "Bamako ferme son ciel à tous les aéronefs en provenance ou à destination de l'Algérie.",
        "fr",
    )
    score = dup_score(fp, story)
    assert "MALI" in score.conflict and "ALGERIA" in score.conflict


def test_a_new_action_in_the_title_is_title_novelty() -> None:
    story = fingerprint(
        "Mali files ICJ case against Algeria over drone",
        "Mali asked the International Court of Justice to rule that Algeria violated its "
        "sovereignty.",
        "en",
    )
    fp = fingerprint(
        "Algeria refuses ICJ jurisdiction in Mali drone case",
        "Algeria will not consent to the International Court of Justice hearing Mali's case.",
        "en",
    )
    assert dup_score(fp, story).title_novelty > 0


def test_the_same_development_in_french_shares_most_features() -> None:
    story = fingerprint(
        "Niger nationalises Orano-run uranium mine near Arlit",
        "Niger's junta said it was nationalising the Somair uranium mine run by France's Orano.",
        "en",
    )
    other = fingerprint(
        "Mali's junta dissolves political parties", "The decree dissolves every party.", "en"
    )
    fp = fingerprint(
        "Uranium : le Niger nationalise la Somaïr, filiale d'Orano",
        "Niamey reprend le contrôle de la mine d'uranium d'Arlit exploitée par Orano.",
        "fr",
    )
    assert dup_score(fp, story).similarity > 0.5 > dup_score(fp, other).similarity
