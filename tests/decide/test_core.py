from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from bot.decide.core import Context, build_context, decide, prepare
from bot.decide.dedup import Fingerprint
from bot.decide.embed import UsemEmbedder, from_bytes
from bot.decide.evidence import StoredItem
from bot.records import Entry, Verdict
from bot.seeds import load_seeds

SEEDS = Path(__file__).resolve().parents[2] / "seeds"
NOW = datetime(2026, 6, 10, 12, tzinfo=UTC)


class Counting:
    """The real model, counting its calls."""

    def __init__(self, inner: UsemEmbedder) -> None:
        self.inner, self.calls, self.name = inner, 0, inner.name

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        self.calls += 1
        return self.inner.encode(texts)


@pytest.fixture
def counting(embedder: UsemEmbedder) -> Counting:
    return Counting(embedder)


@pytest.fixture
def context(counting: Counting) -> Context:
    return build_context({}, load_seeds(SEEDS), counting, now=NOW, max_age_hours=48)


def entry(title: str, text: str, lang: str = "en", hours_ago: float = 1.0) -> Entry:
    return Entry(
        feed_url="https://feed.example/rss",
        feed_name="Example",
        guid=title,
        title=title,
        text=text,
        link="https://news.example/a",
        published=NOW - timedelta(hours=hours_ago),
        language=lang,
    )


def remember(context: Context, verdict: Verdict, story_id: int, item_id: int) -> None:
    assert verdict.entry.published is not None
    context.stories.add(
        StoredItem(
            story_id,
            item_id,
            Fingerprint.from_json(verdict.fingerprint),
            from_bytes(verdict.vector),
            verdict.entry.published,
        )
    )


def test_no_watched_term_is_irrelevant_without_a_model_call(
    context: Context, counting: Counting
) -> None:
    before = counting.calls
    verdict = decide(entry("Rain delays the harvest in Normandy", "Farmers wait."), context)
    assert verdict.decision == "irrelevant"
    assert verdict.vector == b""
    assert counting.calls == before


def test_a_restatement_of_the_seed_is_seed(context: Context) -> None:
    verdict = decide(
        entry(
            "Mali, Niger and Burkina Faso pull envoys from Algeria over downed drone",
            "The three Sahel juntas recalled their ambassadors from Algiers after Algeria's "
            "army destroyed a Malian drone near Tin Zaouatine, calling it an act of aggression.",
        ),
        context,
    )
    assert verdict.decision == "seed", verdict.reasons
    assert "restates seed aes-algeria-drone-2025" in verdict.reasons[-1]


def test_a_development_is_new_then_its_translation_joins_it(context: Context) -> None:
    first = decide(
        entry(
            "Niger suspends uranium exports through Benin",
            "Niger's military government suspended uranium exports through the port of "
            "Cotonou on Monday, citing security on the route through Benin.",
        ),
        context,
    )
    assert first.decision == "new", first.reasons
    assert first.summary and first.story_id is None
    assert len(first.vector) == 1024 and first.fingerprint.startswith("{")
    assert "economy" in first.topics
    remember(context, first, story_id=41, item_id=1)
    second = decide(
        entry(
            "Le Niger suspend ses exportations d'uranium via le Bénin",
            "Le gouvernement militaire du Niger a suspendu lundi les exportations d'uranium "
            "par le port de Cotonou, invoquant la sécurité sur la route béninoise.",
            lang="fr",
        ),
        context,
    )
    assert second.decision == "duplicate", second.reasons
    assert second.story_id == 41
    assert "same development as story 41" in second.reasons[-1]


def test_an_old_development_is_stale(context: Context) -> None:
    verdict = decide(
        entry(
            "Mali and Mauritania agree on joint border patrols",
            "The defence ministers of Mali and Mauritania agreed in Nouakchott to patrol the "
            "border together after incidents involving Malian troops.",
            hours_ago=24 * 5,
        ),
        context,
    )
    assert verdict.decision == "stale", verdict.reasons
    assert "published more than 48 h ago" in verdict.reasons[-1]


def test_the_feed_language_is_corrected_from_the_text(context: Context) -> None:
    wrong = entry(
        "Le Burkina Faso ferme sa frontière avec le Niger",
        "Les autorités de Ouagadougou ont fermé la frontière avec le Niger jeudi soir.",
        lang="en",
    )
    verdict = decide(wrong, dataclasses.replace(context))
    assert verdict.entry.language == "fr"


# Hand-written cases (never part of a fit): restatements of the seed, developments near it,
# the same development in the other language, and what must stay apart.


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
def test_restating_the_seed_is_seed(context: Context, title: str, text: str, language: str) -> None:
    verdict = decide(entry(title, text, language), context)
    assert verdict.decision == "seed", verdict.reasons


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
    context: Context, title: str, text: str, language: str
) -> None:
    verdict = decide(entry(title, text, language), context)
    assert verdict.decision == "new", verdict.reasons


def stored(context: Context, story_id: int, title: str, text: str, lang: str = "en") -> None:
    first = decide(entry(title, text, lang, hours_ago=6), context)
    assert first.decision == "new", first.reasons
    remember(context, first, story_id=story_id, item_id=story_id * 10)


def test_the_same_development_in_french_joins_its_story(context: Context) -> None:
    stored(
        context,
        7,
        "Niger nationalises Orano-run uranium mine near Arlit",
        "Niger's junta said it was nationalising the Somair uranium mine run by France's Orano.",
    )
    stored(
        context, 8, "Mali's junta dissolves political parties", "The decree dissolves every party."
    )
    verdict = decide(
        entry(
            "Uranium : le Niger nationalise la Somaïr, filiale d'Orano",
            "Niamey reprend le contrôle de la mine d'uranium d'Arlit exploitée par Orano.",
            "fr",
        ),
        context,
    )
    assert (verdict.decision, verdict.story_id) == ("duplicate", 7), verdict.reasons


@pytest.mark.xfail(
    strict=True,
    reason="known gap: the shared words and meaning outweigh the different actors; the fitted "
    "weight of 'role conflict' is modest because real headlines name actors loosely",
)
def test_the_same_act_by_another_actor_is_another_story(context: Context) -> None:
    stored(
        context,
        3,
        "Algeria closes its airspace to flights from Mali",
        "Algeria shut its skies to all aircraft coming from or going to Mali with immediate "
        "effect.",
    )
    verdict = decide(
        entry(
            "Le Mali ferme à son tour son espace aérien aux avions algériens",
            "Bamako ferme son ciel à tous les aéronefs en provenance ou à destination de "
            "l'Algérie.",
            "fr",
        ),
        context,
    )
    assert verdict.decision == "new", verdict.reasons


def test_a_new_act_in_the_title_is_another_story(context: Context) -> None:
    stored(
        context,
        4,
        "Mali files ICJ case against Algeria over drone",
        "Mali asked the International Court of Justice to rule that Algeria violated its "
        "sovereignty.",
    )
    verdict = decide(
        entry(
            "Algeria refuses ICJ jurisdiction in Mali drone case",
            "Algeria will not consent to the International Court of Justice hearing Mali's case.",
        ),
        context,
    )
    assert verdict.decision == "new", verdict.reasons
    assert verdict.follows == 4, verdict.reasons  # the same saga: a follow-up
    other = decide(
        entry(
            "Niger's junta nationalises a uranium mine run by a French company",
            "The Nigerien authorities took control of the mine and its stock of ore.",
        ),
        context,
    )
    assert other.decision == "new", other.reasons
    assert other.follows is None, other.reasons


def test_prepare_embeds_a_batch_in_one_call_and_decides_alike(
    context: Context, counting: Counting
) -> None:
    entries = [
        entry("Rain delays the harvest in Normandy", "Farmers wait."),
        entry(
            "Niger suspends uranium exports through Benin",
            "Niger's military government suspended uranium exports through Cotonou.",
        ),
        entry(
            "Mali and Mauritania agree on joint border patrols",
            "The two defence ministers met in Nouakchott.",
        ),
    ]
    alone = [decide(e, context) for e in entries]
    before = counting.calls
    prepare(entries, context)
    assert counting.calls == before + 1
    together = [decide(e, context) for e in entries]
    assert counting.calls == before + 1
    assert context.prepared == {}
    assert [v.decision for v in together] == [v.decision for v in alone]
    assert [v.reasons for v in together] == [v.reasons for v in alone]
