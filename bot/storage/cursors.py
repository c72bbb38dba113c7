"""A named reader's place in the alerted stories: the last story id it has shown. Sync,
short sessions.

The console (bot/delivery/console.py) is such a reader: it has no chat, so no outbox rows;
it shows every alerted story once, in order, and moves its cursor after showing them.

    start    the row, at the newest story, if it is missing: a first reader shows what
             is new from then on, not the whole history
    pending  the alerted stories after the position (bounded), with the position read
    advance  a compare-and-set from the position read to the batch's end: of two
             processes that showed the same batch, one moves the cursor, the other
             learns it lost and reads again
    drop     the row gone (the bot now runs with a token): a later start is fresh

Story ids are the order, and they commit in that order: stories are written only by a
cycle's decide-and-store transaction, which holds the deciding lock until it commits
(`items.lock_for_decisions`: an advisory transaction lock on PostgreSQL, the one writer on
SQLite), so no story with a lower id can appear after a reader has moved past it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, update
from sqlalchemy import select as sql_select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from bot.storage.errors import StorageConflict
from bot.storage.models import Story, StoryCursor, utcnow


@dataclass(frozen=True, slots=True)
class Due:
    """An alerted story a reader has not shown yet."""

    story_id: int
    title: str
    published: datetime  # its publication time, else when it was stored
    follows_title: str | None  # the title of the story it follows up, None when none


@dataclass(frozen=True, slots=True)
class Batch:
    """The stories after `position`, oldest id first; `end`: the last one's id (the
    position to advance to), `position` when there are none."""

    position: int
    stories: tuple[Due, ...]

    @property
    def end(self) -> int:
        return self.stories[-1].story_id if self.stories else self.position


def _position(session: Session, name: str) -> int | None:
    return session.exec(select(StoryCursor.position).where(StoryCursor.name == name)).first()


def start(engine: Engine, name: str, *, now: datetime | None = None) -> int:
    """The cursor's position; a missing cursor is created at the newest story's id."""
    for _ in range(2):  # a concurrent start inserts first once: then its row is read
        with Session(engine) as session:
            position = _position(session, name)
            if position is not None:
                return position
            newest = session.exec(select(func.max(Story.id))).one()
            position = int(newest or 0)
            session.add(StoryCursor(name=name, position=position, updated_at=now or utcnow()))
            try:
                session.commit()
            except StorageConflict:
                session.rollback()
                continue
            return position
    raise StorageConflict(f"cursor {name!r} could not be created")


def pending(engine: Engine, name: str, limit: int) -> Batch:
    """Up to `limit` alerted stories after the cursor, in id order; none without a cursor."""
    with Session(engine) as session:
        position = _position(session, name)
        if position is None:
            return Batch(0, ())
        earlier = aliased(Story)
        rows = session.execute(
            sql_select(
                col(Story.id),
                col(Story.title),
                func.coalesce(col(Story.published), col(Story.created_at)),
                col(earlier.title),
            )
            .outerjoin(earlier, col(earlier.id) == col(Story.follows_id))
            .where(col(Story.id) > position, col(Story.alerted).is_(True))
            .order_by(col(Story.id))
            .limit(max(0, limit))
        ).all()
    stories = tuple(
        Due(int(story_id), title, published, follows)
        for story_id, title, published, follows in rows
    )
    return Batch(position, stories)


def advance(
    engine: Engine, name: str, from_position: int, to_position: int, *, now: datetime | None = None
) -> bool:
    """Move the cursor from `from_position` to `to_position`; False when it was not there
    (another process moved it, or it was dropped): read again."""
    with Session(engine) as session:
        result = session.execute(
            update(StoryCursor)
            .where(col(StoryCursor.name) == name, col(StoryCursor.position) == from_position)
            .values(position=to_position, updated_at=now or utcnow())
        )
        session.commit()
        return bool(result.rowcount)  # type: ignore[attr-defined]


def drop(engine: Engine, name: str) -> bool:
    """Forget the cursor; True if there was one."""
    with Session(engine) as session:
        row = session.get(StoryCursor, name)
        if row is None:
            return False
        session.delete(row)
        session.commit()
        return True
