"""Readers' "Not news?" answers become evaluation data: stored with the item and the chat,
exported in the labelled-items schema, and read back by `evaluate` (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot.evaluate import EXPECTED, load_labelled
from bot.feedback import export, labelled_records
from bot.records import Entry, FeedSpec
from bot.storage import alerts
from bot.storage import feeds as feed_store
from bot.storage import items as item_store
from bot.storage.models import Feedback
from tests.servers.bot_process import write_config
from tests.test_cli import sw

T0 = datetime(2025, 4, 20, 9, 0, tzinfo=UTC)
WIRE = FeedSpec("https://wire.test/feed.xml", "Wire EN", "en")
AFRIQUE = FeedSpec("https://afrique.test/rss", "Afrique & Monde", "fr")


@dataclass(frozen=True)
class Stored:
    story_id: int
    item_id: int


def entry(feed: FeedSpec, guid: str, title: str, text: str, hours: float, **kw: str) -> Entry:
    return Entry(
        feed_url=feed.url,
        feed_name=feed.name,
        guid=guid,
        title=title,
        text=text,
        link=f"https://{feed.url.split('/')[2]}/{guid}",
        published=T0 + timedelta(hours=hours),
        language=feed.language,
        **kw,
    )


def store(
    engine: Engine,
    item: Entry,
    *,
    story: int | None = None,
    follows: int | None = None,
    topics: tuple[str, ...] = (),
) -> Stored:
    """An item as the pipeline stores it: a new story (with `follows` and `topics`, and its
    deliveries to the active subscribers), or a duplicate joining `story`."""
    with Session(engine) as session:
        feed_store.sync_feeds(session, [WIRE, AFRIQUE])
        feed_id = feed_store.feed_ids(session, [item.feed_url])[item.feed_url]
        now = item.published or T0
        decision = "duplicate" if story is not None else "new"
        if story is None:
            story, _ = item_store.add_story(
                session, item, summary=item.text, alerted=True, now=now, follows=follows,
                topics=topics,
            )  # fmt: skip
        values = item_store.item_values(
            feed_id=feed_id, entry=item, title_key=item.title.lower(), decision=decision,
            reasons=(), story_id=story, fingerprint="", now=now,
        )  # fmt: skip
        item_id = item_store.insert_item(session, values)
        session.commit()
    return Stored(story, item_id)


def disputed(engine: Engine) -> dict[str, Stored]:
    """Four stories; readers dispute three of them."""
    icj = store(
        engine,
        entry(WIRE, "icj", "Mali files ICJ case against Algeria over drone",
              "Mali asked the court to rule that Algeria violated its sovereignty.", 0),
    )  # fmt: skip
    store(
        engine,
        entry(AFRIQUE, "cij", "Le Mali saisit la CIJ contre l'Algérie",
              "Bamako demande à la Cour de juger que l'Algérie a violé sa souveraineté.", 1),
        story=icj.story_id,
    )  # fmt: skip
    refusal = store(
        engine,
        entry(WIRE, "refusal", "Algeria refuses ICJ jurisdiction in Mali drone case",
              "Algeria will not consent to the court hearing Mali's case <said the ministry>.", 5),
        follows=icj.story_id,
    )  # fmt: skip
    football = store(
        engine,
        entry(AFRIQUE, "foot", "Mali & Niger: match nul en éliminatoires",
              "Les Aigles et le Mena se quittent dos à dos.", 6, outlet="Sport Sahel"),
    )  # fmt: skip
    recap = store(
        engine,
        entry(WIRE, "recap", "What we know about the drone shot down at Tin Zaouatine",
              "A look back at the night of 31 March.", 7),
    )  # fmt: skip
    for chat in (101, 102):
        assert alerts.record_feedback(engine, chat, football.story_id, "irrelevant")
    assert alerts.record_feedback(engine, 103, football.story_id, "known")
    assert alerts.record_feedback(engine, 101, refusal.story_id, "known")
    assert alerts.record_feedback(engine, 104, recap.story_id, "irrelevant")
    assert alerts.record_feedback(engine, 104, recap.story_id, "known")  # changed its mind
    return {"icj": icj, "refusal": refusal, "football": football, "recap": recap}


def test_feedback_is_stored_with_the_item_and_the_chat(engine: Engine) -> None:
    stories = disputed(engine)
    assert not alerts.record_feedback(engine, 101, stories["recap"].story_id, "boring")
    assert not alerts.record_feedback(engine, 101, 999_999, "known")  # no such story
    with Session(engine) as session:
        rows = session.exec(select(Feedback).order_by(col(Feedback.id))).all()
        stored = sorted((r.story_id, r.item_id, r.chat_id, r.verdict) for r in rows)
    football, refusal, recap = stories["football"], stories["refusal"], stories["recap"]
    assert stored == sorted(
        [
            (football.story_id, football.item_id, 101, "irrelevant"),
            (football.story_id, football.item_id, 102, "irrelevant"),
            (football.story_id, football.item_id, 103, "known"),
            (refusal.story_id, refusal.item_id, 101, "known"),
            (recap.story_id, recap.item_id, 104, "known"),  # one answer per chat: the last
        ]
    )


def test_feedback_exported_in_the_labelled_schema_is_read_back_by_evaluate(
    engine: Engine, tmp_path: Path
) -> None:
    stories = disputed(engine)
    path = tmp_path / "feedback.json"
    result = export(engine, str(path))
    assert (result.items, result.irrelevant, result.known, result.context) == (4, 1, 2, 1)
    raw = json.loads(path.read_text(encoding="utf-8"))
    assert [r["id"] for r in raw] == [
        f"item-{stories[name].item_id}" for name in ("icj", "refusal", "football", "recap")
    ]  # oldest first, as the schema's files are
    for record in raw:
        assert set(record) >= {"id", "feed", "lang", "title", "summary", "link", "published"}
        assert record["labels"]["kind"] in EXPECTED
    football = raw[2]
    assert football["title"] == "Mali &amp; Niger: match nul en éliminatoires"  # as feeds carry it
    assert football["feed"] == "afrique-monde" and football["lang"] == "fr"
    assert football["feedback"]["answers"] == {"irrelevant": 2, "known": 1}
    assert "&lt;said the ministry&gt;" in raw[1]["summary"]

    labelled = {item.id: item for item in load_labelled(path)}  # what `evaluate` reads
    icj, refusal = f"item-{stories['icj'].item_id}", f"item-{stories['refusal'].item_id}"
    kinds = {key: (item.kind, item.duplicate_of) for key, item in labelled.items()}
    assert kinds == {
        icj: ("new_development", None),  # the story the "known" follow-up repeats
        refusal: ("syndicated_duplicate", icj),
        f"item-{stories['football'].item_id}": ("irrelevant", None),
        f"item-{stories['recap'].item_id}": ("seed_rewrite", None),
    }
    football_entry = labelled[f"item-{stories['football'].item_id}"].entry
    assert football_entry.title == "Mali & Niger: match nul en éliminatoires"
    assert football_entry.published == T0 + timedelta(hours=6)
    assert labelled[refusal].entry.text.endswith("<said the ministry>.")


def test_no_feedback_exports_an_empty_file(engine: Engine, tmp_path: Path) -> None:
    records, result = labelled_records(engine)
    assert records == [] and result.items == 0
    path = tmp_path / "none.json"
    export(engine, str(path))
    assert load_labelled(path) == []


def test_cli_exports_feedback_and_evaluate_scores_it(tmp_path: Path) -> None:
    """The operator's round trip: `feedback export`, then `evaluate` on the file."""
    url = f"sqlite:///{tmp_path / 'sahel.db'}"
    from bot.storage.db import create_schema, make_engine

    engine = make_engine(url)
    create_schema(engine)
    disputed(engine)
    engine.dispose()
    config = write_config(tmp_path, feeds=[(WIRE.url, WIRE.name, "en")])
    exported = sw("feedback", "export", "answers.json", cwd=tmp_path, config=config,
                  DATABASE_URL=url)  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    assert exported.stdout.startswith("4 labelled items to answers.json: 1 stories answered")
    scored = sw("evaluate", "answers.json", "--json", cwd=tmp_path, config=config, timeout=300)
    assert scored.returncode == 0, scored.stderr
    result = json.loads(scored.stdout)
    assert result["items"] == 4
    counts = {kind: row["items"] for kind, row in result["labels"].items()}
    assert counts == {
        "seed_rewrite": 1,
        "new_development": 1,
        "syndicated_duplicate": 1,
        "irrelevant": 1,
        "tricky_negative": 0,
    }
    assert sum(result["confusion"].values()) == 4
