"""Tokens, phrase patterns and the bilingual concept lexicon (`bot/decide/lexicon.toml`).

Everything here is pure and compiled once. A text becomes `Tokens` (folded words with their
sentence index and capitalisation); a `PhraseTrie` finds, left to right and longest first,
the phrases it was built from. Phrase syntax (after folding, so accents and case never
matter; hyphens and apostrophes split words exactly as in the text):

    word        that whole word            nationalis*   any word starting "nationalis"
    (a|b|c*)    one of these words          ?            any one word
    [word]      this word or nothing        tin [-] zaouat*  (hyphens are ignored anyway)

The lexicon maps words of both languages to language-neutral concept ids
(`espace aerien`, `airspace` -> AIRSPACE), so an English item and its French twin share them.
"""

from __future__ import annotations

import itertools
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Generic, TypeVar

from bot.decide.fold import unaccent

P = TypeVar("P")

_TOKEN = re.compile(r"[^\W_]+")
_SENTENCE_END = re.compile(r"[.!?][\"')\]]*\s")
_CLAUSE_END = re.compile(r"[:;|]|\s-\s")


def words(items: Iterable[str]) -> frozenset[str]:
    """A set of folded single words (stop-word lists and the like)."""
    return frozenset(w for item in items for w in unaccent(item).casefold().split())


ABBREVIATIONS = words(
    [
        "mr mrs ms dr gen col lt capt cpt sgt maj cdr prof st mt no vs etc jr sr inc corp co ltd "
        "pres sen rep gov min mme mlle mm me cf dept art al"
    ]
)


def folded_words(text: str) -> set[str]:
    """The distinct folded words of a text, as `Tokens` splits and folds them."""
    return {w.casefold() for w in _TOKEN.findall(unaccent(text))}


class Tokens:
    """The words of one text, with where each sentence and clause starts.

    `low` holds the folded words, `surf` the words as written (accents stripped, case
    kept), `sent`/`clause` the sentence and clause index of each word, `first` whether the
    word opens a sentence, `offs` its offset in `plain` (the unaccented text).
    """

    __slots__ = ("clause", "first", "low", "offs", "plain", "sent", "surf")

    def __init__(self, text: str) -> None:
        plain = self.plain = unaccent(text)
        self.surf: list[str] = []
        self.low: list[str] = []
        self.sent: list[int] = []
        self.clause: list[int] = []
        self.first: list[bool] = []
        self.offs: list[int] = []
        sentence = clause = last_end = 0
        for m in _TOKEN.finditer(plain):
            word, start = m.group(), m.start()
            opens = not self.surf
            if self.surf and start > last_end and (start - last_end > 1 or plain[last_end] != " "):
                if _SENTENCE_END.search(plain, last_end, start):
                    prev = self.low[-1]
                    if (
                        prev not in ABBREVIATIONS
                        and not (len(prev) == 1 and prev.isalpha())
                        and (word[0].isupper() or not word[0].isalpha())
                    ):
                        sentence += 1
                        opens = True
                if opens or _CLAUSE_END.search(plain, last_end, start):
                    clause += 1
            self.surf.append(word)
            self.low.append(word.casefold())
            self.sent.append(sentence)
            self.clause.append(clause)
            self.first.append(opens)
            self.offs.append(start)
            last_end = m.end()

    def __len__(self) -> int:
        return len(self.low)

    def joined(self) -> str:
        """Folded words joined by single spaces: the text negative-context regexes see."""
        return " ".join(self.low)


class _Node(Generic[P]):
    __slots__ = ("anyword", "ends", "exact", "prefix")

    def __init__(self) -> None:
        self.exact: dict[str, _Node[P]] = {}
        self.prefix: dict[str, list[tuple[str, _Node[P]]]] = {}
        self.anyword: _Node[P] | None = None
        self.ends: list[P] = []


_GROUP = re.compile(r"\(([^()\[\]]*)\)|\[([^()\[\]]*)\]|([^\s()\[\]]+)|(\S)")


def expand(pattern: str) -> list[list[str]]:
    """Every word sequence a pattern stands for; each word may still end in `*` or be `?`.

    `(a b|c)` is one of the alternatives (each may be several words), `[a b]` is optional.
    """
    if re.search(r"[)\]]\?|\w\?|\?\w", pattern):
        raise ValueError(
            f"pattern {pattern!r}: '?' is a whole word (any one word); use [a] for optional"
        )
    slots: list[list[list[str]]] = []
    for choice, optional, word, stray in _GROUP.findall(
        pattern.replace("-", " ").replace("'", " ")
    ):
        if stray:
            raise ValueError(f"pattern {pattern!r}: unbalanced {stray!r}")
        if word:
            slots.append([word.casefold().split()])
        else:
            alternatives = [alt.casefold().split() for alt in (choice or optional).split("|")]
            if optional:
                alternatives.append([])
            if any(not alt for alt in alternatives[: len(alternatives) - bool(optional)]):
                raise ValueError(f"pattern {pattern!r}: empty alternative")
            slots.append(alternatives)
    sequences = []
    for combo in itertools.product(*slots):
        words = [unaccent(w) for part in combo for w in part]
        if words:
            sequences.append(words)
    return sequences


class PhraseGate:
    """A quick, exact-where-it-says-no test: could any of the patterns occur in a text?

    A pattern can occur only where all of its whole words (and a word for each of its
    stems) are among the text's words; `could_occur` checks that on the set of the text's
    folded words, which costs one regex pass instead of a tokenised scan.
    """

    def __init__(self, patterns: Iterable[str]) -> None:
        self._by_word: dict[str, list[tuple[frozenset[str], tuple[str, ...]]]] = {}
        self._by_stem: dict[str, list[tuple[frozenset[str], tuple[str, ...]]]] = {}
        for pattern in patterns:
            for sequence in expand(pattern):
                exact = frozenset(w for w in sequence if w != "?" and not w.endswith("*"))
                stems = tuple(w[:-1] for w in sequence if w.endswith("*"))
                need = (exact, stems)
                if exact:
                    self._by_word.setdefault(max(sorted(exact), key=len), []).append(need)
                else:
                    self._by_stem.setdefault(stems[0][:3], []).append(need)

    def could_occur(self, words: set[str]) -> bool:
        for word in words:
            for exact, stems in self._by_word.get(word, ()):
                if exact <= words and all(_has_stem(words, stem) for stem in stems):
                    return True
            for _exact, stems in self._by_stem.get(word[:3], ()):
                if all(_has_stem(words, stem) for stem in stems):
                    return True
        return False


def _has_stem(words: set[str], stem: str) -> bool:
    return any(w.startswith(stem) for w in words)


class PhraseTrie(Generic[P]):
    """Longest-first, non-overlapping phrase matching over folded words."""

    def __init__(self) -> None:
        self._root: _Node[P] = _Node()
        self._first: dict[str, tuple[tuple[_Node[P], int], ...]] = {}

    def add(self, pattern: str, payload: P) -> None:
        self._first.clear()
        sequences = expand(pattern)
        if not sequences:
            raise ValueError(f"empty pattern {pattern!r}")
        for words in sequences:
            if words[0] == "?":
                raise ValueError(f"pattern {pattern!r} starts with '?'")
            node = self._root
            for word in words:
                node = self._step(node, word, pattern)
            if payload not in node.ends:
                node.ends.append(payload)

    @staticmethod
    def _step(node: _Node[P], word: str, pattern: str) -> _Node[P]:
        if word == "?":
            if node.anyword is None:
                node.anyword = _Node()
            return node.anyword
        if word.endswith("*"):
            stem = word[:-1]
            if len(stem) < 3 or not _TOKEN.fullmatch(stem):
                raise ValueError(f"pattern {pattern!r}: a stem needs 3+ letters: {word!r}")
            bucket = node.prefix.setdefault(stem[:3], [])
            for known, child in bucket:
                if known == stem:
                    return child
            child = _Node[P]()
            bucket.append((stem, child))
            return child
        if not _TOKEN.fullmatch(word):
            raise ValueError(f"pattern {pattern!r}: {word!r} is not a word")
        return node.exact.setdefault(word, _Node())

    def _first_steps(self, word: str) -> tuple[tuple[_Node[P], int], ...]:
        """Nodes one word away from the root (with 1 for a whole-word step), memoised."""
        steps = self._first.get(word)
        if steps is None:
            found: list[tuple[_Node[P], int]] = []
            child = self._root.exact.get(word)
            if child is not None:
                found.append((child, 1))
            for stem, kid in self._root.prefix.get(word[:3], ()):
                if word.startswith(stem):
                    found.append((kid, 0))
            if len(self._first) > 200_000:
                self._first.clear()
            steps = self._first[word] = tuple(found)
        return steps

    def _longest(
        self, low: Sequence[str], i: int, steps: tuple[tuple[_Node[P], int], ...]
    ) -> tuple[int, int, list[P]]:
        """The longest phrase at `i` (on a tie, the one with more whole words): its end, the
        index of its first `?` word (or its end), its payloads."""
        best_end, best_exact, best_any, best = i, -1, i, []
        stack = [(node, i + 1, exact, -1) for node, exact in steps]
        n = len(low)
        while stack:
            node, j, exact, first_any = stack.pop()
            if node.ends and (j > best_end or (j == best_end and exact > best_exact)):
                best_end, best_exact, best = j, exact, node.ends
                best_any = first_any if first_any >= 0 else j
            if j == n:
                continue
            word = low[j]
            child = node.exact.get(word)
            if child is not None:
                stack.append((child, j + 1, exact + 1, first_any))
            if node.prefix:
                for stem, kid in node.prefix.get(word[:3], ()):
                    if word.startswith(stem):
                        stack.append((kid, j + 1, exact, first_any))
            if node.anyword is not None:
                stack.append((node.anyword, j + 1, exact, first_any if first_any >= 0 else j))
        return best_end, best_any, best

    def scan(self, low: Sequence[str]) -> list[tuple[P, int, int]]:
        """(payload, start, end) for every phrase found; word indexes, end exclusive. Phrases do
        not overlap, except that words matched by `?` are scanned again."""
        hits: list[tuple[P, int, int]] = []
        first = self._first_steps
        i, n = 0, len(low)
        while i < n:
            steps = first(low[i])
            if not steps:
                i += 1
                continue
            end, resume, payloads = self._longest(low, i, steps)
            if end == i:
                i += 1
                continue
            hits.extend((p, i, end) for p in payloads)
            i = resume  # words a `?` stood for are still free to match something else
        return hits


# --- the concept lexicon -------------------------------------------------------------------

KIND_WEIGHTS = {
    "country": 1.0,
    "capital": 1.5,
    "bloc": 1.5,
    "place": 3.0,
    "person": 3.0,
    "org": 2.5,
    "event": 2.0,
    "topic": 1.5,
    "generic": 0.5,
    "demonym": 0.0,
    "number": 1.5,
    "time": 0.5,
}
ACTOR_KINDS = frozenset({"country", "capital", "bloc", "person", "org"})


@dataclass(frozen=True, slots=True)
class Concept:
    id: str
    kind: str
    weight: float
    category: str  # "" or one of sec pol dip eco hum jus
    implies: tuple[str, ...]  # concept ids also present whenever this one is
    members: tuple[str, ...]  # for a bloc: the countries it speaks for
    family: str  # events telling the same kind of thing share a family ("violence")


@dataclass(frozen=True, slots=True)
class Lexicon:
    concepts: Mapping[str, Concept]
    tries: Mapping[str, PhraseTrie[str]]  # by language ("en", "fr", "*" for any other)
    stopwords: frozenset[str]

    def trie(self, language: str) -> PhraseTrie[str]:
        return self.tries.get(language[:2].casefold(), self.tries["*"])

    def tag(self, low: Sequence[str], language: str) -> list[tuple[str, int, int]]:
        """Concept hits (id, start, end) in folded words; implied concepts are not added."""
        return self.trie(language).scan(low)


def _strings(where: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{where}: must be a list of strings")
    return value


def build_lexicon(raw: Mapping[str, Any]) -> Lexicon:
    """Compile the parsed TOML of a lexicon file; errors name the concept and the key."""
    table = raw.get("concepts")
    if not isinstance(table, dict):
        raise ValueError("concepts: missing table")
    concepts: dict[str, Concept] = {}
    forms: dict[str, list[tuple[str, str]]] = {"en": [], "fr": [], "any": []}
    for cid, spec in table.items():
        if not isinstance(spec, dict):
            raise ValueError(f"concepts.{cid}: must be a table")
        kind = spec.get("k", "topic")
        if kind not in KIND_WEIGHTS:
            raise ValueError(f"concepts.{cid}.k: unknown kind {kind!r}")
        concepts[cid] = Concept(
            id=cid,
            kind=kind,
            weight=float(spec.get("w", KIND_WEIGHTS[kind])),
            category=str(spec.get("c", "")),
            implies=tuple(_strings(f"concepts.{cid}.up", spec.get("up", []))),
            members=tuple(_strings(f"concepts.{cid}.members", spec.get("members", []))),
            family=str(spec.get("fam", "")),
        )
        for lang in ("en", "fr", "any"):
            for form in _strings(f"concepts.{cid}.{lang}", spec.get(lang, [])):
                forms[lang].append((form, cid))
    for concept in concepts.values():
        for other in (*concept.implies, *concept.members):
            if other not in concepts:
                raise ValueError(f"concepts.{concept.id}: unknown concept {other!r}")
    tries: dict[str, PhraseTrie[str]] = {}
    for lang, langs in (("en", ("en", "any")), ("fr", ("fr", "any")), ("*", ("en", "fr", "any"))):
        trie = PhraseTrie[str]()
        for source in langs:
            for form, cid in forms[source]:
                try:
                    trie.add(form, cid)
                except ValueError as exc:
                    raise ValueError(f"concepts.{cid}: {exc}") from None
        tries[lang] = trie
    stop = frozenset(_strings("stopwords", raw.get("stopwords", [])))
    return Lexicon(concepts=concepts, tries=tries, stopwords=stop)


def read_default(name: str) -> dict[str, Any]:
    """Parse a packaged TOML file from `bot/decide/`."""
    text = resources.files("bot.decide").joinpath(name).read_text(encoding="utf-8")
    return tomllib.loads(text)


@cache
def default_lexicon() -> Lexicon:
    """The packaged lexicon, compiled on first use."""
    return build_lexicon(read_default("lexicon.toml"))
