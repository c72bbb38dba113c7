"""Extractive summaries that lead with what is new.

A summary is 1 to `max_sentences` sentences copied verbatim from the item's text (never
rewritten, never invented). The first is the sentence whose language-neutral features
(`bot.decide.features`) are least covered by what the reader already knows: the seed story and
the earlier items of the same story, given as fingerprints. The others are picked the same
way, greedily, and kept in the order of the text. A new fact the headline also names counts
twice: it is what the item is about; and as news puts the development first, each sentence
further down needs a little more to lead. The whole stays within `max_chars`; a
first sentence that alone is too long is cut at a word boundary and ends with "…".
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from bot.decide.dedup import Fingerprint
from bot.decide.features import (
    MAX_TEXT_CHARS,
    headline,
    snippet_features,
    split_sentences,
)
from bot.decide.fold import fold
from bot.decide.textcut import shorten

MAX_SENTENCES = 40  # candidates: the top of a long text is where news is
LATER = 0.85  # discount per sentence of distance from the top, when picking the lead


def _known_keys(known: Iterable[Fingerprint]) -> set[str]:
    return {key for fp in known for key, _w, _p in fp.features}


def summarise(
    title: str,
    text: str,
    *,
    known: Sequence[Fingerprint],
    language: str = "en",
    max_sentences: int = 3,
    max_chars: int = 600,
) -> str:
    """Up to `max_sentences` sentences of `text`, the most novel first; "" for an empty text.
    `language` is the text's, as the decision found it (`bot.decide.language`)."""
    if max_sentences < 1 or max_chars < 1:
        return ""
    title, text = headline(title, text)  # an aggregator's "title - Source" wrapping
    folded_title = fold(title)
    sentences = [
        s
        for s in split_sentences(text[:MAX_TEXT_CHARS])[:MAX_SENTENCES]
        if s and fold(s).rstrip(" .!?…") not in folded_title
    ]
    if not sentences:
        return ""
    features = [snippet_features(s, language) for s in sentences]
    named = snippet_features(title, language).keys()
    seen = _known_keys(known)

    def gain(k: int) -> float:
        # new facts count; new facts the headline is about count twice
        return sum(
            w * (2 if key in named else 1) for key, w in features[k].items() if key not in seen
        )

    # news puts the development first: a later sentence must say clearly more to lead
    lead = max(range(len(sentences)), key=lambda k: (gain(k) * LATER**k, -k))
    chosen = [lead]
    seen |= features[lead].keys()
    used = len(shorten(sentences[lead], max_chars))
    rest = [k for k in range(len(sentences)) if k != lead]
    while len(chosen) < max_sentences and rest:
        best = max(rest, key=lambda k: (gain(k), -k))
        rest.remove(best)
        if used + 1 + len(sentences[best]) > max_chars:
            continue
        chosen.append(best)
        seen |= features[best].keys()
        used += 1 + len(sentences[best])
    ordered = [chosen[0], *sorted(chosen[1:])]
    return " ".join(
        shorten(sentences[k], max_chars) if k == lead else sentences[k] for k in ordered
    )
