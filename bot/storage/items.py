"""Items and stories in the poll cycle: exact-key lookups, the dedup index, stories and their
deliveries queued.

Every function takes an open `Session` and leaves committing to the caller (the pipeline
puts each batch of entries, or each entry, in a savepoint of the cycle's transaction). Rows
go in and plain records come out; nothing here decides anything. A batch costs a bounded
number of statements whatever its size: `find_exact_many` (one query for every exact key),
`reserve_item_ids` (one) and `ItemBatch.write` (one executemany).

Whatever a feed sent can be stored, whether or not the parser cleaned it: every feed string
goes through `storable` (no NUL or other control character, no surrogate), and every value
of an indexed column (guid, link, title key, dedup index keys) through `bounded_key`, on
the way in and in lookups alike, so exact-duplicate lookups still meet.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Integer,
    Select,
    Table,
    and_,
    bindparam,
    case,
    func,
    insert,
    literal,
    select,
    text,
    tuple_,
    union_all,
)
from sqlmodel import Session

from bot.feeds.normalise import canonical_url
from bot.feeds.textsafe import storable
from bot.records import Entry
from bot.storage.db import is_postgres
from bot.storage.models import Delivery, Item, Story, Subscriber, UTCDateTime

# PostgreSQL refuses a B-tree index row over 2,704 bytes; this leaves room for a 2nd column.
MAX_KEY_BYTES = 2_000

# Taken for the duration of a cycle's decision transaction on PostgreSQL, so that two
# replicas never decide near-duplicates of each other at the same moment.
DECIDE_LOCK_KEY = 0x5A4E1_0001


# Hot statements, built once and on the tables (Core), run on the session's connection:
# building an ORM statement and running it through the ORM cost more than SQLite's work.
_ITEMS: Table = Item.__table__  # type: ignore[attr-defined]
_STORIES: Table = Story.__table__  # type: ignore[attr-defined]
_DELIVERIES: Table = Delivery.__table__  # type: ignore[attr-defined]
_SUBSCRIBERS: Table = Subscriber.__table__  # type: ignore[attr-defined]

_INSERT_ITEM = insert(_ITEMS).returning(_ITEMS.c.id)
_INSERT_STORY = insert(_STORIES).returning(_STORIES.c.id)
_INSERT_DELIVERIES = insert(_DELIVERIES).from_select(
    [
        _DELIVERIES.c[name]
        for name in (
            "story_id",
            "subscriber_id",
            "state",
            "attempts",
            "next_attempt_at",
            "created_at",
        )
    ],
    select(
        bindparam("story_id", type_=Integer),
        _SUBSCRIBERS.c.id,
        # a digest chat's alert waits for its digest (bot/storage/digests.py) from the start
        case(
            (_SUBSCRIBERS.c.delivery_mode.in_(["digest", "daily"]), literal("held")),
            else_=literal("pending"),
        ),
        literal(0),
        bindparam("now", type_=UTCDateTime()),
        bindparam("now", type_=UTCDateTime()),
    ).where(_SUBSCRIBERS.c.active.is_(True)),
)


@dataclass(frozen=True, slots=True)
class ExactHit:
    """An earlier item sharing a guid, canonical link or title with the entry."""

    item_id: int
    story_id: int | None
    decision: str
    same_feed_guid: bool
    key: str  # "guid" | "link" | "title"


def bounded_key(value: str) -> str:
    """`storable(value)`, or `sha256:` and its hex digest when longer than `MAX_KEY_BYTES`."""
    clean = storable(value)
    if len(clean) * 4 <= MAX_KEY_BYTES:  # no character takes more than 4 bytes in UTF-8
        return clean
    encoded = clean.encode("utf-8")
    if len(encoded) <= MAX_KEY_BYTES:
        return clean
    return "sha256:" + hashlib.sha256(encoded).hexdigest()


def lock_for_decisions(session: Session) -> None:
    """Serialise deciding across replicas (a no-op on SQLite, which has one writer anyway)."""
    if is_postgres(session):
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": DECIDE_LOCK_KEY})


@dataclass(frozen=True, slots=True)
class ExactKeys:
    """An entry's exact keys as stored (bounded): the guid within its feed, the canonical
    link (None when the entry has none) and the title key (None when empty)."""

    feed_id: int
    guid: str
    link: str | None
    title: str | None

    @classmethod
    def of(cls, feed_id: int, entry: Entry, title_key: str) -> ExactKeys:
        has_link = entry.link and entry.link != canonical_url(entry.feed_url)  # else no key
        return cls(
            feed_id,
            bounded_key(entry.guid),
            bounded_key(entry.link) if has_link else None,
            bounded_key(title_key) if title_key else None,
        )


@dataclass(slots=True)
class KeyHits:
    """The best earlier item for each exact key of a set of entries.

    For a link or a title, an item that belongs to a story wins, then the first stored:
    `offer` items in id order and the choice is the one `find_exact` always made.
    """

    guids: dict[tuple[int, str], ExactHit] = field(default_factory=dict)
    links: dict[str, ExactHit] = field(default_factory=dict)
    titles: dict[str, ExactHit] = field(default_factory=dict)

    def offer(self, kind: str, key: Any, hit: ExactHit) -> None:
        found: dict[Any, ExactHit] = getattr(self, kind)
        best = found.get(key)
        if best is None or (best.story_id is None and hit.story_id is not None):
            found[key] = hit

    def first(self, keys: ExactKeys, *later: KeyHits) -> ExactHit | None:
        """The hit of `keys` here or in `later` (items stored after these): a same-feed guid,
        else a link, else a title."""
        both = (self, *later)
        for hits in both:
            guid = hits.guids.get((keys.feed_id, keys.guid))
            if guid is not None:
                return guid
        for kind, key in (("links", keys.link), ("titles", keys.title)):
            if key is None:
                continue
            best: ExactHit | None = None
            for hits in both:
                hit = getattr(hits, kind).get(key)
                if hit is not None and (best is None or (best.story_id is None and hit.story_id)):
                    best = hit
            if best is not None:
                return best
        return None


_KEY_COLUMNS = (_ITEMS.c.id, _ITEMS.c.story_id, _ITEMS.c.decision, _ITEMS.c.feed_id)


def find_exact_many(session: Session, probes: Sequence[ExactKeys], *, since: datetime) -> KeyHits:
    """Earlier items sharing an exact key with any of `probes`, in one query: the same guid
    in the same feed, the same link anywhere, the same title key within the dedup window
    (first seen since `since`: a generic headline recurs over the years)."""
    hits = KeyHits()
    guids = sorted({(p.feed_id, p.guid) for p in probes})
    links = sorted({p.link for p in probes if p.link is not None})
    titles = sorted({p.title for p in probes if p.title is not None})
    parts = []
    if guids:
        parts.append(_same_guids(session, guids))
    if links:
        by_link = _ITEMS.c.link.in_(links)
        parts.append(select(literal("links"), *_KEY_COLUMNS, _ITEMS.c.link).where(by_link))
    if titles:
        by_title = _ITEMS.c.title_key.in_(titles), _ITEMS.c.first_seen >= since
        parts.append(select(literal("titles"), *_KEY_COLUMNS, _ITEMS.c.title_key).where(*by_title))
    if not parts:
        return hits
    query = union_all(*parts).subquery()
    ordered = select(query).order_by(query.c.id)
    for kind, item_id, story_id, decision, feed_id, value in session.connection().execute(ordered):
        hit = ExactHit(int(item_id), story_id, str(decision), kind == "guids", kind[:-1])
        hits.offer(kind, (int(feed_id), value) if kind == "guids" else value, hit)
    return hits


def _same_guids(session: Session, guids: list[tuple[int, str]]) -> Select[Any]:
    """Items with one of `guids` (feed id, guid) pairs, found through the unique index on
    both, by a statement whose shape does not depend on how many pairs there are (so
    SQLAlchemy caches one, not one per batch)."""
    columns = (literal("guids"), *_KEY_COLUMNS, _ITEMS.c.guid)
    if is_postgres(session):
        return select(*columns).where(tuple_(_ITEMS.c.feed_id, _ITEMS.c.guid).in_(guids))
    # SQLite reads a row-value IN list by scanning the table; a join on the pairs uses the index
    pairs = func.json_each(bindparam("guid_pairs", json.dumps(guids))).table_valued("value")
    on = and_(
        _ITEMS.c.feed_id == func.json_extract(pairs.c.value, "$[0]"),
        _ITEMS.c.guid == func.json_extract(pairs.c.value, "$[1]"),
    )
    return select(*columns).select_from(pairs.join(_ITEMS, on))


def find_exact(
    session: Session, feed_id: int, entry: Entry, title_key: str, *, since: datetime
) -> ExactHit | None:
    """An earlier item with the same guid in this feed, or the same link or title anywhere
    (`find_exact_many` for one entry)."""
    keys = ExactKeys.of(feed_id, entry, title_key)
    return find_exact_many(session, [keys], since=since).first(keys)


def item_values(
    *,
    feed_id: int,
    entry: Entry,
    title_key: str,
    decision: str,
    reasons: Sequence[str],
    story_id: int | None,
    fingerprint: str,
    now: datetime,
    vector: bytes | None = None,
) -> dict[str, Any]:
    """An item row, every string storable and every key bounded."""
    return {
        "feed_id": feed_id,
        "guid": bounded_key(entry.guid),
        "link": bounded_key(entry.link),
        "title_key": bounded_key(title_key),
        "title": storable(entry.title),
        "text": storable(entry.text),
        "language": storable(entry.language),
        "published": entry.published,
        "first_seen": now,
        "decision": decision,
        "story_id": story_id,
        "reasons": storable(json.dumps(list(reasons), ensure_ascii=False)),
        "fingerprint": storable(fingerprint),
        "vector": vector or None,
        "outlet": storable(entry.outlet),
    }


def insert_item(session: Session, row: dict[str, Any]) -> int:
    """Insert one item (an `item_values` row) now; its id."""
    # a Core insert: the ORM's unit of work costs more than the rest of a decision
    return int(session.connection().execute(_INSERT_ITEM, row).scalar_one())


def reserve_item_ids(session: Session, count: int) -> list[int]:
    """`count` item ids no other row will take, in one query: the sequence's next values
    on PostgreSQL; on SQLite those after the largest, which hold while this transaction
    writes (SQLite has one writer, and the cycle's transaction has written already)."""
    if count <= 0:
        return []
    if is_postgres(session):
        sequence = func.pg_get_serial_sequence(_ITEMS.name, "id")
        reserve = select(func.nextval(sequence)).select_from(func.generate_series(1, count))
        return [int(i) for i in session.connection().execute(reserve).scalars()]
    largest = session.connection().execute(select(func.max(_ITEMS.c.id))).scalar_one()
    return list(range((largest or 0) + 1, (largest or 0) + 1 + count))


class ItemBatch:
    """Items decided together, written with one executemany when the batch is done.

    Ids are reserved up front (`reserve_item_ids`), so an item's id is known as soon as it
    is decided; and an item added here is an exact-key hit for the entries after it, as it
    would be had it been inserted at once (`hits`).
    """

    def __init__(self, ids: Iterable[int]) -> None:
        self._ids = iter(ids)
        self._rows: list[dict[str, Any]] = []
        self.hits = KeyHits()

    def __len__(self) -> int:
        return len(self._rows)

    def add(self, values: dict[str, Any]) -> int:
        """Queue one item (an `item_values` row); its reserved id."""
        row = {**values, "id": next(self._ids)}
        item_id: int = row["id"]
        self._rows.append(row)
        story_id, decision = row["story_id"], row["decision"]
        guid = (row["feed_id"], row["guid"])
        self.hits.offer("guids", guid, ExactHit(item_id, story_id, decision, True, "guid"))
        self.hits.offer("links", row["link"], ExactHit(item_id, story_id, decision, False, "link"))
        title = ExactHit(item_id, story_id, decision, False, "title")
        self.hits.offer("titles", row["title_key"], title)
        return item_id

    def write(self, session: Session) -> None:
        """Insert the queued items (one executemany) and forget them."""
        if self._rows:
            session.connection().execute(insert(_ITEMS), self._rows)
        self._rows = []


@dataclass(frozen=True, slots=True)
class StoryItemRow:
    """An item of a story, as the decision core's story index needs it."""

    item_id: int
    story_id: int
    fingerprint: str
    vector: bytes | None
    published: datetime


def story_items_since(session: Session, *, after_id: int, since: datetime) -> list[StoryItemRow]:
    """Items of stories first seen since `since` and stored after item `after_id`."""
    rows = session.connection().execute(
        select(
            _ITEMS.c.id,
            _ITEMS.c.story_id,
            _ITEMS.c.fingerprint,
            _ITEMS.c.vector,
            func.coalesce(_ITEMS.c.published, _ITEMS.c.first_seen),
        )
        .where(
            _ITEMS.c.id > after_id,
            _ITEMS.c.first_seen >= since,
            _ITEMS.c.story_id.is_not(None),
            _ITEMS.c.fingerprint != "",
        )
        .order_by(_ITEMS.c.id)
    )
    return [StoryItemRow(int(r[0]), int(r[1]), r[2], r[3], r[4]) for r in rows]


def add_story(
    session: Session,
    entry: Entry,
    *,
    summary: str,
    alerted: bool,
    now: datetime,
    topics: Sequence[str] = (),
    follows: int | None = None,
) -> tuple[int, int]:
    """A new story and, when it alerts, one delivery per active subscriber: pending, or held
    for a digest chat's next digest.

    The story keeps the entry's outlet (Google News `<source>`) and the earlier story it
    follows up (`follows`, the verdict's): its alerts reply to that story's alerts.
    Both are written in the caller's transaction: the outbox. Returns (story id, deliveries).
    """
    story_id = int(
        session.connection()
        .execute(
            _INSERT_STORY,
            {
                "created_at": now,
                "title": storable(entry.title),
                "link": storable(entry.link),
                "feed_name": storable(entry.feed_name),
                "language": storable(entry.language),
                "published": entry.published,
                "summary": storable(summary),
                "alerted": alerted,
                "topics": ",".join(topics),
                "outlet": storable(entry.outlet),
                "follows_id": follows,
            },
        )
        .scalar_one()
    )
    if not alerted:
        return story_id, 0
    result = session.connection().execute(_INSERT_DELIVERIES, {"story_id": story_id, "now": now})
    return story_id, max(result.rowcount or 0, 0)
