"""Relevance: does a news item speak about the AES countries and Algeria, in the sense a
subscriber cares about?

The rules are the `[topics]` table of the configuration merged into
`bot/decide/topics.toml` (whose comments explain both the merge and the test). They are
validated by `load_rules`, compiled once by `compile_rules`, and `Matcher.match` is then a
pure function of the item: no I/O, no state.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot.decide.features import Analysis, analyse, covered_mask, is_title_case
from bot.decide.lexicon import (
    Lexicon,
    PhraseGate,
    PhraseTrie,
    Tokens,
    default_lexicon,
    folded_words,
    read_default,
    words,
)

CATEGORY_NAMES = {
    "sec": "security",
    "pol": "politics",
    "dip": "diplomacy",
    "eco": "economy",
    "hum": "humanitarian",
    "jus": "justice",
}
# Capitalised words that may stand before a country's name without being a first name.
_MODIFIERS = words(
    [
        "northern southern eastern western central north south east west upper lower greater "
        "french colonial independent modern neighbouring neighboring landlocked junta rebel "
        "jihadist military"
    ]
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TermRule(_Strict):
    """A watched term: `names` must be written with a capital, `aliases` match in any case."""

    name: str = ""
    names: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    weight: float = Field(default=1.0, gt=0)
    surname_guard: bool = False
    enabled: bool = True


class NegativeRule(_Strict):
    """Regexes over the folded words; a match removes `terms` from the whole item."""

    terms: tuple[str, ...]
    patterns: tuple[str, ...]


class TopicRules(_Strict):
    """The `[topics]` section of the configuration (see bot/decide/topics.toml)."""

    replace: bool = False
    min_anchor: float = Field(default=1.0, gt=0)
    min_signal: float = Field(default=1.0, ge=0)
    offtopic_margin: float = Field(default=1.0, gt=0)
    signal_categories: tuple[str, ...] = tuple(CATEGORY_NAMES)
    signals: tuple[str, ...] = ()
    terms: dict[str, TermRule] = Field(min_length=1)
    negative: dict[str, NegativeRule] = Field(default_factory=dict)
    offtopic: dict[str, tuple[str, ...]] = Field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class MatchResult:
    relevant: bool
    terms: tuple[str, ...]
    reasons: tuple[str, ...]
    # The evidence behind the verdict, for the decision core to weigh with the rest:
    # weight of the watched terms that anchor the item (in the title or lead, or repeated),
    # count of politics/security/economy signals, and of off-topic signals.
    anchor: float = 0.0
    signal: float = 0.0
    off: float = 0.0
    topics: tuple[str, ...] = ()  # the categories of the signals found (CATEGORY_NAMES)
    mentions: int = 0  # watched terms found, those in another sense included
    # share of the live terms' occurrences written as a nationality ("an Algerian man"):
    # on its own, a nationality says little about the country's affairs
    nationality: float = 0.0


_MESSAGES = {
    "string_type": "not a string",
    "missing": "required",
    "extra_forbidden": "unknown key",
    "bool_type": "not true or false",
    "bool_parsing": "not true or false",
    "float_type": "not a number",
    "float_parsing": "not a number",
    "dict_type": "not a table",
    "model_type": "not a table",
    "tuple_type": "not a list",
    "list_type": "not a list",
}


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(topics)"


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    return f"{_path(first['loc'])}: {_MESSAGES.get(first['type'], first['msg'])}"


@cache
def _defaults() -> dict[str, Any]:
    return read_default("topics.toml")


def _merge(base: Mapping[str, Any], user: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in user.items():
        old = base.get(key)
        if (
            key in ("terms", "negative", "offtopic")
            and isinstance(value, Mapping)
            and isinstance(old, Mapping)
        ):
            out[key] = {**old, **value}
        elif key == "signals" and isinstance(value, list) and isinstance(old, list):
            out[key] = [*old, *value]
        else:
            out[key] = value
    return out


def _check_phrases(where: str, phrases: tuple[str, ...]) -> None:
    trie = PhraseTrie[int]()
    for k, phrase in enumerate(phrases):
        try:
            trie.add(phrase, k)
        except ValueError as exc:
            raise ValueError(f"{where}[{k}]: {exc}") from None


def load_rules(raw: Mapping[str, Any] | None) -> TopicRules:
    """Validated topic rules: the packaged defaults, merged with a user `[topics]` table.

    Raises ValueError naming the key path and the problem
    (e.g. "terms.algeria.aliases[2]: not a string").
    """
    if raw is None:
        merged: Mapping[str, Any] = _defaults()
    elif not isinstance(raw, Mapping):
        raise ValueError("(topics): not a table")
    elif raw.get("replace") is True:
        merged = raw
    else:
        merged = _merge(_defaults(), raw)
    try:
        rules = TopicRules.model_validate(merged)
    except ValidationError as exc:
        raise ValueError(_describe(exc)) from None
    for key, term in rules.terms.items():
        if term.enabled and not (term.names or term.aliases):
            raise ValueError(f"terms.{key}: needs names or aliases")
        _check_phrases(f"terms.{key}.names", term.names)
        _check_phrases(f"terms.{key}.aliases", term.aliases)
    for key, neg in rules.negative.items():
        for k, name in enumerate(neg.terms):
            if name not in rules.terms:
                raise ValueError(f"negative.{key}.terms[{k}]: unknown term {name!r}")
        for k, pattern in enumerate(neg.patterns):
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"negative.{key}.patterns[{k}]: bad regex: {exc}") from None
    for key, phrases in rules.offtopic.items():
        _check_phrases(f"offtopic.{key}", phrases)
    _check_phrases("signals", rules.signals)
    for k, cat in enumerate(rules.signal_categories):
        if cat not in CATEGORY_NAMES:
            raise ValueError(f"signal_categories[{k}]: unknown category {cat!r}")
    return rules


@dataclass(frozen=True, slots=True)
class _Negative:
    name: str
    regex: re.Pattern[str]
    terms: frozenset[str]


@dataclass(slots=True)
class _Seen:
    """What one pass over an item's words found."""

    terms: dict[str, list[int]] = field(default_factory=dict)
    demonyms: dict[str, int] = field(default_factory=dict)  # term: occurrences as a nationality
    named: set[str] = field(default_factory=set)
    off: dict[str, str] = field(default_factory=dict)
    signals: set[str] = field(default_factory=set)


class Matcher:
    """Compiled topic rules; `match` is pure and cheap (the tokenising is cached per item)."""

    def __init__(self, rules: TopicRules, lexicon: Lexicon) -> None:
        self._rules = rules
        self._lexicon = lexicon
        self._terms = {k: t for k, t in rules.terms.items() if t.enabled}
        # One trie for terms, off-topic words and extra signals: one pass over the words.
        # Payload: (what, key, must be capitalised) with what in "term", "off", "signal".
        self._trie = PhraseTrie[tuple[str, str, bool]]()
        for key, term in self._terms.items():
            for phrase in term.names:
                self._trie.add(phrase, ("term", key, True))
            for phrase in term.aliases:
                self._trie.add(phrase, ("term", key, False))
        for name, phrases in rules.offtopic.items():
            for phrase in phrases:
                self._trie.add(phrase, ("off", name, False))
        for phrase in rules.signals:
            self._trie.add(phrase, ("signal", phrase, False))
        # The watched terms alone, to reject at once an entry that names none of them.
        self._gate = PhraseGate(p for t in self._terms.values() for p in (*t.names, *t.aliases))
        self._negatives = [
            _Negative(
                name, re.compile("|".join(f"(?:{p})" for p in neg.patterns)), frozenset(neg.terms)
            )
            for name, neg in rules.negative.items()
            if neg.patterns
        ]
        self._categories = frozenset(rules.signal_categories)

    def _scan(
        self,
        tokens: Tokens,
        covered: list[bool],
        title: bool,
        seen: _Seen,
        hits: list[tuple[str, int, int]],
    ) -> None:
        """Collect terms (with positions: 0 title, 1 lead, 2 body), terms written after a
        first name, terms written as a nationality, off-topic words and extra signals."""
        stop = self._lexicon.stopwords
        concepts = self._lexicon.concepts
        nationality = {i for cid, i, _j in hits if concepts[cid].kind == "demonym"}
        guard = not (title and is_title_case(tokens))
        for (what, key, is_name), i, j in self._trie.scan(tokens.low):
            if what == "off":
                seen.off.setdefault(" ".join(tokens.low[i:j]), key)
                continue
            if what == "signal":
                seen.signals.add(key)
                continue
            if is_name and not tokens.surf[i][:1].isupper():
                continue
            if is_name and guard and i > 0 and self._terms[key].surname_guard:
                k = i - 1
                prev = tokens.surf[k]
                if (
                    not tokens.first[i]
                    and not tokens.first[k]
                    and tokens.sent[k] == tokens.sent[i]
                    and prev[:1].isupper()
                    and prev.isalpha()
                    and not covered[k]
                    and tokens.low[k] not in stop
                    and tokens.low[k] not in _MODIFIERS
                ):
                    seen.named.add(key)
            pos = 0 if title else (1 if tokens.sent[i] == 0 else 2)
            seen.terms.setdefault(key, []).append(pos)
            if i in nationality:
                seen.demonyms[key] = seen.demonyms.get(key, 0) + 1

    def match(self, title: str, text: str, language: str) -> MatchResult:
        """Decide relevance; `terms` are the watched terms that count, `reasons` say why."""
        if not self._gate.could_occur(folded_words(f"{title} {text}")):
            return MatchResult(False, (), ("no watched term",))
        a = analyse(title, text, language)
        seen = _Seen()
        self._scan(a.title, covered_mask(a.title_hits, len(a.title)), True, seen, a.title_hits)
        self._scan(a.text, covered_mask(a.text_hits, len(a.text)), False, seen, a.text_hits)
        found, named = seen.terms, seen.named
        if not found:
            return MatchResult(False, (), ("no watched term",))
        reasons: list[str] = []
        suppressed = {k for k in named if k in found}
        for k in sorted(suppressed):
            reasons.append(f"negative context: {self._terms[k].name or k} as a person's name")
        joined = a.title.joined() + " . " + a.text.joined()
        for neg in self._negatives:
            if neg.terms & (found.keys() - suppressed):
                m = neg.regex.search(joined)
                if m:
                    suppressed |= neg.terms
                    reasons.append(f"negative context ({neg.name}): {m.group(0)}")
        mentions = len(found)
        live = sorted((k for k in found if k not in suppressed), key=lambda k: min(found[k]))
        names = tuple(self._terms[k].name or k for k in live)
        anchor = sum(
            self._terms[k].weight for k in live if min(found[k]) <= 1 or len(found[k]) >= 2
        )
        occurrences = sum(len(found[k]) for k in live)
        as_nationality = sum(seen.demonyms.get(k, 0) for k in live)
        nationality = as_nationality / occurrences if occurrences else 0.0
        if anchor < self._rules.min_anchor:
            if live:
                reasons.append(f"only in passing: {', '.join(names)}")
            reasons = reasons or ["no watched term"]
            return MatchResult(
                False, names, tuple(reasons), anchor, mentions=mentions, nationality=nationality
            )
        signal, cats = self._signal(a)
        signal += len(seen.signals)
        off = float(len(seen.off))
        off_words = [f"{w} ({n})" for w, n in seen.off.items()]
        evidence = (anchor, signal, off)
        if signal < self._rules.min_signal:
            reasons.append("no politics/security/economy signal")
            return MatchResult(
                False, names, tuple(reasons), *evidence, mentions=mentions, nationality=nationality
            )
        if off >= 2 and off >= signal * self._rules.offtopic_margin:
            reasons.append(f"off-topic: {', '.join(off_words[:4])}")
            return MatchResult(
                False, names, tuple(reasons), *evidence, mentions=mentions, nationality=nationality
            )
        topics = ", ".join(CATEGORY_NAMES[c] for c in sorted(cats)) or "watched signals"
        reasons = [f"matched: {', '.join(names)}", f"topic: {topics}"]
        categories = tuple(CATEGORY_NAMES[c] for c in sorted(cats))
        return MatchResult(
            True, names, tuple(reasons), *evidence, categories, mentions, nationality
        )

    def _signal(self, a: Analysis) -> tuple[float, set[str]]:
        concepts = self._lexicon.concepts
        seen: dict[str, float] = {}
        cats: set[str] = set()
        for cid, _i, _j in (*a.title_hits, *a.text_hits):
            concept = concepts[cid]
            if cid in seen or concept.weight <= 0:
                continue
            if concept.category in self._categories or (
                concept.kind == "event" and not concept.category
            ):
                strong = concept.kind in ("event", "topic") and concept.weight >= 1.0
                seen[cid] = 1.0 if strong else 0.5
                if concept.category:
                    cats.add(concept.category)
        return sum(seen.values()), cats


def compile_rules(rules: TopicRules) -> Matcher:
    """Compile the phrase tries and regexes once."""
    return Matcher(rules, default_lexicon())
