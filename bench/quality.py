"""Decision quality on hand-labelled items: match -> fingerprint -> judge, as the pipeline runs it.

    python bench/quality.py [ITEMS.json ...]

Without arguments it scores ../shared/data/labelled_items.json (the development set) and
tests/data/extra_items.json (fresh items written for this check: different events, same
kinds; a stand-in for the held-out set). Items are decided oldest first; a tiny in-memory
inverted index stands in for the ItemKey table with the pipeline's candidate rules (keys
shared, published within 21 days, the 64 sharing most keys). Prints precision and recall per
label, the quality bar, and every miss.
"""

from __future__ import annotations

import html
import json
import re
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path

from bot.dedup import Candidate, Fingerprint, SeedPrint, fingerprint, index_keys, judge, seed_print
from bot.match import Matcher, compile_rules, load_rules
from bot.seeds import load_seeds

ROOT = Path(__file__).resolve().parents[1]
LABELLED = ROOT.parent / "shared" / "data" / "labelled_items.json"
EXTRA = ROOT / "tests" / "data" / "extra_items.json"
WINDOW = timedelta(days=21)
MAX_CANDIDATES = 64
EXPECTED = {
    "seed_rewrite": "seed",
    "new_development": "new",
    "syndicated_duplicate": "duplicate",
    "irrelevant": "irrelevant",
    "tricky_negative": "irrelevant",
}
_TAG = re.compile(r"<[^>]+>")


def plain(markup: str) -> str:
    """What the parser hands the pipeline: tags dropped, entities decoded, spaces folded."""
    return " ".join(html.unescape(_TAG.sub(" ", markup)).split())


@dataclass(frozen=True)
class Labelled:
    id: str
    lang: str
    title: str
    text: str
    published: datetime
    kind: str
    duplicate_of: str | None


def load_items(path: Path) -> list[Labelled]:
    items = []
    for raw in json.loads(path.read_text(encoding="utf-8")):
        labels = raw["labels"]
        items.append(
            Labelled(
                id=raw["id"],
                lang=raw["lang"],
                title=plain(raw["title"]),
                text=plain(raw["summary"]),
                published=parsedate_to_datetime(raw["published"]).astimezone(UTC),
                kind=labels["kind"],
                duplicate_of=labels.get("duplicate_of"),
            )
        )
    return sorted(items, key=lambda it: it.published)


@dataclass
class MemoryIndex:
    """The ItemKey table in memory: key -> [(item_id, story_id, published)]."""

    postings: dict[str, list[tuple[int, int, datetime]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    prints: dict[int, Fingerprint] = field(default_factory=dict)
    stored: int = 0

    def add(self, item_id: int, story_id: int, published: datetime, fp: Fingerprint) -> None:
        self.prints[item_id] = Fingerprint.from_json(fp.to_json())  # as the database returns it
        for key in index_keys(fp):
            self.postings[key].append((item_id, story_id, published))
        self.stored += 1

    def candidates(self, fp: Fingerprint, published: datetime) -> list[Candidate]:
        shared: Counter[tuple[int, int, datetime]] = Counter()
        for key in index_keys(fp):
            for row in self.postings.get(key, ()):
                if abs(row[2] - published) <= WINDOW:
                    shared[row] += 1
        top = sorted(shared.items(), key=lambda kv: (-kv[1], kv[0][0]))[:MAX_CANDIDATES]
        return [
            Candidate(story_id=s, item_id=i, fingerprint=self.prints[i], published=p)
            for (i, s, p), _n in top
        ]


@dataclass(frozen=True)
class Outcome:
    item: Labelled
    decision: str
    story_id: int | None
    expected_story: int | None
    reasons: tuple[str, ...]

    @property
    def expected(self) -> str:
        return EXPECTED[self.item.kind]

    @property
    def correct(self) -> bool:
        if self.decision != self.expected:
            return False
        return self.decision != "duplicate" or self.story_id == self.expected_story


def run(items: Sequence[Labelled], seeds: Sequence[SeedPrint], matcher: Matcher) -> list[Outcome]:
    index = MemoryIndex()
    story_of_item: dict[str, int] = {}
    outcomes = []
    next_story = 1
    for n, it in enumerate(items, start=1):
        m = matcher.match(it.title, it.text, it.lang)
        decision, story, reasons = "irrelevant", None, m.reasons
        if m.relevant:
            fp = fingerprint(it.title, it.text, it.lang)
            verdict = judge(fp, seeds, index.candidates(fp, it.published))
            decision, story, reasons = (
                verdict.kind,
                verdict.story_id,
                (*m.reasons, *verdict.reasons),
            )
            if decision == "new":
                story, next_story = next_story, next_story + 1
            if story is not None:
                index.add(n, story, it.published, fp)
                story_of_item[it.id] = story
        expected_story = story_of_item.get(it.duplicate_of) if it.duplicate_of else None
        outcomes.append(Outcome(it, decision, story, expected_story, reasons))
    return outcomes


def report(name: str, outcomes: Sequence[Outcome]) -> bool:
    print(f"\n## {name}: {len(outcomes)} items\n")
    print("| label | lang | items | right | recall | precision of decision |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    ok = True
    for kind, decision in EXPECTED.items():
        for lang in ("en", "fr", "all"):
            group = [o for o in outcomes if o.item.kind == kind and lang in ("all", o.item.lang)]
            if not group:
                continue
            right = sum(o.correct for o in group)
            decided = [o for o in outcomes if o.decision == decision]
            precision = sum(o.correct for o in decided) / len(decided) if decided else 1.0
            print(
                f"| {kind} | {lang} | {len(group)} | {right} | {right / len(group):.0%} | "
                f"{precision:.0%} ({decision}) |"
            )
    print()
    bars = [
        (
            "no irrelevant/tricky item becomes a story",
            all(o.decision == "irrelevant" for o in outcomes if o.expected == "irrelevant"),
        ),
        *[
            (
                f">= 95% new_development -> new ({lang})",
                _rate(outcomes, "new_development", lang) >= 0.95,
            )
            for lang in ("en", "fr")
        ],
        *[
            (f">= 95% seed_rewrite -> seed ({lang})", _rate(outcomes, "seed_rewrite", lang) >= 0.95)
            for lang in ("en", "fr")
        ],
        (
            ">= 90% syndicated_duplicate -> duplicate of the right story",
            _rate(outcomes, "syndicated_duplicate", "all") >= 0.90,
        ),
    ]
    for label, passed in bars:
        ok &= passed
        print(f"- [{'x' if passed else ' '}] {label}")
    misses = [o for o in outcomes if not o.correct]
    print(f"\nmisses: {len(misses)}")
    for o in misses:
        story = (
            f" story {o.story_id} (want {o.expected_story})" if o.decision == "duplicate" else ""
        )
        print(f"- {o.item.id} [{o.item.kind}] -> {o.decision}{story}: {o.item.title[:70]}")
        print(f"    {'; '.join(o.reasons)[:200]}")
    return ok


def _rate(outcomes: Iterable[Outcome], kind: str, lang: str) -> float:
    group = [o for o in outcomes if o.item.kind == kind and lang in ("all", o.item.lang)]
    return sum(o.correct for o in group) / len(group) if group else 1.0


def main(argv: Sequence[str]) -> int:
    paths = [Path(p) for p in argv] or [LABELLED, EXTRA]
    matcher = compile_rules(load_rules(None))
    seeds = [seed_print(s) for s in load_seeds(ROOT / "seeds")]
    ok = True
    for path in paths:
        ok &= report(path.name, run(load_items(path), seeds, matcher))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
