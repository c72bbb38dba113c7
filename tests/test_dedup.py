"""bot.dedup: fingerprints, index keys, and seed / duplicate / new decisions."""

from __future__ import annotations

import importlib.util
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import pytest

from bot.dedup import (
    Candidate,
    Fingerprint,
    SeedPrint,
    dup_score,
    fingerprint,
    index_keys,
    judge,
    seed_print,
    title_key,
)
from bot.records import Seed

ROOT = Path(__file__).resolve().parents[1]
LABELLED = ROOT.parent / "shared" / "data" / "labelled_items.json"
EXTRA = ROOT / "tests" / "data" / "extra_items.json"

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


def candidate(story: int, title: str, text: str, language: str = "en") -> Candidate:
    return Candidate(
        story, story * 10, fingerprint(title, text, language), datetime(2025, 6, 1, tzinfo=UTC)
    )


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


# --- seed ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("title", "text", "language"),
    [
        (
            "Algerian forces down Malian drone at Tin Zaouatine",
            "Algeria said its air defences shot down a Malian drone that violated its airspace "
            "near Tin Zaouatine.",
            "en",
        ),
        (
            "Drone malien abattu : les pays de l'AES rappellent leurs ambassadeurs à Alger",
            "Après la destruction du drone près de Tinzaouatène, le Mali, le Burkina Faso et le "
            "Niger rappellent "
            "leurs ambassadeurs. Le Premier ministre Abdoulaye Maïga accuse l'Algérie de "
            "sponsoriser le terrorisme.",
            "fr",
        ),
        (
            "Opinion: what the Tin Zaouatine drone tells us",
            "The Sahel juntas answered the downing of their drone by recalling their envoys from "
            "Algiers, "
            "and General Abdoulaye Maiga accused Algeria of sponsoring terrorism.",
            "en",
        ),
    ],
)
def test_restating_the_seed_is_seed(
    seeds: list[SeedPrint], title: str, text: str, language: str
) -> None:
    verdict = judge(fingerprint(title, text, language), seeds, [])
    assert verdict.kind == "seed", verdict
    assert verdict.story_id is None and "test-seed" in verdict.reasons[0]


@pytest.mark.parametrize(
    ("title", "text", "language"),
    [
        (
            "Algeria closes its airspace to Malian aircraft",
            "The decision follows the downing of a Malian drone near Tin Zaouatine and the "
            "recall of ambassadors.",
            "en",
        ),
        (
            "Le Mali saisit la Cour internationale de justice contre l'Algérie",
            "Bamako accuse Alger d'avoir violé sa souveraineté en abattant son drone près de "
            "Tinzaouatène.",
            "fr",
        ),
        (
            "Niger recalls its ambassador from Benin",
            "Niamey accuses Cotonou of hosting forces that want to destabilise the country.",
            "en",
        ),
        (
            "Algeria downs a second Malian drone, near Bordj Badji Mokhtar",
            "The defence ministry said the drone entered Algerian airspace; Mali says it was "
            "over its territory.",
            "en",
        ),
    ],
)
def test_new_facts_near_the_seed_are_new(
    seeds: list[SeedPrint], title: str, text: str, language: str
) -> None:
    assert judge(fingerprint(title, text, language), seeds, []).kind == "new"


# --- duplicates -------------------------------------------------------------------------------


def test_the_same_development_in_french_joins_the_story(seeds: list[SeedPrint]) -> None:
    story = candidate(
        7,
        "Niger nationalises Orano-run uranium mine near Arlit",
        "Niger's junta said it was nationalising the Somair uranium mine run by France's Orano.",
    )
    other = candidate(
        8, "Mali's junta dissolves political parties", "The decree dissolves every party."
    )
    fp = fingerprint(
        "Uranium : le Niger nationalise la Somaïr, filiale d'Orano",
        "Niamey reprend le contrôle de la mine d'uranium d'Arlit exploitée par Orano.",
        "fr",
    )
    verdict = judge(fp, seeds, [other, story])
    assert (verdict.kind, verdict.story_id) == ("duplicate", 7)
    assert "same development as story 7" in verdict.reasons[0]


def test_the_same_action_by_another_actor_is_another_story(seeds: list[SeedPrint]) -> None:
    story = candidate(
        3,
        "Algeria closes its airspace to flights from Mali",
        "Algeria shut its skies to all aircraft coming from or going to Mali with immediate "
        "effect.",
    )
    fp = fingerprint(
        "Le Mali ferme à son tour son espace aérien aux avions algériens",
        "Bamako ferme son ciel à tous les aéronefs en provenance ou à destination de l'Algérie.",
        "fr",
    )
    score = dup_score(fp, story.fingerprint)
    assert "MALI" in score.conflict and "ALGERIA" in score.conflict
    assert judge(fp, seeds, [story]).kind == "new"


def test_a_new_action_in_the_title_is_another_story(seeds: list[SeedPrint]) -> None:
    story = candidate(
        4,
        "Mali files ICJ case against Algeria over drone",
        "Mali asked the International Court of Justice to rule that Algeria violated its "
        "sovereignty.",
    )
    fp = fingerprint(
        "Algeria refuses ICJ jurisdiction in Mali drone case",
        "Algeria will not consent to the International Court of Justice hearing Mali's case.",
        "en",
    )
    assert dup_score(fp, story.fingerprint).title_novelty > 0
    assert judge(fp, seeds, [story]).kind == "new"


def test_judge_never_reads_beyond_its_candidates(seeds: list[SeedPrint]) -> None:
    fp = fingerprint(
        "JNIM fighters attack army base at Boulkessi", "Dozens of soldiers were killed.", "en"
    )
    assert judge(fp, seeds, []).kind == "new"
    unrelated = [
        candidate(k, f"Trade fair number {k} opens in Dakar", "Exhibitors arrived.")
        for k in range(64)
    ]
    assert judge(fp, seeds, unrelated).kind == "new"


# --- the quality bar ----------------------------------------------------------------------------


def _bench_quality() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_quality", ROOT / "bench" / "quality.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _check_bar(path: Path) -> None:
    quality = _bench_quality()
    from bot.match import compile_rules, load_rules

    seeds = [seed_print(s) for s in quality.load_seeds(ROOT / "seeds")]
    outcomes = quality.run(quality.load_items(path), seeds, compile_rules(load_rules(None)))

    def rate(kind: str, lang: str = "all") -> float:
        group = [o for o in outcomes if o.item.kind == kind and lang in ("all", o.item.lang)]
        assert group, (kind, lang)
        return float(sum(o.correct for o in group) / len(group))

    misses = [(o.item.id, o.decision) for o in outcomes if not o.correct]
    assert all(o.decision == "irrelevant" for o in outcomes if o.expected == "irrelevant"), misses
    for lang in ("en", "fr"):
        assert rate("new_development", lang) >= 0.95, misses
        assert rate("seed_rewrite", lang) >= 0.95, misses
    assert rate("syndicated_duplicate") >= 0.90, misses


@pytest.mark.skipif(not LABELLED.exists(), reason="../shared/data is not beside the repository")
def test_quality_bar_on_the_labelled_set() -> None:
    _check_bar(LABELLED)


def test_quality_bar_on_fresh_items() -> None:
    _check_bar(EXTRA)
