"""The evidence the decision weighs, as plain numbers (pure functions, no I/O).

Each function returns the feature tuple that one `Logistic` of `policy.py` scores; the fitting
script (`bench/fit_decide.py`) calls the same functions, so what is fitted is what runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import numpy.typing as npt

from bot.decide.dedup import DupProbe, Fingerprint, SeedPrint, seed_score
from bot.decide.embed import Embedder, Vector
from bot.decide.features import split_sentences
from bot.decide.match import MatchResult
from bot.decide.textcut import shorten
from bot.records import Seed

Matrix = npt.NDArray[np.float32]
ANCHOR_SCALE = 3.0
SIGNAL_SCALE = 3.0
CORE_SCALE = 5.0
NOVELTY_SCALE = 5.0
# The examples' own fit: a weak ridge, since 120 examples in 512 dimensions are separable and
# the relevance model weighs the answer anyway; 0.001 gave the fewest relevance errors on the
# labelled file left out by bench/fit_decide.py (3 of 318, against 7 with 0.01 and 7 with the
# margin to the two nearest examples each side that it replaced).
EXAMPLES_RIDGE = 0.001


@dataclass(frozen=True, slots=True)
class Examples:
    """Labelled example sentences, embedded once, and the direction in meaning space that
    best tells the on-topic ones from the off-topic ones (`fit_direction`)."""

    on_topic: Matrix
    off_topic: Matrix
    direction: Vector
    offset: float


@dataclass(frozen=True, slots=True)
class SeedVectors:
    """A seed story prepared for comparison: its fingerprint and its sentences' vectors."""

    seed: SeedPrint
    sentences: Matrix


@dataclass(frozen=True, slots=True)
class Probe:
    """One item prepared for comparison: what it says (features) and what it means."""

    fingerprint: Fingerprint
    vector: Vector  # title and lead together
    title_vector: Vector
    lexical: DupProbe = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "lexical", DupProbe(self.fingerprint))


@dataclass(frozen=True, slots=True)
class StoredItem:
    """An item of a stored story, proposed as a candidate."""

    story_id: int
    item_id: int
    fingerprint: Fingerprint
    vector: Vector | None  # None for items stored before vectors were kept
    published: datetime


def embed_text(title: str, text: str, lead_chars: int) -> str:
    """The text whose meaning stands for an item: its title and the start of its lead."""
    lead = text[:lead_chars]
    title = embed_title(title, lead_chars)
    return f"{title}. {lead}" if lead else title


def embed_title(title: str, lead_chars: int) -> str:
    """A title as embedded: no longer than a lead (a headline is far shorter; a feed's
    3,000-character title would otherwise drown its meaning and cost the model time)."""
    return shorten(title, lead_chars)


def seed_vectors(seed: Seed, fp: SeedPrint, embedder: Embedder) -> SeedVectors:
    """The seed's title, summary, events and text sentences, embedded once at start."""
    lines = [seed.title, seed.summary, *seed.events, *split_sentences(seed.text)]
    lines = [line for line in lines if len(line) >= 20]
    return SeedVectors(seed=fp, sentences=embedder.encode(lines))


def embed_examples(
    on_topic: Sequence[str], off_topic: Sequence[str], e: Embedder, ridge: float = EXAMPLES_RIDGE
) -> Examples:
    on, off = e.encode(on_topic), e.encode(off_topic)
    direction, offset = fit_direction(on, off, ridge)
    return Examples(on_topic=on, off_topic=off, direction=direction, offset=offset)


def fit_direction(on: Matrix, off: Matrix, ridge: float) -> tuple[Vector, float]:
    """L2-regularised logistic regression of on-topic (1) against off-topic (0) sentence
    vectors, each side weighing the same whatever its count, by Newton's method (a few
    iterations in 512 dimensions: milliseconds, done once at start).

    A direction fitted on all the examples weighs every one of them, where the nearest few
    let one close example decide; on the labelled sets the fitted direction orders relevant
    above off-topic items better (area under the curve 0.98 against 0.96 for the two nearest
    examples each side)."""
    x = np.vstack([on, off]).astype(np.float64)
    x = np.c_[x, np.ones(len(x))]
    y = np.r_[np.ones(len(on)), np.zeros(len(off))]
    weight = np.r_[
        np.full(len(on), 0.5 / max(len(on), 1)), np.full(len(off), 0.5 / max(len(off), 1))
    ]
    w = np.zeros(x.shape[1])
    penalty = ridge * np.eye(len(w))
    penalty[-1, -1] = 0.0
    for _ in range(50):
        p = 1 / (1 + np.exp(-x @ w))
        grad = x.T @ (weight * (p - y)) + penalty @ w
        hess = (x.T * (weight * p * (1 - p))) @ x + penalty
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w[:-1].astype(np.float32), float(w[-1])


def example_margin(vector: Vector, examples: Examples) -> float:
    """Which side of the examples the item's meaning falls on: the log-odds of on-topic by
    the direction fitted on them, above 0 when on-topic is the likelier."""
    return float(vector @ examples.direction + examples.offset)


def relevance_features(match: MatchResult, margin: float) -> tuple[float, ...]:
    return (
        1.0 if match.relevant else 0.0,
        min(match.anchor / ANCHOR_SCALE, 1.0),
        min(match.signal / SIGNAL_SCALE, 1.0),
        min(match.off / SIGNAL_SCALE, 1.0),
        margin,
        match.nationality,
    )


def seed_features(probe: Probe, seed: SeedVectors) -> tuple[float, ...]:
    lexical = seed_score(probe.fingerprint.as_map(), seed.seed.fingerprint.as_map())
    meaning = float((seed.sentences @ probe.vector).max()) if seed.sentences.size else 0.0
    title = float((seed.sentences @ probe.title_vector).max()) if seed.sentences.size else 0.0
    return (
        meaning,
        title,
        lexical.coverage,
        min(lexical.core / CORE_SCALE, 1.0),
        min(lexical.title_novelty / NOVELTY_SCALE, 1.0),
    )


def _other_actors(a: Fingerprint, b: Fingerprint) -> bool:
    """Both titles name who acted, and no actor is in both."""
    return bool(a.roles) and bool(b.roles) and not {w for _, w in a.roles} & {w for _, w in b.roles}


def story_features(
    probe: Probe, items: Sequence[StoredItem], when: datetime, window_days: float
) -> tuple[float, ...]:
    """Evidence that `probe` reports the same development as the story of `items`.

    The fourth feature is 1 when the titles say who did what and the actors differ (the same
    act by another actor, or another actor altogether).
    """
    meaning = shared = 0.0
    novelty = NOVELTY_SCALE
    conflict = 0.0
    gap = window_days
    for item in items:
        if item.vector is not None:
            meaning = max(meaning, float(item.vector @ probe.vector))
        d = probe.lexical.against(item.fingerprint)
        shared = max(shared, d.similarity)
        novelty = min(novelty, d.title_novelty)
        if d.conflict or _other_actors(probe.fingerprint, item.fingerprint):
            conflict = 1.0
        gap = min(gap, abs((when - item.published).total_seconds()) / 86_400)
    return (
        meaning,
        shared,
        min(novelty / NOVELTY_SCALE, 1.0),
        conflict,
        min(gap / window_days, 1.0),
    )
