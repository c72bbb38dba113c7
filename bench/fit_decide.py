"""Fit the decision core's weights (bot/decide/policy.py) on labelled items, and score them
on a set held out of the fit.

    python bench/fit_decide.py [--fit FILE ...] [--check FILE ...]

Defaults: fit on ../shared/data/labelled_items.json, tests/data/extra_items.json and
tests/data/more_items.json (synthetic) and ../shared/data/real_dev_items.json (real
leave-one-file-out: for each candidate, fit on all files but one and count the errors on the
one left out (printed); the fewest errors win. Prints the three fitted models, to paste into
policy.py, then a table per file: for each question, how many answers the fitted model gets
right. `--check FILE` adds files that are scored and never fitted. Questions are asked as
the pipeline asks them: relevance of items in which the lexicon found a watched term, seed of
relevant items, same story of a relevant item against each earlier story (the labelled stories) that
was published within the window.
"""

from __future__ import annotations

import argparse
import html
import json
import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from pathlib import Path

import numpy as np

from bot.decide import evidence
from bot.decide.dedup import fingerprint, seed_print
from bot.decide.embed import load_embedder
from bot.decide.match import compile_rules, load_rules
from bot.decide.policy import (
    DEFAULT,
    RELEVANCE_FEATURES,
    SEED_FEATURES,
    STORY_FEATURES,
    Logistic,
)
from bot.seeds import load_seeds

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
FIT = [
    SHARED / "labelled_items.json",
    ROOT / "tests" / "data" / "extra_items.json",
    ROOT / "tests" / "data" / "more_items.json",
    SHARED / "real_dev_items.json",
]
RELEVANT = ("new_development", "syndicated_duplicate", "seed_rewrite")
RIDGES = (0.0003, 0.001, 0.003, 0.01, 0.03, 0.1)  # the sets are small and often separable
QUESTIONS = {"relevance": RELEVANCE_FEATURES, "seed": SEED_FEATURES, "story": STORY_FEATURES}
_TAG = re.compile(r"<[^>]+>")


@dataclass
class Item:
    id: str
    lang: str
    title: str
    text: str
    published: datetime
    kind: str
    story: str  # the id of the development it reports (its own id for a new one)


def load(path: Path) -> list[Item]:
    def plain(markup: str) -> str:
        return " ".join(html.unescape(_TAG.sub(" ", markup)).split())

    items = [
        Item(
            id=r["id"],
            lang=r["lang"],
            title=plain(r["title"]),
            text=plain(r["summary"]),
            published=parsedate_to_datetime(r["published"]),
            kind=r["labels"]["kind"],
            story=r["labels"].get("duplicate_of") or r["id"],
        )
        for r in json.loads(path.read_text(encoding="utf-8"))
    ]
    return sorted(items, key=lambda i: i.published)


Samples = tuple[list[tuple[float, ...]], list[int]]


def samples(items: Sequence[Item]) -> dict[str, Samples]:
    embedder = load_embedder()
    matcher = compile_rules(load_rules({}))
    policy = DEFAULT
    seeds = [evidence.seed_vectors(s, seed_print(s), embedder) for s in load_seeds(ROOT / "seeds")]
    examples_file = tomllib.loads((ROOT / "bot/decide/examples.toml").read_text("utf-8"))
    examples = evidence.embed_examples(
        examples_file["on_topic"], examples_file["off_topic"], embedder
    )
    out: dict[str, Samples] = {"relevance": ([], []), "seed": ([], []), "story": ([], [])}
    vectors = embedder.encode(
        [evidence.embed_text(i.title, i.text, policy.lead_chars) for i in items]
    )
    titles = embedder.encode([evidence.embed_title(i.title, policy.lead_chars) for i in items])
    probes = [
        evidence.Probe(fingerprint(i.title, i.text, i.lang), vectors[n], titles[n])
        for n, i in enumerate(items)
    ]
    for n, item in enumerate(items):
        match = matcher.match(item.title, item.text, item.lang)
        relevant = item.kind in RELEVANT
        if match.mentions:
            margin = evidence.example_margin(vectors[n], examples)
            out["relevance"][0].append(evidence.relevance_features(match, margin))
            out["relevance"][1].append(int(relevant))
        if not relevant:
            continue
        out["seed"][0].append(max(evidence.seed_features(probes[n], s) for s in seeds))
        out["seed"][1].append(int(item.kind == "seed_rewrite"))
        if item.kind == "seed_rewrite":
            continue
        stories: dict[str, list[evidence.StoredItem]] = {}
        for m in range(n):
            other = items[m]
            gap = (item.published - other.published).total_seconds() / 86_400
            if other.kind in ("new_development", "syndicated_duplicate") and gap <= 21:
                stored = evidence.StoredItem(
                    0, m, probes[m].fingerprint, vectors[m], other.published
                )
                stories.setdefault(other.story, []).append(stored)
        for story, members in stories.items():
            out["story"][0].append(
                evidence.story_features(probes[n], members, item.published, policy.window_days)
            )
            out["story"][1].append(int(story == item.story))
    return out


def fit(
    x: Sequence[tuple[float, ...]], y: Sequence[int], names: tuple[str, ...], ridge_l2: float
) -> Logistic:
    """L2-regularised logistic regression by Newton's method (bias not penalised)."""
    data = np.c_[np.asarray(x, dtype=float), np.ones(len(x))]
    target = np.asarray(y, dtype=float)
    w = np.zeros(data.shape[1])
    ridge = ridge_l2 * np.eye(len(w))
    ridge[-1, -1] = 0.0
    for _ in range(100):
        p = 1 / (1 + np.exp(-data @ w))
        grad = data.T @ (p - target) / len(target) + ridge @ w
        hess = (data.T * (p * (1 - p))) @ data / len(target) + ridge + 1e-9 * np.eye(len(w))
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-9:
            break
    return Logistic(names, tuple(round(float(v), 3) for v in w[:-1]), round(float(w[-1]), 3))


def cut(model: Logistic) -> float:
    """Where the pipeline says yes: above 0, or above the cost-based cut for relevance."""
    return DEFAULT.relevance_cut if model.names == RELEVANCE_FEATURES else 0.0


def errors(model: Logistic, s: Samples) -> int:
    return sum((model.score(f) > cut(model)) != bool(t) for f, t in zip(*s, strict=True))


def merge(parts: Sequence[Samples]) -> Samples:
    x: list[tuple[float, ...]] = []
    y: list[int] = []
    for px, py in parts:
        x.extend(px)
        y.extend(py)
    return x, y


def choose_ridge(
    per_file: dict[Path, dict[str, Samples]], fitted: Sequence[Path], question: str
) -> float:
    """The ridge with the fewest leave-one-file-out errors for one question."""
    names = QUESTIONS[question]
    print(f"\n{question}: errors on the file left out\n")
    print("| ridge | " + " | ".join(p.name for p in fitted) + " | total |")
    print("| ---: |" + " ---: |" * (len(fitted) + 1))
    best: tuple[int, float] | None = None
    for ridge in RIDGES:
        counts = []
        for out in fitted:
            train = merge([per_file[p][question] for p in fitted if p != out])
            counts.append(errors(fit(*train, names, ridge), per_file[out][question]))
        print(f"| {ridge:g} | " + " | ".join(map(str, counts)) + f" | {sum(counts)} |")
        if best is None or sum(counts) <= best[0]:  # a tie goes to the stronger ridge
            best = (sum(counts), ridge)
    assert best is not None
    return best[1]


def accuracy(model: Logistic, s: Samples) -> str:
    x, y = s
    if not y:
        return "-"
    c = cut(model)
    right = sum((model.score(f) > c) == bool(t) for f, t in zip(x, y, strict=True))
    wrong_pos = sum(model.score(f) > c and not t for f, t in zip(x, y, strict=True))
    wrong_neg = sum(model.score(f) <= c and t for f, t in zip(x, y, strict=True))
    return f"{right}/{len(y)} (false yes {wrong_pos}, false no {wrong_neg})"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fit", nargs="*", type=Path, default=FIT)
    parser.add_argument("--check", nargs="*", type=Path, default=[])
    args = parser.parse_args(argv)
    per_file = {p: samples(load(p)) for p in [*args.fit, *args.check]}
    ridges = {
        q: choose_ridge(per_file, args.fit, q) if len(args.fit) > 1 else RIDGES[2]
        for q in QUESTIONS
    }
    models = {
        q: fit(*merge([per_file[p][q] for p in args.fit]), names, ridges[q])
        for q, names in QUESTIONS.items()
    }
    print("\n# fitted on: " + ", ".join(p.name for p in args.fit))
    for key, model in models.items():
        print(f"{key} (ridge {ridges[key]:g}): weights={model.weights}, bias={model.bias}")
    print("\n| file | role | relevance | seed | same story |\n| --- | --- | --- | --- | --- |")
    for path, s in per_file.items():
        role = "fit" if path in args.fit else "held out"
        cells = " | ".join(accuracy(models[k], s[k]) for k in ("relevance", "seed", "story"))
        print(f"| {path.name} | {role} | {cells} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
