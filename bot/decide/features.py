"""Language-neutral features of a news item: what dedup compares and summaries rank.

A feature is a key and a weight. Keys survive translation: lexicon concept ids (`AIRSPACE`,
`ICJ`, `MALI`), unknown proper names (`n:somair`), numbers (`num:5000`, `pct:0.5`), dates
(`date:3-31`), years (`yr:2025`), and who-did-what roles read from the title
(`act:ALGERIA:CLOSE`: the first state or group named before an action word). Each feature
also keeps where it first appears: 0 title, 1 lead sentence, 2 the rest; the title and the
lead say what an item is about, the rest is often background.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

from bot.decide.fold import fold
from bot.decide.lexicon import (
    ABBREVIATIONS,
    ACTOR_KINDS,
    Concept,
    Lexicon,
    Tokens,
    default_lexicon,
)

TITLE, LEAD, BODY = 0, 1, 2
MAX_TITLE_CHARS = 1_000  # beyond this, a title or text says nothing more that decides anything
MAX_TEXT_CHARS = 20_000
NAME_WEIGHT = 2.0
ROLE_WEIGHT = 2.0
DATE_WEIGHT = 2.0
YEAR_WEIGHT = 1.0

Features = dict[str, tuple[float, int]]  # key -> (weight, first position)

_MONTHS = {
    "january": 1,
    "janvier": 1,
    "jan": 1,
    "february": 2,
    "fevrier": 2,
    "feb": 2,
    "march": 3,
    "mars": 3,
    "mar": 3,
    "april": 4,
    "avril": 4,
    "apr": 4,
    "may": 5,
    "mai": 5,
    "june": 6,
    "juin": 6,
    "jun": 6,
    "july": 7,
    "juillet": 7,
    "jul": 7,
    "august": 8,
    "aout": 8,
    "aug": 8,
    "september": 9,
    "septembre": 9,
    "sept": 9,
    "sep": 9,
    "october": 10,
    "octobre": 10,
    "oct": 10,
    "november": 11,
    "novembre": 11,
    "nov": 11,
    "december": 12,
    "decembre": 12,
    "dec": 12,
}
_MONTH = "|".join(sorted(_MONTHS, key=len, reverse=True))
_DATE = re.compile(
    rf"\b(?:(\d{{1,2}})(?:er|st|nd|rd|th)?\s+(?:of\s+)?({_MONTH})\b\.?"
    rf"|({_MONTH})\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?\b(?!\s*\d{{3}}))",
    re.IGNORECASE,
)
_DIGIT = re.compile(r"\d")
_ISO_DATE = re.compile(r"\b((?:19|20)\d\d)-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])\b")
_NUMBER = re.compile(
    r"(?<![\w.,])(\d{1,3}(?:[ ,.]\d{3})+|\d+)(?:[.,](\d+))?(?![\d])"
    r"(\s?(?:%|per\s?cent\b|pour\s?cent\b|percent\b))?",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Analysis:
    """Tokens and concept hits of a title and a text, computed once per item."""

    language: str
    title: Tokens
    text: Tokens
    title_hits: list[tuple[str, int, int]]
    text_hits: list[tuple[str, int, int]]


_SOURCE_SUFFIX = re.compile(r"\s+[-\u2013\u2014|]\s+([^-\u2013\u2014|]{2,60})$")


def headline(title: str, text: str) -> tuple[str, str]:
    """Title and text without an aggregator's wrapping: a " - Source" suffix that the text
    repeats, and a text that only restates the title."""
    text = text.strip()
    m = _SOURCE_SUFFIX.search(title)
    if m and len(text) >= len(m.group(1)) and fold(text[-len(m.group(1)) :]) == fold(m.group(1)):
        title, text = title[: m.start()].strip(), text[: -len(m.group(1))].strip(_WRAPPING)
    if title and fold(text[: len(title)]) == fold(title):
        text = text[len(title) :].strip(_WRAPPING)
    return title, text


_WRAPPING = " \u00a0\t.:;|-\u2013\u2014"


@lru_cache(maxsize=128)
def analyse(title: str, text: str, language: str) -> Analysis:
    """Tokenise and tag an item (cached: match and fingerprint both ask for it)."""
    lexicon = default_lexicon()
    title, text = headline(title[:MAX_TITLE_CHARS], text[:MAX_TEXT_CHARS])
    title_tokens, text_tokens = Tokens(title), Tokens(text)
    return Analysis(
        language=language,
        title=title_tokens,
        text=text_tokens,
        title_hits=lexicon.tag(title_tokens.low, language),
        text_hits=lexicon.tag(text_tokens.low, language),
    )


def _put(out: Features, key: str, weight: float, pos: int) -> None:
    old = out.get(key)
    if old is None or pos < old[1] or (pos == old[1] and weight > old[0]):
        out[key] = (
            weight if old is None else max(weight, old[0]),
            min(pos, old[1]) if old else pos,
        )


def _numbers(tokens: Tokens, pos_of: list[int], out: Features) -> None:
    plain = tokens.plain
    if _DIGIT.search(plain) is None:
        return
    offs = tokens.offs

    def where(offset: int) -> int:
        # position of the token starting at or before `offset`
        lo, hi = 0, len(offs)
        while lo < hi:
            mid = (lo + hi) // 2
            if offs[mid] <= offset:
                lo = mid + 1
            else:
                hi = mid
        return pos_of[max(lo - 1, 0)] if pos_of else 0

    taken: list[tuple[int, int]] = []
    for m in _ISO_DATE.finditer(plain):
        _put(out, f"date:{int(m.group(2))}-{int(m.group(3))}", DATE_WEIGHT, where(m.start()))
        _put(out, f"yr:{m.group(1)}", YEAR_WEIGHT, where(m.start()))
        taken.append(m.span())
    for m in _DATE.finditer(plain):
        if any(a <= m.start() < b for a, b in taken):
            continue
        day = m.group(1) or m.group(4)
        month = _MONTHS[(m.group(2) or m.group(3)).casefold()]
        if day and 1 <= int(day) <= 31:
            _put(out, f"date:{month}-{int(day)}", DATE_WEIGHT, where(m.start()))
            taken.append(m.span())
    for m in _NUMBER.finditer(plain):
        if any(a <= m.start() < b for a, b in taken):
            continue
        whole = re.sub(r"[ ,.]", "", m.group(1))
        frac = (m.group(2) or "").rstrip("0")
        pos = where(m.start())
        if m.group(3):
            value = whole.lstrip("0") or "0"
            _put(out, f"pct:{value}.{frac}" if frac else f"pct:{value}", 1.5, pos)
            continue
        if not frac and len(whole) == 4 and whole[:2] in ("19", "20"):
            _put(out, f"yr:{whole}", YEAR_WEIGHT, pos)
            continue
        value = whole.lstrip("0") or "0"
        if frac:
            _put(out, f"num:{value}.{frac}", 1.5, pos)
        elif int(value) >= 2:
            _put(out, f"num:{value}", 1.5 if int(value) >= 10 else 1.0, pos)


def covered_mask(hits: list[tuple[str, int, int]], n: int) -> list[bool]:
    """For each of `n` words: is it part of a lexicon hit?"""
    mask = [False] * n
    for _cid, i, j in hits:
        for k in range(i, j):
            mask[k] = True
    return mask


def _names(tokens: Tokens, covered: list[bool], stop: frozenset[str]) -> dict[str, int]:
    """Capitalised words the lexicon does not know: index of first mention, by folded word."""
    found: dict[str, int] = {}
    starts: set[str] = set()
    for k, surf in enumerate(tokens.surf):
        low = tokens.low[k]
        if covered[k] or low in stop or low in _MONTHS or not surf[0].isupper() or surf.isdigit():
            continue
        acronym = len(surf) >= 2 and surf.isupper() and surf.isalpha()
        if len(surf) < 3 and not acronym:
            continue
        if tokens.first[k] and not acronym:
            starts.add(low)
            continue
        found.setdefault(low, k)
    return found


def is_title_case(tokens: Tokens) -> bool:
    """A Headline In Title Case, where capitals say nothing about names."""
    words = [w for w in tokens.surf if len(w) > 3 and w.isalpha()]
    return len(words) >= 3 and sum(1 for w in words if w[0].isupper()) >= 0.7 * len(words)


def _can_act(concept: Concept) -> bool:
    """States, blocs, capitals, leaders and armed groups do things in titles; courts are places."""
    return concept.kind in ACTOR_KINDS and (concept.kind != "org" or concept.category == "sec")


def _actor(lexicon: Lexicon, cid: str) -> str:
    concept = lexicon.concepts[cid]
    if concept.kind in ("country", "bloc"):
        return cid
    for other in concept.implies:
        if lexicon.concepts[other].kind in ("country", "bloc"):
            return other
    return cid


_LINKS = frozenset({"and", "et", "&", "faso"})


def _roles(
    lexicon: Lexicon,
    tokens: Tokens,
    hits: list[tuple[str, int, int]],
    out: Features,
    pos: int = TITLE,
) -> None:
    """`act:WHO:ACTION` for each action word and the actor(s) named just before it in its
    clause ("Mali, Burkina Faso and Niger announce withdrawal": all three withdraw)."""
    concepts = lexicon.concepts
    ordered = sorted(hits, key=lambda h: h[1])
    actors = [(a, ai, aj) for a, ai, aj in ordered if _can_act(concepts[a])]
    for cid, i, _j in ordered:
        if concepts[cid].kind != "event":
            continue
        clause = tokens.clause[i]
        before = [a for a in actors if a[1] < i and tokens.clause[a[1]] == clause]
        if not before:
            continue
        group = [before[-1]]
        for prev in reversed(before[:-1]):
            gap = tokens.low[prev[2] : group[-1][1]]
            if any(w not in _LINKS for w in gap):
                break
            group.append(prev)
        whos = {_actor(lexicon, a) for a, _ai, _aj in group}
        for who in sorted(whos):
            members = concepts[who].members
            share = ROLE_WEIGHT / (1 + len(members))
            _put(out, f"act:{who}:{cid}", share, pos)
            for member in members:
                _put(out, f"act:{member}:{cid}", share, pos)


_SENTENCE_BREAK = re.compile(r"[.!?\u2026]+[\"'\u00bb\u201d\u2019)\]]*\s+")


def split_sentences(text: str) -> list[str]:
    """The sentences of a text, verbatim (stripped), at . ! ? … followed by a capital or digit."""
    out, start = [], 0
    for m in _SENTENCE_BREAK.finditer(text):
        nxt = text[m.end() : m.end() + 2].lstrip("\"'\u00ab\u201c\u2018([")
        if not nxt or not (nxt[0].isupper() or nxt[0].isdigit()):
            continue
        before = text[start : m.start()].split()
        last = before[-1].strip("(\"'").casefold() if before else ""
        if last in ABBREVIATIONS or (len(last) == 1 and last.isalpha()):
            continue
        out.append(text[start : m.end()].strip())
        start = m.end()
    tail = text[start:].strip()
    if tail:
        out.append(tail)
    return out


def sentence_roles(text: str, language: str) -> Features:
    """Roles read from every sentence of a text as if each were a title (for seed stories)."""
    lexicon = default_lexicon()
    out: Features = {}
    for sentence in split_sentences(text):
        tokens = Tokens(sentence)
        _roles(lexicon, tokens, lexicon.tag(tokens.low, language), out)
    return out


def item_features(title: str, text: str, language: str) -> Features:
    """Every feature of an item, with its weight and first position (0 title, 1 lead, 2 body)."""
    a = analyse(title, text, language)
    lexicon = default_lexicon()
    concepts, stop = lexicon.concepts, lexicon.stopwords
    out: Features = {}
    text_pos = [LEAD if s == 0 else BODY for s in a.text.sent]
    for hits, pos_of in ((a.title_hits, None), (a.text_hits, text_pos)):
        for cid, i, _j in hits:
            pos = TITLE if pos_of is None else pos_of[i]
            for key in (cid, *concepts[cid].implies):
                weight = concepts[key].weight
                if weight > 0:
                    _put(out, key, weight, pos)
    _numbers(a.title, [TITLE] * len(a.title), out)
    _numbers(a.text, text_pos, out)
    text_names = _names(a.text, covered_mask(a.text_hits, len(a.text)), stop)
    title_names = _names(a.title, covered_mask(a.title_hits, len(a.title)), stop)
    confirm = is_title_case(a.title)
    for low in title_names:
        if not confirm or low in text_names:
            _put(out, f"n:{low}", NAME_WEIGHT, TITLE)
    for low, k in text_names.items():
        _put(out, f"n:{low}", NAME_WEIGHT, text_pos[k])
    _roles(lexicon, a.title, a.title_hits, out)
    return out


def snippet_features(text: str, language: str) -> dict[str, float]:
    """Features of a short text (one sentence), without positions."""
    return {key: weight for key, (weight, _pos) in item_features("", text, language).items()}


def weight_of(features: Mapping[str, tuple[float, int]]) -> float:
    return sum(w for w, _p in features.values())
