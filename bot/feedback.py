"""`python -m bot feedback export FILE.json`: readers' "Not news?" answers as evaluation data.

The file is a JSON array in the labelled-items schema that `python -m bot evaluate` reads
(`../shared/data/labelled_items.json`: id, feed, lang, title, summary as HTML, link,
published as RFC 822, labels.relevant, labels.kind, labels.duplicate_of), oldest first, so an
operator can run the decision path again over what readers disputed and see where it errs.
Each disputed story contributes its first item, labelled by its readers' answers (the most
given; a tie counts as "irrelevant", the stronger claim):

    irrelevant                         → kind irrelevant (relevant false): must not alert
    known, a first report              → kind seed_rewrite: it told readers what they knew,
                                         which is what the seed stands for (no alert)
    known, a follow-up of story S      → kind syndicated_duplicate of S's first item: the same
                                         development as S (S's item is exported too, as the
                                         new_development it was alerted as, unless readers
                                         disputed S as well)

Every record also carries `feedback` (ignored by `evaluate`): the story, the answers counted,
and why the record is there. Feed strings are escaped as HTML, as a feed would carry them.
"""

from __future__ import annotations

import argparse
import html
import json
import re
import sys
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot.settings import Settings
from bot.storage.db import open_existing
from bot.storage.models import Feed, Feedback, Item, Story

_SLUG = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True, slots=True)
class ExportResult:
    items: int
    irrelevant: int
    known: int
    context: int  # earlier stories' items exported for a "known" follow-up


def _slug(name: str) -> str:
    """A feed's name as `evaluate` uses it: a host label (it builds the feed's URL from it)."""
    return _SLUG.sub("-", name.lower()).strip("-")[:60] or "feed"


def _verdict(counts: Counter[str]) -> str:
    irrelevant, known = counts.get("irrelevant", 0), counts.get("known", 0)
    return "known" if known > irrelevant else "irrelevant"


def _first_item(session: Session, story_id: int, item_id: int | None) -> tuple[Item, str] | None:
    """The story's item the answers were about (else its first), with its feed's name."""
    query = select(Item, Feed.name).join(Feed, col(Feed.id) == col(Item.feed_id))
    if item_id is not None:
        found = session.exec(query.where(col(Item.id) == item_id)).first()
        if found is not None:
            return found[0], found[1]
    found = session.exec(
        query.where(col(Item.story_id) == story_id).order_by(col(Item.id)).limit(1)
    ).first()
    return (found[0], found[1]) if found is not None else None


def _record(item: Item, feed: str, labels: dict[str, Any], note: dict[str, Any]) -> dict[str, Any]:
    when = (item.published or item.first_seen).astimezone(UTC)
    return {
        "id": f"item-{item.id}",
        "feed": _slug(feed),
        "lang": item.language,
        "title": html.escape(item.title, quote=False),
        "summary": html.escape(item.text, quote=False),
        "link": item.link,
        "published": format_datetime(when),
        "labels": labels,
        "feedback": note,
    }


def labelled_records(engine: Engine) -> tuple[list[dict[str, Any]], ExportResult]:
    """The stored feedback as labelled items, oldest first, with what was exported."""
    with Session(engine) as session:
        answers: dict[int, Counter[str]] = {}
        items: dict[int, int | None] = {}
        for story_id, item_id, verdict in session.exec(
            select(Feedback.story_id, Feedback.item_id, Feedback.verdict).order_by(col(Feedback.id))
        ).all():
            answers.setdefault(story_id, Counter())[verdict] += 1
            items.setdefault(story_id, item_id)
        records: dict[int, dict[str, Any]] = {}  # by story
        kinds: Counter[str] = Counter()
        context: dict[int, list[int]] = {}  # an earlier story -> the follow-ups that repeat it
        for story_id, counts in sorted(answers.items()):
            story = session.get(Story, story_id)
            found = _first_item(session, story_id, items[story_id])
            if story is None or found is None:
                continue
            item, feed = found
            verdict = _verdict(counts)
            note: dict[str, Any] = {"story": story_id, "answers": dict(sorted(counts.items()))}
            if verdict == "irrelevant":
                labels: dict[str, Any] = {"relevant": False, "kind": "irrelevant"}
            elif story.follows_id is None:
                labels = {"relevant": True, "kind": "seed_rewrite"}
            else:
                labels = {"relevant": True, "kind": "syndicated_duplicate"}
                note["repeats_story"] = story.follows_id
                context.setdefault(story.follows_id, []).append(story_id)
            kinds[verdict] += 1
            records[story_id] = _record(item, feed, labels, note)
        added = 0
        for earlier, followers in context.items():
            if earlier not in records:
                found = _first_item(session, earlier, None)
                if found is None:
                    for story_id in followers:  # nothing to repeat: it told what readers knew
                        records[story_id]["labels"] = {"relevant": True, "kind": "seed_rewrite"}
                    continue
                labels = {"relevant": True, "kind": "new_development"}
                note = {"story": earlier, "answers": {}, "context_for_stories": followers}
                records[earlier] = _record(found[0], found[1], labels, note)
                added += 1
            for story_id in followers:
                if records[story_id]["labels"]["kind"] == "syndicated_duplicate":
                    records[story_id]["labels"]["duplicate_of"] = records[earlier]["id"]
    ordered = sorted(records.values(), key=lambda r: (_published(r), r["id"]))
    result = ExportResult(len(ordered), kinds["irrelevant"], kinds["known"], added)
    return ordered, result


def _published(record: dict[str, Any]) -> datetime:
    return parsedate_to_datetime(record["published"])


def export(engine: Engine, destination: str) -> ExportResult:
    """Write the labelled feedback to `destination` ("-": standard output)."""
    records, result = labelled_records(engine)
    text = json.dumps(records, ensure_ascii=False, indent=1) + "\n"
    if destination == "-":
        sys.stdout.write(text)
    else:
        path = Path(destination)
        partial = path.with_name(path.name + ".partial")
        partial.write_text(text, encoding="utf-8")
        partial.replace(path)
    return result


def cmd_export(settings: Settings, args: argparse.Namespace) -> int:
    engine = open_existing(settings.database_url)
    try:
        result = export(engine, args.file)
    finally:
        engine.dispose()
    where = "standard output" if args.file == "-" else args.file
    print(
        f"{result.items} labelled items to {where}: {result.irrelevant} stories answered "
        f"irrelevant, {result.known} already known, {result.context} earlier stories they repeat",
        file=sys.stderr if args.file == "-" else sys.stdout,
    )
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `feedback export FILE` to the top-level commands."""
    parser = commands.add_parser("feedback", help='readers\' "Not news?" answers')
    sub = parser.add_subparsers(dest="feedback_command", required=True, metavar="FEEDBACK_COMMAND")
    export_parser = sub.add_parser(
        "export",
        help="the answers as labelled items (the schema `evaluate` reads), to FILE or - for "
        "standard output",
    )
    export_parser.add_argument("file", help="the JSON file to write (replaced if it exists)")
    export_parser.set_defaults(func=cmd_export)
