"""What an item says, for comparing it with the seed and with stored items: the lexical half of
the evidence the decision core weighs (`bot.decide.evidence`).

Items are compared by `Fingerprint`s: the language-neutral features of `bot.decide.features`
(concepts, names, numbers, dates, who-did-what roles), each with a weight and the place it
first appears (title, lead sentence, body). The weight of a feature counts fully in the
title, less in the lead, least in the body (`SALIENCE`).

- `seed_score`: how much of the item the seed already holds, how much of the seed's core it
  touches, and what its title adds.
- `DupProbe.against` / `dup_score`: the weighted features two items share, the title facts one
  has and the other lacks, and the same act done by different actors in the two titles.
- `title_key`: the exact-duplicate key of a title; `index_keys`: its most telling features.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache

from bot.decide.features import BODY, LEAD, TITLE, item_features, sentence_roles
from bot.decide.fold import fold
from bot.decide.lexicon import default_lexicon
from bot.records import Seed

SALIENCE = (1.0, 0.6, 0.35)
MAX_INDEX_KEYS = 40
INDEX_MIN_WEIGHT = 1.5

PARTY_NOVELTY = 2.0  # a state or bloc the seed lacks, named in the title, weighs at least this

# An event line "Background: …", possibly after its date ("2025-01-01: Background: …").
_BACKGROUND = re.compile(r"\s*(?:\d{4}-\d{2}-\d{2}\s*[:\-\u2013]?\s*)?(?:background|contexte)\b")
_GENERIC_KINDS = frozenset({"country", "capital", "bloc", "generic", "demonym", "time", "number"})


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """What an item says, as weighted language-neutral features (key, weight, position)."""

    language: str
    features: tuple[tuple[str, float, int], ...]
    # Derived once, so that comparing with many items is one dictionary lookup per feature.
    mass: float = field(init=False, compare=False, repr=False)
    families: frozenset[str] = field(init=False, compare=False, repr=False)
    roles: tuple[tuple[str, str], ...] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        mass, families, roles = 0.0, set(), []
        for key, weight, pos in self.features:
            if pos not in (TITLE, LEAD, BODY):
                raise ValueError(f"bad fingerprint: position {pos!r} of {key!r}")
            mass += weight * SALIENCE[pos]
            meta = _key(key)
            if meta.family:
                families.add(meta.family)
            if meta.role is not None and pos == TITLE:
                roles.append((meta.role[1], meta.role[0]))
        object.__setattr__(self, "mass", mass)
        object.__setattr__(self, "families", frozenset(families))
        object.__setattr__(self, "roles", tuple(roles))

    def to_json(self) -> str:
        return json.dumps(
            {"v": 1, "lang": self.language, "f": [list(f) for f in self.features]},
            ensure_ascii=False,
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, data: str) -> Fingerprint:
        """Parse `to_json` output (memoised: the same stored items come back as candidates
        again and again); anything else raises ValueError."""
        return _parse(data)

    def as_map(self) -> dict[str, tuple[float, int]]:
        return {k: (w, p) for k, w, p in self.features}


@lru_cache(maxsize=8192)
def _parse(data: str) -> Fingerprint:
    try:
        raw = json.loads(data)
        if not isinstance(raw, dict) or raw.get("v") != 1:
            raise ValueError("not a version 1 fingerprint")
        feats = tuple((str(k), float(w), int(p)) for k, w, p in raw["f"])
        return Fingerprint(language=str(raw["lang"]), features=feats)
    except (TypeError, KeyError, json.JSONDecodeError) as exc:
        raise ValueError(f"bad fingerprint: {exc}") from None


@dataclass(frozen=True, slots=True)
class SeedPrint:
    seed_id: str
    fingerprint: Fingerprint


def title_key(title: str) -> str:
    """Exact-dedup key of a title: folded, punctuation and extra spaces dropped."""
    return " ".join("".join(c if c.isalnum() else " " for c in fold(title)).split())


def _freeze(features: Mapping[str, tuple[float, int]], language: str) -> Fingerprint:
    feats = tuple(sorted((k, round(w, 3), p) for k, (w, p) in features.items()))
    return Fingerprint(language=language, features=feats)


def fingerprint(title: str, text: str, language: str) -> Fingerprint:
    """The fingerprint of one item (pure; the tokenising is shared with `bot.decide.match`)."""
    return _freeze(item_features(title, text, language), language)


def index_keys(fp: Fingerprint) -> frozenset[str]:
    """Up to 40 discriminative keys (entities, events, names, numbers) for an inverted index."""
    ranked = sorted(
        (f for f in fp.features if f[1] >= INDEX_MIN_WEIGHT),
        key=lambda f: (-f[1] * SALIENCE[f[2]], f[0]),
    )
    return frozenset(k for k, _w, _p in ranked[:MAX_INDEX_KEYS])


def seed_print(seed: Seed) -> SeedPrint:
    """A seed's fingerprint: title, summary and main events are its core (position 0),
    the text is known detail (1), events marked "Background:" (after an optional ISO date)
    are background (2)."""
    merged: dict[str, tuple[float, int]] = {}

    def add(features: Mapping[str, tuple[float, int]], pos: int) -> None:
        for key, (weight, _p) in features.items():
            old = merged.get(key)
            merged[key] = (max(weight, old[0]) if old else weight, min(pos, old[1]) if old else pos)

    background = [e for e in seed.events if _BACKGROUND.match(fold(e))]
    core_events = [e for e in seed.events if e not in background]
    core_text = " ".join([seed.summary, *core_events]).strip()
    add(item_features(seed.title, core_text, seed.language), TITLE)
    add(sentence_roles(core_text, seed.language), TITLE)
    add(item_features("", seed.text, seed.language), LEAD)
    add(sentence_roles(seed.text, seed.language), LEAD)
    add(item_features("", " ".join(background), seed.language), BODY)
    return SeedPrint(seed_id=seed.id, fingerprint=_freeze(merged, seed.language))


@dataclass(frozen=True, slots=True)
class _Key:
    """What the rules need to know about a feature key, looked up once per key."""

    specific: bool  # singles out an event (a place, a person, an act), not just a country
    party: bool  # a state or bloc
    decisive: bool  # a title action or town whose absence makes another development
    family: str  # events telling the same kind of thing share it ("violence")
    role: tuple[str, str] | None  # (actor, action) of an `act:` key


_KEYS: dict[str, _Key] = {}


def _key(key: str) -> _Key:
    meta = _KEYS.get(key)
    if meta is None:
        meta = _KEYS[key] = _describe_key(key)
    return meta


def _describe_key(key: str) -> _Key:
    if key.startswith("act:"):
        _act, who, action = key.split(":", 2)
        return _Key(True, False, False, "", (who, action))
    if key.startswith(("n:", "date:", "pct:")):
        return _Key(True, False, False, "", None)
    if key.startswith("num:"):
        return _Key(float(key[4:]) >= 10, False, False, "", None)
    concept = default_lexicon().concepts.get(key)
    if concept is None:
        return _Key(False, False, False, "", None)
    return _Key(
        specific=concept.kind not in _GENERIC_KINDS and concept.weight >= 1.5,
        party=concept.kind in ("country", "bloc"),
        decisive=concept.kind in ("event", "place") and concept.weight >= 2.0,
        family=concept.family,
        role=None,
    )


@dataclass(frozen=True, slots=True)
class SeedScore:
    coverage: float  # share of the item's salient weight the seed already has
    core: float  # salient weight of specific features found in the seed's core
    title_novelty: float  # weight of title features the seed lacks
    novel: tuple[str, ...]


def seed_score(
    item: Mapping[str, tuple[float, int]], seed: Mapping[str, tuple[float, int]]
) -> SeedScore:
    covered = total = core = title_novelty = 0.0
    novel: list[tuple[float, str]] = []
    for key, (weight, pos) in item.items():
        mass = weight * SALIENCE[pos]
        total += mass
        known = seed.get(key)
        if known is not None:
            covered += mass
            if known[1] == TITLE and _key(key).specific:
                core += mass
        else:
            novel.append((mass, key))
            meta = _key(key)
            if pos == TITLE and meta.party:
                title_novelty += max(weight, PARTY_NOVELTY)
            elif pos == TITLE and meta.specific:
                title_novelty += weight
    novel.sort(reverse=True)
    return SeedScore(
        coverage=covered / total if total else 0.0,
        core=core,
        title_novelty=title_novelty,
        novel=tuple(k for _m, k in novel[:4]),
    )


@dataclass(frozen=True, slots=True)
class DupScore:
    similarity: float
    title_novelty: float  # weight of the item's title events and entities the candidate lacks
    conflict: str  # a role the candidate has with another actor, "" if none
    shared: frozenset[str]  # keys both have


class DupProbe:
    """An item prepared once for comparison with many candidates."""

    __slots__ = ("decisive", "feats", "mass", "roles")

    def __init__(self, fp: Fingerprint) -> None:
        self.feats = {k: w * SALIENCE[p] for k, w, p in fp.features}
        self.mass = fp.mass
        self.decisive = [
            (k, w, _key(k).family) for k, w, p in fp.features if p == TITLE and _key(k).decisive
        ]
        self.roles: dict[str, set[str]] = {}
        for k, _w, p in fp.features:
            role = _key(k).role
            if role is not None and p == TITLE:
                self.roles.setdefault(role[1], set()).add(role[0])

    def against(self, other: Fingerprint) -> DupScore:
        get = self.feats.get
        shared = 0.0
        keys: set[str] = set()
        for key, weight, pos in other.features:
            mine = get(key)
            if mine is not None:
                mass = weight * SALIENCE[pos]
                shared += mine if mine < mass else mass
                keys.add(key)
        novelty = 0.0
        if self.decisive:
            families = other.families
            novelty = sum(w for k, w, fam in self.decisive if k not in keys and fam not in families)
        conflict = ""
        if self.roles and other.roles:
            theirs: dict[str, set[str]] = {}
            for action, who in other.roles:
                theirs.setdefault(action, set()).add(who)
            conflict = _conflict(self.roles, theirs)
        denominator = 0.5 * (self.mass + other.mass)
        return DupScore(
            similarity=shared / denominator if denominator else 0.0,
            title_novelty=novelty,
            conflict=conflict,
            shared=frozenset(keys),
        )

    def top(self, keys: frozenset[str], n: int = 5) -> tuple[str, ...]:
        """The `n` heaviest of `keys` for this item (for reasons)."""
        return tuple(sorted(keys, key=lambda k: (-self.feats[k], k))[:n])


def dup_score(item: Fingerprint, other: Fingerprint) -> DupScore:
    """How far `item` reports the same development as `other`."""
    return DupProbe(item).against(other)


def _conflict(mine: Mapping[str, set[str]], theirs: Mapping[str, set[str]]) -> str:
    """The same action done by different actors in the two titles ("" if none)."""
    for action, whos in sorted(mine.items()):
        rivals = theirs.get(action)
        if rivals and not whos & rivals:
            return f"{'/'.join(sorted(whos))} vs {'/'.join(sorted(rivals))} ({action})"
    return ""
