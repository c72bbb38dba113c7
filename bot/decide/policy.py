"""Every number the decision core uses, in one place, each with the reason for its value.

Three questions are answered by weighing evidence together, not by single-feature vetoes:

- **relevant?**  what the lexicon found (watched terms and how they anchor the item, signals
  of politics, security, economy…, off-topic signals) and how close the item's meaning is to
  labelled examples of on-topic and off-topic news (`examples.toml`);
- **restates the seed?**  how close the title and the lead are in meaning to the seed's
  sentences, and how much of the item's who/what/where/numbers the seed already holds;
- **same development as a stored story?**  meaning (cosine of the two items), shared
  language-neutral features (actors, acts, places, numbers, dates), title facts one has and
  the other lacks, the same act by different actors, and the time between them.

Each is a logistic model: `score = bias + Σ weight × feature`, and the answer is yes when the
score is above 0 (probability above one half: neither error is cheaper at the margin, since
a missed development and a repeated alert both cost the reader). The weights were fitted by
`bench/fit_decide.py` (L2-regularised logistic regression, features scaled to about 0..1,
each question's ridge chosen by leave-one-file-out) on the labelled sets: the synthetic
`../shared/data/labelled_items.json`, `tests/data/extra_items.json` and
`tests/data/more_items.json`, and the real headlines of `../shared/data/real_dev_items.json`.
Fitted on the synthetic sets alone, the same models scored the real headlines, held out, at
82/87 relevance (no false yes), 80/80 seed and 135/143 same-story answers. None is set by
hand for an item. Refit after adding examples or labelled data, and paste its output here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class Logistic:
    """A fitted linear score over named features; positive means yes."""

    names: tuple[str, ...]
    weights: tuple[float, ...]
    bias: float

    def score(self, features: tuple[float, ...]) -> float:
        if len(features) != len(self.weights):
            raise ValueError(f"{len(features)} features for {len(self.weights)} weights")
        return self.bias + sum(w * x for w, x in zip(self.weights, features, strict=True))

    def strongest(self, features: tuple[float, ...], n: int = 2) -> tuple[str, ...]:
        """The features that pushed the score most, as "name=value" (for reasons)."""
        parts = sorted(
            zip(self.weights, features, self.names, strict=True),
            key=lambda t: -abs(t[0] * t[1]),
        )
        return tuple(f"{name} {x:.2f}" for _w, x, name in parts[:n])


@dataclass(frozen=True, slots=True)
class Policy:
    # --- relevance -----------------------------------------------------------------------
    # Features: the lexicon's verdict (0/1), anchor weight / 3 (a country named in the title
    # weighs 1-1.5, a town or a group more; 3 is a clearly anchored item), signals / 3, off-topic
    # signals / 3 (each capped at 1), the examples' log-odds: which side of the labelled
    # examples the item's meaning falls on, by the direction fitted on all of them at start
    # (`evidence.fit_direction`; about -4..+4), and the share of the watched terms'
    # occurrences written as a nationality (0..1: "an Algerian man" is not Algeria's
    # affairs, "Malian troops" may be).
    relevance: Logistic
    # --- seed ----------------------------------------------------------------------------
    # Features: highest cosine of the item (title + lead) to a seed sentence, highest cosine
    # of the title alone, share of the item's weighted features the seed holds (0..1), weight
    # of specific features found in the seed's core / 5 (capped at 1), weight of title facts
    # the seed lacks / 5 (capped at 1).
    seed: Logistic
    # --- same story ----------------------------------------------------------------------
    # Features: highest cosine to an item of the story, highest shared-feature similarity
    # (0..1), lowest weight of title facts the story lacks / 5 (capped at 1), 1 when both
    # titles say who acted and no actor is in both, days since the story's nearest item / 21.
    # The actors are read loosely from real headlines (4 of 46 real duplicates have other
    # actors by this reading), so the fit gives this feature a modest weight.
    same_story: Logistic

    # Relevance says yes above this score, not above 0. Saying yes wrongly to an off-topic
    # item that looks new sends a false alert; saying no wrongly costs an alert only when the
    # item is a new development, and about half of the relevant items are not (reprints,
    # other outlets' copies, restatements of the seed). So a wrong yes costs about twice a
    # wrong no, and the odds must be 2:1: ln 2 = 0.69.
    relevance_cut: float = 0.69
    # A new item follows up the story it came nearest to joining when the same-story score
    # was above this: odds of 1 to 4 (probability 0.2) that it is the same development make
    # it at least the same saga. A wrong guess costs little (the alert is still sent, as a
    # reply to a related alert), so the bar is low; below it the alert stands alone.
    follow_up_cut: float = -1.39
    # Stories looked at: published within this many days of the item. Three weeks: follow-up
    # reports of one development spread over about two weeks in the labelled real news; a
    # report a month later is news of its own or a look-back.
    window_days: float = 21.0
    # How many stored items the lexical index and the meaning index each propose. Bounded so
    # the cost per item does not grow with the store (bench/decide.py measures both).
    max_candidates: int = 64
    # How much of the text the language detector reads: a thousand characters hold a few
    # hundred common words, far more than it needs to tell English from French.
    language_chars: int = 1_000
    # How much of the text the lexicon reads: news puts what happened first, and the top of
    # a long article (about 800 words) carries the watched terms and signals of its subject;
    # full-text feeds otherwise make an off-topic entry cost ten times more to reject.
    lexicon_chars: int = 5_000
    # The lead that is embedded with the title: about two sentences. Later sentences are
    # background more often than news.
    lead_chars: int = 400


RELEVANCE_FEATURES: Final = (
    "lexicon",
    "anchor",
    "signal",
    "off-topic",
    "examples",
    "nationality",
)
SEED_FEATURES: Final = ("meaning", "title meaning", "coverage", "core", "title novelty")
STORY_FEATURES: Final = ("meaning", "shared features", "title novelty", "role conflict", "gap")

# Fitted by `python bench/fit_decide.py` (ridges 0.0003, 0.01 and 0.01, each chosen by
# leave-one-file-out for its question) on
# labelled_items.json, extra_items.json, more_items.json and real_dev_items.json.
DEFAULT = Policy(
    relevance=Logistic(RELEVANCE_FEATURES, (2.711, 2.379, 4.178, -2.86, 3.488, -1.191), -1.46),
    seed=Logistic(SEED_FEATURES, (0.552, 0.38, 1.423, 2.09, -2.276), -2.913),
    same_story=Logistic(STORY_FEATURES, (1.729, 2.714, -1.605, -0.691, -2.027), -1.767),
)
