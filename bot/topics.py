"""Reader topics: what a subscriber chooses to follow, drawn from the decision's categories.

The decision core tags each relevant item with the categories of the news signals it found
(bot/decide/match.py `CATEGORY_NAMES`: security, politics, diplomacy, economy,
humanitarian, justice); a story keeps them comma-separated in `Story.topics`. Readers choose
among five topics, each the union of some categories:

    relations     Algeria–AES relations   diplomacy, justice (recalls, airspace, the ICJ case)
    security      Security                security
    politics      Politics and governance politics
    economy       Economy and resources   economy
    humanitarian  Humanitarian            humanitarian

A chat's choice is stored in `Subscriber.topics` as comma-separated topic keys, "" for all.
A story whose categories map to no topic (relevant on watched signals alone) reaches every
chat: not knowing its topic is no reason to withhold it. This module is the one place that
knows the mapping: the settings keyboard, the delivery filter, digests and alert tags all
read it. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from bot.i18n import N_


@dataclass(frozen=True, slots=True)
class Topic:
    key: str  # stored in Subscriber.topics; also in callback data (short, ASCII)
    label: str  # English, marked for the catalog: translate where shown
    categories: tuple[str, ...]  # decision categories (CATEGORY_NAMES values)


TOPICS: tuple[Topic, ...] = (
    Topic("relations", N_("Algeria–AES relations"), ("diplomacy", "justice")),
    Topic("security", N_("Security"), ("security",)),
    Topic("politics", N_("Politics and governance"), ("politics",)),
    Topic("economy", N_("Economy and resources"), ("economy",)),
    Topic("humanitarian", N_("Humanitarian"), ("humanitarian",)),
)
KEYS: tuple[str, ...] = tuple(t.key for t in TOPICS)
BY_KEY = {t.key: t for t in TOPICS}
# the short codes of bot/decide/lexicon.toml, in case a story holds those
_CODES = {
    "sec": "security",
    "pol": "politics",
    "dip": "diplomacy",
    "eco": "economy",
    "hum": "humanitarian",
    "jus": "justice",
}
_TOPIC_OF = {category: t.key for t in TOPICS for category in t.categories}


def _split(value: str | Iterable[str]) -> list[str]:
    parts = value.split(",") if isinstance(value, str) else list(value)
    return [p.strip().lower() for p in parts if p and p.strip()]


def of_categories(categories: str | Iterable[str]) -> frozenset[str]:
    """The reader topics of a story from its decision categories ("security,politics")."""
    found = set()
    for category in _split(categories):
        key = _TOPIC_OF.get(_CODES.get(category, category))
        if key is not None:
            found.add(key)
    return frozenset(found)


def parse(stored: str) -> frozenset[str]:
    """A chat's chosen topics from `Subscriber.topics`; unknown keys are dropped; empty: all."""
    return frozenset(k for k in _split(stored) if k in BY_KEY)


def stored(keys: Iterable[str]) -> str:
    """The column value for a choice: known keys in the menu's order; all or none is ""."""
    chosen = set(keys)
    ordered = [k for k in KEYS if k in chosen]
    return "" if len(ordered) in (0, len(KEYS)) else ",".join(ordered)


def choose(current: str, key: str, on: bool) -> str | None:
    """The stored choice with topic `key` ticked (`on`) or not; with every topic chosen,
    all are ticked, so unticking one keeps the other four. None when it would leave no
    topic at all; an unknown key changes nothing."""
    chosen = set(parse(current)) or set(KEYS)
    if key in BY_KEY:
        chosen = chosen | {key} if on else chosen - {key}
    return stored(chosen) if chosen else None


def wanted(chosen: str, categories: str | Iterable[str]) -> bool:
    """Does a story of these categories meet a chat's stored choice?"""
    keys = parse(chosen)
    if not keys:
        return True
    topics = of_categories(categories)
    return not topics or bool(keys & topics)


def labels(keys: Iterable[str]) -> list[str]:
    """The (untranslated) labels of topic keys, in the menu's order."""
    chosen = set(keys)
    return [t.label for t in TOPICS if t.key in chosen]
