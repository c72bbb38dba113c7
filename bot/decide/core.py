"""The decision: `decide(entry, context) -> Verdict`, a pure function of the entry and of what
the context holds (compiled rules, the model, the seeds, the stories of the window).

    entry ─► language ─► lexicon: a watched term at all?  no ─► irrelevant (no model call)
                │
                ▼ embed title + lead, and title alone (one model call)
          relevant? (lexicon evidence + nearest examples)           no ─► irrelevant
          restates a seed? (meaning of title/lead vs seed sentences
                            + how much of who/what/where the seed holds)
          same development as a story of the window? (meaning, shared
                            features, title facts, actors, time gap)
                            the stronger yes wins                  ─► seed / duplicate
          published longer ago than max_age_hours?                     yes ─► stale
          otherwise ─► new, with a summary that leads with what is new

Each question is one fitted `Logistic` of `policy.py`; the reasons name the evidence that
weighed most. The poll cycle, `poll-once` and `evaluate` all call this function; the pipeline
only looks up exact keys before it and writes what it returns.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from importlib import resources
from typing import Any

import numpy as np
import numpy.typing as npt

from bot.decide import evidence
from bot.decide.dedup import fingerprint, seed_print
from bot.decide.embed import Embedder, to_bytes
from bot.decide.language import detect_language
from bot.decide.match import Matcher, MatchResult, compile_rules, load_rules
from bot.decide.policy import DEFAULT, Policy
from bot.decide.stories import StoryIndex
from bot.decide.summarise import summarise
from bot.records import Entry, Seed, Verdict


@dataclass(frozen=True, slots=True)
class Prepared:
    """The part of a decision that does not depend on other entries: language, lexicon, and
    (for an entry that names a watched term) the vectors of its text and of its title."""

    entry: Entry
    match: MatchResult
    vectors: npt.NDArray[np.float32] | None


@dataclass(frozen=True, slots=True)
class Context:
    """What a decision reads; built once per process (`build_context`) except `now`,
    `stories` (the pipeline keeps it current) and `max_age_hours`. `prepared` holds the
    results of `prepare` for the entries about to be decided (a memo, emptied by `decide`)."""

    matcher: Matcher
    embedder: Embedder
    seeds: tuple[evidence.SeedVectors, ...]
    examples: evidence.Examples
    stories: StoryIndex
    now: datetime
    max_age_hours: float = 0.0
    policy: Policy = DEFAULT
    prepared: dict[tuple[str, str], Prepared] = field(default_factory=dict)


def read_examples() -> tuple[list[str], list[str]]:
    text = resources.files("bot.decide").joinpath("examples.toml").read_text("utf-8")
    data: dict[str, Any] = tomllib.loads(text)
    return list(data["on_topic"]), list(data["off_topic"])


def build_context(
    topics: Mapping[str, Any],
    seeds: Sequence[Seed],
    embedder: Embedder,
    *,
    now: datetime,
    max_age_hours: float = 0.0,
    policy: Policy = DEFAULT,
) -> Context:
    on_topic, off_topic = read_examples()
    return Context(
        matcher=compile_rules(load_rules(topics)),
        embedder=embedder,
        seeds=tuple(evidence.seed_vectors(s, seed_print(s), embedder) for s in seeds),
        examples=evidence.embed_examples(on_topic, off_topic, embedder),
        stories=StoryIndex(window_days=policy.window_days),
        now=now,
        max_age_hours=max_age_hours,
        policy=policy,
    )


def _key(entry: Entry) -> tuple[str, str]:
    return (entry.feed_url, entry.guid)


def _lexical(entry: Entry, context: Context) -> tuple[Entry, MatchResult]:
    policy = context.policy
    sample = f"{entry.title}. {entry.text[: policy.language_chars]}"
    language = detect_language(sample, entry.language)
    if language != entry.language:
        entry = dataclasses.replace(entry, language=language)
    text = entry.text[: policy.lexicon_chars]
    return entry, context.matcher.match(entry.title, text, entry.language)


def _texts(entry: Entry, policy: Policy) -> list[str]:
    title = evidence.embed_title(entry.title, policy.lead_chars)
    return [evidence.embed_text(entry.title, entry.text, policy.lead_chars), title]


def prepare(entries: Sequence[Entry], context: Context) -> None:
    """Read the entries of a cycle and embed, in one model call, those that name a watched
    term: one call for many costs far less than one per entry. `decide` uses the results."""
    lexical = [_lexical(e, context) for e in entries]
    texts = [t for e, m in lexical if m.mentions for t in _texts(e, context.policy)]
    vectors = context.embedder.encode(texts) if texts else None
    row = 0
    for original, (entry, match) in zip(entries, lexical, strict=True):
        mine = None
        if match.mentions and vectors is not None:
            mine, row = vectors[row : row + 2], row + 2
        context.prepared[_key(original)] = Prepared(entry, match, mine)


def decide(entry: Entry, context: Context) -> Verdict:
    """Decide one entry that no exact key (guid, link, title) matched."""
    policy = context.policy
    ready = context.prepared.pop(_key(entry), None)
    if ready is None:
        entry, match = _lexical(entry, context)
        vectors = None
    else:
        entry, match, vectors = ready.entry, ready.match, ready.vectors
    if not match.mentions:
        return Verdict(entry, "irrelevant", None, match.reasons)

    if vectors is None:
        vectors = context.embedder.encode(_texts(entry, policy))
    fp = fingerprint(entry.title, entry.text, entry.language)
    base = Verdict(
        entry, "irrelevant", None, match.reasons, topics=match.topics,
        fingerprint=fp.to_json(), vector=to_bytes(vectors[0]),
    )  # fmt: skip
    replace = dataclasses.replace
    margin = evidence.example_margin(vectors[0], context.examples)
    relevance = evidence.relevance_features(match, margin)
    if policy.relevance.score(relevance) <= policy.relevance_cut:
        why = ", ".join(policy.relevance.strongest(relevance))
        return replace(base, reasons=(*match.reasons, f"not on topic ({why})"))

    reasons: tuple[str, ...] = match.reasons
    if not match.relevant:  # the lexicon alone would have said no: say what outweighed it
        reasons = (*reasons, f"on topic ({', '.join(policy.relevance.strongest(relevance))})")
    probe = evidence.Probe(fp, vectors[0], vectors[1])
    # Both questions are asked, and the stronger yes wins: a report of a development already
    # stored may well read like the seed too (it recalls the drone incident as background).
    seed_best: tuple[float, str, tuple[float, ...]] | None = None
    for seed in context.seeds:
        features = evidence.seed_features(probe, seed)
        score = policy.seed.score(features)
        if score > 0 and (seed_best is None or score > seed_best[0]):
            seed_best = (score, seed.seed.seed_id, features)
    when = min(entry.published or context.now, context.now)
    best: tuple[float, int, tuple[float, ...]] | None = None
    nearest: tuple[float, int] | None = None  # the story it came nearest to joining
    for story_id, items in context.stories.candidates(probe, when, policy.max_candidates):
        features = evidence.story_features(probe, items, when, policy.window_days)
        score = policy.same_story.score(features)
        if nearest is None or score > nearest[0]:
            nearest = (score, story_id)
        if score > 0 and (best is None or score > best[0]):
            best = (score, story_id, features)
    if seed_best is not None and (best is None or seed_best[0] >= best[0]):
        _score, seed_id, features = seed_best
        why = ", ".join(policy.seed.strongest(features))
        reasons = (*reasons, f"restates seed {seed_id} ({why})")
        return replace(base, decision="seed", reasons=reasons)
    if best is not None:
        _score, story_id, features = best
        why = ", ".join(policy.same_story.strongest(features))
        reasons = (*reasons, f"same development as story {story_id} ({why})")
        return replace(base, decision="duplicate", story_id=story_id, reasons=reasons)

    known = [s.seed.fingerprint for s in context.seeds]
    summary = summarise(entry.title, entry.text, known=known, language=entry.language)
    if _stale(entry, context):
        age = f"published more than {context.max_age_hours:g} h ago"
        return replace(base, decision="stale", reasons=(*reasons, age), summary=summary)
    follows = None
    if nearest is not None and nearest[0] > policy.follow_up_cut:
        follows = nearest[1]
        reasons = (*reasons, f"new development, following up story {follows}")
    else:
        reasons = (*reasons, "new development")
    return replace(base, decision="new", reasons=reasons, summary=summary, follows=follows)


def _stale(entry: Entry, context: Context) -> bool:
    limit = context.max_age_hours
    if limit <= 0 or entry.published is None:
        return False
    return entry.published < context.now - timedelta(hours=limit)
