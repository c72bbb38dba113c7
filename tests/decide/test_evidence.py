from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from bot.decide import evidence
from bot.decide.core import read_examples
from bot.decide.dedup import fingerprint, seed_print
from bot.decide.embed import UsemEmbedder
from bot.decide.match import compile_rules, load_rules
from bot.records import Seed

SEED = Seed(
    id="s",
    title="Mali accuses Niger of closing the Gao road to its lorries",
    language="en",
    text=(
        "Mali has accused Niger of closing the road from Gao to Niamey to Malian lorries. "
        "The transport ministry in Bamako said hundreds of trucks were stuck at the border."
    ),
)
T0 = datetime(2026, 3, 1, tzinfo=UTC)


def probe(e: UsemEmbedder, title: str, text: str, lang: str = "en") -> evidence.Probe:
    vec, title_vec = e.encode([evidence.embed_text(title, text, 400), title])
    return evidence.Probe(fingerprint(title, text, lang), vec, title_vec)


def test_examples_margin_tells_the_region_from_a_watched_word_elsewhere(
    embedder: UsemEmbedder,
) -> None:
    examples = evidence.embed_examples(*read_examples(), embedder)
    on, off = embedder.encode(
        [
            "Gunmen kill soldiers in an ambush near the border between Niger and Burkina Faso",
            "The AES-128 block cipher is broken on a weak smart card, researchers say",
        ]
    )
    assert evidence.example_margin(on, examples) > 0
    assert evidence.example_margin(off, examples) < 0


def test_relevance_features_are_scaled_and_capped() -> None:
    match = compile_rules(load_rules({})).match(
        "Mali and Burkina Faso troops attack jihadist camps near the Niger border",
        "The armies of Mali and Burkina Faso said they attacked camps of an armed group.",
        "en",
    )
    feats = evidence.relevance_features(match, 0.12)
    assert feats[0] == 1.0
    assert all(0.0 <= f <= 1.0 for f in feats[1:4])
    assert feats[4] == 0.12


def test_the_examples_direction_separates_what_it_was_fitted_on() -> None:
    rng = np.random.default_rng(7)
    centre = rng.normal(size=16).astype(np.float32)
    on = (centre + 0.3 * rng.normal(size=(12, 16))).astype(np.float32)
    off = (-centre + 0.3 * rng.normal(size=(40, 16))).astype(np.float32)
    direction, offset = evidence.fit_direction(on, off, evidence.EXAMPLES_RIDGE)
    assert ((on @ direction + offset) > 0).all()
    assert ((off @ direction + offset) < 0).all()
    # each side weighs the same whatever its count: the midpoint is not pushed to the
    # larger side
    assert abs(float(np.zeros(16, dtype=np.float32) @ direction + offset)) < 1.0


def test_a_restatement_is_nearer_the_seed_than_a_development(embedder: UsemEmbedder) -> None:
    seed = evidence.seed_vectors(SEED, seed_print(SEED), embedder)
    again = probe(
        embedder,
        "Niger blocks the Gao to Niamey road for Malian trucks, Bamako says",
        "Malian lorries are stranded at the border after Niger closed the road, Mali said.",
    )
    later = probe(
        embedder,
        "Niger and Mali sign a transit deal and reopen the Gao road",
        "The two governments signed an agreement on lorry transit in Niamey on Tuesday.",
    )
    f_again, f_later = evidence.seed_features(again, seed), evidence.seed_features(later, seed)
    assert f_again[0] > f_later[0]
    assert f_again[2] >= f_later[2]


def test_story_features_across_languages(embedder: UsemEmbedder) -> None:
    first = probe(
        embedder,
        "Burkina Faso expels two French diplomats",
        "Ouagadougou ordered two French diplomats to leave within 48 hours.",
    )
    stored = evidence.StoredItem(7, 1, first.fingerprint, first.vector, T0)
    same = probe(
        embedder,
        "Le Burkina Faso expulse deux diplomates français",
        "Ouagadougou a ordonné à deux diplomates français de quitter le pays sous 48 heures.",
        "fr",
    )
    other = probe(
        embedder,
        "Burkina Faso opens a gold refinery",
        "The government inaugurated the country's first gold refinery near the capital.",
    )
    f_same = evidence.story_features(same, [stored], T0 + timedelta(hours=5), 21)
    f_other = evidence.story_features(other, [stored], T0 + timedelta(hours=5), 21)
    assert f_same[0] > f_other[0] + 0.2
    assert f_same[4] == f_other[4] < 0.01  # five hours of a 21-day window
    legacy = evidence.StoredItem(7, 1, first.fingerprint, None, T0)  # stored before vectors
    assert evidence.story_features(same, [legacy], T0, 21)[0] == 0.0


def test_an_oversized_title_is_bounded_before_it_is_embedded() -> None:
    title = "Algeria shuts its airspace to Mali, code " + "7" * 3000
    text = evidence.embed_text(title, "The ministry said so.", 400)
    assert len(evidence.embed_title(title, 400)) <= 400
    assert text.startswith("Algeria shuts its airspace to Mali, code")
    assert text.endswith(". The ministry said so.") and len(text) < 450
