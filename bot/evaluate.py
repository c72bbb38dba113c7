"""`python -m bot evaluate FILE.json [--json]`: the real decision path over labelled items.

The file is a JSON array in the schema of `../shared/data/labelled_items.json` (id, feed, lang,
title, summary as HTML, link, published as RFC 822, labels.kind, labels.duplicate_of). Each
item becomes an entry the way the parser makes one (markup to text, canonical link), the
entries are decided oldest first by the pipeline's own decide-and-store step on a fresh
temporary SQLite database, and the verdicts are scored against the labels:

    seed_rewrite → seed     new_development → new     syndicated_duplicate → duplicate,
    in the story of the item it duplicates            irrelevant, tricky_negative → irrelevant

It prints precision and recall per label, the alert precision (alerts that were right / alerts
sent), the confusion table, and every misjudged item with the reasons the core gave.
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from bot.errors import SahelWatchError
from bot.feeds.normalise import canonical_url
from bot.feeds.parse import headline
from bot.records import Entry, Verdict
from bot.settings import Settings

EXPECTED = {
    "seed_rewrite": "seed",
    "new_development": "new",
    "syndicated_duplicate": "duplicate",
    "irrelevant": "irrelevant",
    "tricky_negative": "irrelevant",
}
DECISIONS = ("new", "duplicate", "seed", "irrelevant", "stale", "seen")


class LabelledFileError(SahelWatchError):
    """A labelled file that cannot be read or does not follow the schema."""


@dataclass(frozen=True, slots=True)
class Labelled:
    id: str
    kind: str
    duplicate_of: str | None
    entry: Entry


@dataclass(frozen=True, slots=True)
class Judged:
    item: Labelled
    verdict: Verdict
    right: bool


def load_labelled(path: Path) -> list[Labelled]:
    """The file's items as entries, oldest first; a clear error naming the item otherwise."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LabelledFileError(f"{path}: {exc}") from None
    if not isinstance(raw, list):
        raise LabelledFileError(f"{path}: expected a JSON array of items")
    items = []
    for n, record in enumerate(raw):
        try:
            items.append(_labelled(record))
        except (KeyError, TypeError, ValueError) as exc:
            raise LabelledFileError(f"{path}: item {n}: {type(exc).__name__}: {exc}") from None
    items.sort(key=lambda i: i.entry.published or datetime.min.replace(tzinfo=UTC))
    return items


def _labelled(record: Mapping[str, Any]) -> Labelled:
    labels = record["labels"]
    kind = str(labels["kind"])
    if kind not in EXPECTED:
        raise ValueError(f"unknown kind {kind!r}")
    published = parsedate_to_datetime(str(record["published"])).astimezone(UTC)
    feed = str(record.get("feed") or "labelled")
    title, outlet, text = headline(
        {"title": str(record["title"]), "summary": str(record.get("summary", ""))}
    )
    entry = Entry(
        feed_url=f"https://{feed}.evaluate.invalid/feed",
        feed_name=feed,
        guid=str(record["id"]),
        title=title,
        text=text,
        link=canonical_url(str(record.get("link", ""))),
        published=published,
        language=str(record.get("lang") or "en"),
        outlet=outlet,
    )
    dup = labels.get("duplicate_of")
    return Labelled(str(record["id"]), kind, str(dup) if dup else None, entry)


def judge(items: Sequence[Labelled], verdicts: Sequence[Verdict]) -> list[Judged]:
    """Each verdict against its label; a duplicate is right only in its original's story."""
    story_of = {item.id: v.story_id for item, v in zip(items, verdicts, strict=True)}
    out = []
    for item, verdict in zip(items, verdicts, strict=True):
        right = verdict.decision == EXPECTED[item.kind]
        if right and item.kind == "syndicated_duplicate":
            original = story_of.get(item.duplicate_of or "")
            right = original is not None and verdict.story_id == original
        out.append(Judged(item, verdict, right))
    return out


def summary(judged: Sequence[Judged]) -> dict[str, Any]:
    """Per label precision and recall, alert precision, confusion table, misjudged items."""
    confusion: Counter[tuple[str, str]] = Counter()
    for j in judged:
        confusion[(j.item.kind, j.verdict.decision)] += 1
    labels: dict[str, dict[str, Any]] = {}
    for kind, decision in EXPECTED.items():
        of_kind = [j for j in judged if j.item.kind == kind]
        decided = [j for j in judged if j.verdict.decision == decision]
        right_kind = sum(j.right for j in of_kind)
        right_decided = sum(j.right for j in decided if EXPECTED[j.item.kind] == decision)
        labels[kind] = {
            "items": len(of_kind),
            "right": right_kind,
            "recall": right_kind / len(of_kind) if of_kind else None,
            "precision": right_decided / len(decided) if decided else None,
        }
    alerts = [j for j in judged if j.verdict.decision == "new"]
    right_alerts = sum(j.item.kind == "new_development" for j in alerts)
    return {
        "items": len(judged),
        "alerts": len(alerts),
        "right_alerts": right_alerts,
        "alert_precision": right_alerts / len(alerts) if alerts else None,
        "false_alerts_off_topic": sum(
            j.item.kind in ("irrelevant", "tricky_negative") for j in alerts
        ),
        "labels": labels,
        "confusion": {f"{k}->{d}": n for (k, d), n in sorted(confusion.items())},
        "misjudged": [
            {
                "id": j.item.id,
                "label": j.item.kind,
                "decision": j.verdict.decision,
                "story": j.verdict.story_id,
                "title": j.item.entry.title[:120],
                "reasons": list(j.verdict.reasons),
            }
            for j in judged
            if not j.right
        ],
    }


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def render(name: str, result: Mapping[str, Any]) -> str:
    lines = [f"## {name}: {result['items']} items", ""]
    lines.append(
        f"alerts sent {result['alerts']}, right {result['right_alerts']} "
        f"(alert precision {_pct(result['alert_precision'])}); "
        f"off-topic items alerted: {result['false_alerts_off_topic']}"
    )
    lines += [
        "",
        "| label | items | right | recall | precision |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for kind, row in result["labels"].items():
        lines.append(
            f"| {kind} | {row['items']} | {row['right']} | {_pct(row['recall'])} "
            f"| {_pct(row['precision'])} |"
        )
    lines += ["", "| label \\ decision | " + " | ".join(DECISIONS) + " |"]
    lines.append("| --- |" + " ---: |" * len(DECISIONS))
    for kind in EXPECTED:
        cells = [str(result["confusion"].get(f"{kind}->{d}", 0)) for d in DECISIONS]
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    lines += ["", f"misjudged: {len(result['misjudged'])}"]
    for miss in result["misjudged"]:
        lines.append(f"- {miss['id']} [{miss['label']}] -> {miss['decision']}: {miss['title']}")
        for reason in miss["reasons"][-3:]:
            lines.append(f"    {reason}")
    return "\n".join(lines)


def evaluate(path: Path, settings: Settings) -> dict[str, Any]:
    """Decide the file's items through the pipeline on a fresh temporary database."""
    from bot.pipeline import decide_offline  # the decision half loads only when asked

    items = load_labelled(path)
    with tempfile.TemporaryDirectory(prefix="sahel-evaluate-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'evaluate.db'}"
        verdicts = decide_offline(settings, url, [i.entry for i in items])
    return summary(judge(items, verdicts))
