"""Digests in the database: a digest chat's held alerts folded into one Digest row per period,
then that row delivered like an alert (an outbox row with a lease), part by part.

Folding (`fold_due`), one transaction per chat: the chat's `next_digest_at` moves on by a
compare-and-set, so of two replicas folding at once one wins; its held deliveries become
`digested` with the new row's id (a unique (subscriber, period_end) guards the rest). A
period without a held alert writes nothing, and nothing is sent. An instant chat that still
has held alerts (it left digests) gets them in one last digest at once. Rows the chat no
longer wants (topics changed, story muted) are skipped rather than folded.

Delivery: `claim` leases due rows (pending, due) like bot/storage/outbox.py; the sender
stores the parts as rendered the first time (`save_parts`), then records each part the
moment Telegram accepts it (`part_sent`), so a retry, a restart or another replica resumes
after the last part recorded; a part can go out twice only when it is on the wire as a
process dies (at least once, as for alerts), or when Telegram did not answer it: `timeouts`
counts the unanswered sends of the next part (`retry_later(timed_out=True)`; `part_sent`
sets it back to 0), so the sender sends it again at most once, across restarts too.
`recover` returns rows whose lease lapsed, or whose owner was a process on this host that
died, to pending.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, exists, or_, update
from sqlalchemy import select as sql_select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot.delivery import choices
from bot.storage import leased
from bot.storage.errors import StorageConflict
from bot.storage.models import Delivery, Digest, Story, StoryMute, Subscriber, utcnow
from bot.storage.outbox import choices_of
from bot.storage.subscribers import deactivate

_ERROR_CHARS = 500


@dataclass(frozen=True, slots=True)
class Folded:
    """One fold pass: digests written, and chats whose period had nothing to send."""

    digests: tuple[int, ...] = ()
    empty: int = 0


def _due_chats(now: datetime) -> ColumnElement[bool]:
    digest_mode = col(Subscriber.delivery_mode).in_([choices.DIGEST, choices.DAILY])
    has_held = exists().where(
        col(Delivery.subscriber_id) == col(Subscriber.id), col(Delivery.state) == "held"
    )
    return and_(
        col(Subscriber.active).is_(True),
        or_(
            and_(
                digest_mode,
                or_(
                    col(Subscriber.next_digest_at).is_(None),
                    col(Subscriber.next_digest_at) <= now,
                ),
            ),
            and_(~digest_mode, has_held),
        ),
    )


def fold_due(engine: Engine, *, now: datetime | None = None) -> Folded:
    """Fold the held alerts of every chat whose digest is due into a Digest row each."""
    now = now or utcnow()
    with Session(engine) as session:
        due = session.exec(select(Subscriber.id).where(_due_chats(now))).all()
    written: list[int] = []
    empty = 0
    for subscriber_id in due:
        assert subscriber_id is not None
        digest_id = _fold_chat(engine, subscriber_id, now)
        if digest_id is None:
            empty += 1
        elif digest_id > 0:
            written.append(digest_id)
    return Folded(tuple(written), empty)


def _fold_chat(engine: Engine, subscriber_id: int, now: datetime) -> int | None:
    """The digest written for this chat; None for an empty period; 0 when another replica
    folded it first, or there was nothing due."""
    with Session(engine) as session:
        chat = session.get(Subscriber, subscriber_id)
        if chat is None or not chat.active:
            return 0
        choice = choices_of(chat)
        was = chat.next_digest_at
        if choice.digests:
            if was is None:  # a chat new to digests: its first period starts now
                _move_on(session, chat, was, choices.next_digest(choice, now))
                session.commit()
                return 0
            if was > now:
                return 0
            period_end, follow = was, choices.next_digest(choice, now)
        else:  # left digests with alerts still held: one last digest, now
            period_end, follow = now, None
        if not _move_on(session, chat, was, follow):
            session.rollback()
            return 0  # another replica moved it on first
        held = _wanted_held(session, chat, choice)
        if not held:
            session.commit()
            return None
        start = min(
            choices.previous_digest(choice, period_end) if choice.digests else period_end,
            *(created for _, created in held),
        )
        digest = Digest(
            subscriber_id=subscriber_id,
            period_start=start,
            period_end=period_end,
            next_attempt_at=choices.quiet_until(choice, now) or now,
            created_at=now,
        )
        session.add(digest)
        try:
            session.flush()
        except StorageConflict:
            session.rollback()
            return 0
        assert digest.id is not None
        session.execute(
            update(Delivery)
            .where(col(Delivery.id).in_([d for d, _ in held]), col(Delivery.state) == "held")
            .values(state="digested", digest_id=digest.id)
        )
        session.commit()
        return digest.id


def _move_on(session: Session, chat: Subscriber, was: datetime | None, to: datetime | None) -> bool:
    """Compare-and-set the chat's next digest time: True if this transaction moved it."""
    same = (
        col(Subscriber.next_digest_at).is_(None)
        if was is None
        else col(Subscriber.next_digest_at) == was
    )
    result = session.execute(
        update(Subscriber)
        .where(col(Subscriber.id) == chat.id, same)
        .values(next_digest_at=to)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def _wanted_held(
    session: Session, chat: Subscriber, choice: choices.Choices
) -> list[tuple[int, datetime]]:
    """The chat's held deliveries (id, created) it still wants; the others are skipped."""
    rows = session.execute(
        sql_select(
            col(Delivery.id),
            col(Delivery.created_at),
            col(Story.id),
            col(Story.topics),
            col(Story.follows_id),
        )
        .join(Story, col(Story.id) == col(Delivery.story_id))
        .where(col(Delivery.subscriber_id) == chat.id, col(Delivery.state) == "held")
        .order_by(col(Delivery.id))
    ).all()
    muted = set(
        session.exec(select(StoryMute.story_id).where(StoryMute.subscriber_id == chat.id)).all()
    )
    follows = {int(r[2]): r[4] for r in rows}
    wanted: list[tuple[int, datetime]] = []
    unwanted: list[int] = []
    for delivery_id, created, story_id, topics, follows_id in rows:
        story = choices.StoryFacts(int(story_id), topics or "", follows_id)
        if choices.is_muted(story, muted, follows) or not choices.wanted(choice, story.topics):
            unwanted.append(int(delivery_id))
        else:
            wanted.append((int(delivery_id), created))
    if unwanted:
        session.execute(
            update(Delivery)
            .where(col(Delivery.id).in_(unwanted))
            .values(state="skipped", last_error="no longer among the chat's choices")
        )
    return wanted


# -- delivering a digest ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClaimedDigest:
    """A digest this process holds the lease on, with where and how to send it."""

    digest_id: int
    subscriber_id: int
    chat_id: int
    thread_id: int
    chat_type: str
    language: str
    timezone: str
    silent: bool
    period_start: datetime
    period_end: datetime
    parts: tuple[str, ...]  # as stored; empty until first rendered
    parts_sent: int
    attempts: int
    timeouts: int  # unanswered sends of part number parts_sent + 1


def claim(
    engine: Engine,
    *,
    owner: str,
    limit: int,
    lease_seconds: float,
    now: datetime | None = None,
) -> list[ClaimedDigest]:
    """Lease up to `limit` due digests, oldest due first."""
    if limit <= 0:
        return []
    now = now or utcnow()
    pick = (
        select(Digest.id)
        .join(Subscriber, col(Subscriber.id) == col(Digest.subscriber_id))
        .where(
            col(Digest.state) == "pending",
            col(Digest.next_attempt_at) <= now,
            col(Subscriber.active).is_(True),
        )
        .order_by(col(Digest.next_attempt_at), col(Digest.id))
        .limit(limit)
        .with_for_update(skip_locked=True, of=Digest)
    )
    with Session(engine) as session:
        ids = session.execute(
            update(Digest)
            .where(col(Digest.id).in_(pick.scalar_subquery()), col(Digest.state) == "pending")
            .values(
                state="sending",
                lease_owner=owner,
                lease_until=now + timedelta(seconds=lease_seconds),
            )
            .returning(col(Digest.id))
        ).all()
        rows = (
            session.exec(
                select(Digest, Subscriber)
                .join(Subscriber, col(Subscriber.id) == col(Digest.subscriber_id))
                .where(col(Digest.id).in_([i[0] for i in ids]))
                .order_by(col(Digest.next_attempt_at), col(Digest.id))
            ).all()
            if ids
            else []
        )
        claimed = [
            ClaimedDigest(
                digest_id=digest.id or 0,
                subscriber_id=chat.id or 0,
                chat_id=chat.chat_id,
                thread_id=chat.thread_id,
                chat_type=chat.chat_type,
                language=chat.language,
                timezone=chat.timezone,
                silent=chat.silent,
                period_start=digest.period_start,
                period_end=digest.period_end,
                parts=tuple(json.loads(digest.parts)) if digest.parts else (),
                parts_sent=digest.parts_sent,
                attempts=digest.attempts,
                timeouts=digest.timeouts,
            )
            for digest, chat in rows
        ]
        session.commit()
    return claimed


@dataclass(frozen=True, slots=True)
class DigestStory:
    """A story of a digest: what its line shows."""

    story_id: int
    title: str
    link: str
    outlet: str
    published: datetime
    summary: str
    topics: str


def stories_of(engine: Engine, digest_id: int) -> list[DigestStory]:
    """The digest's stories, newest first."""
    with Session(engine) as session:
        stories = session.exec(
            select(Story)
            .join(Delivery, col(Delivery.story_id) == col(Story.id))
            .where(col(Delivery.digest_id) == digest_id)
        ).all()
    out = [
        DigestStory(
            story_id=s.id or 0,
            title=s.title,
            link=s.link,
            outlet=s.outlet or s.feed_name,
            published=s.published or s.created_at,
            summary=s.summary,
            topics=s.topics,
        )
        for s in stories
    ]
    out.sort(key=lambda s: (s.published, s.story_id), reverse=True)
    return out


def _mine(digest_id: int, owner: str) -> ColumnElement[bool]:
    return and_(
        col(Digest.id) == digest_id,
        col(Digest.state) == "sending",
        col(Digest.lease_owner) == owner,
    )


def _update(engine: Engine, where: ColumnElement[bool], **values: object) -> bool:
    with Session(engine) as session:
        result = session.execute(update(Digest).where(where).values(**values))
        session.commit()
        return bool(result.rowcount)  # type: ignore[attr-defined]


def save_parts(engine: Engine, digest_id: int, parts: Sequence[str], *, owner: str) -> bool:
    """Keep the digest's parts as rendered now: every later try sends these."""
    return _update(
        engine,
        and_(_mine(digest_id, owner), col(Digest.parts) == ""),
        parts=json.dumps(list(parts), ensure_ascii=False),
    )


def part_sent(engine: Engine, digest_id: int, *, parts_sent: int) -> None:
    """Part number `parts_sent` (1-based) is done with (accepted, refused, or left
    unanswered as often as allowed): recorded even if the lease was lost meanwhile, and never
    moved backwards. The next part starts without unanswered sends."""
    _update(
        engine,
        and_(col(Digest.id) == digest_id, col(Digest.parts_sent) < parts_sent),
        parts_sent=parts_sent,
        timeouts=0,
    )


def mark_sent(engine: Engine, digest_id: int, *, now: datetime | None = None) -> None:
    _update(
        engine,
        col(Digest.id) == digest_id,
        state="sent",
        sent_at=now or utcnow(),
        last_error=None,
        attempts=Digest.attempts + 1,
        lease_owner=None,
        lease_until=None,
    )


def retry_later(
    engine: Engine,
    digest_id: int,
    *,
    owner: str,
    at: datetime,
    error: str,
    count_attempt: bool,
    timed_out: bool = False,
) -> bool:
    """Back to pending until `at`. `timed_out`: Telegram did not answer the next part, which
    may have been delivered; counted in `timeouts`, which bounds how often it is sent again."""
    return _update(
        engine,
        _mine(digest_id, owner),
        state="pending",
        next_attempt_at=at,
        last_error=error[:_ERROR_CHARS],
        attempts=Digest.attempts + (1 if count_attempt else 0),
        timeouts=Digest.timeouts + (1 if timed_out else 0),
        lease_owner=None,
        lease_until=None,
    )


def mark_failed(engine: Engine, digest_id: int, *, owner: str, error: str) -> bool:
    return _update(
        engine,
        _mine(digest_id, owner),
        state="failed",
        last_error=error[:_ERROR_CHARS],
        attempts=Digest.attempts + 1,
        lease_owner=None,
        lease_until=None,
    )


def mark_gone(
    engine: Engine, digest_id: int, *, owner: str, subscriber_id: int, reason: str
) -> None:
    """The chat is gone: the digest fails and the subscriber is turned off."""
    with Session(engine) as session:
        session.execute(
            update(Digest)
            .where(_mine(digest_id, owner))
            .values(state="failed", last_error=reason[:_ERROR_CHARS], lease_owner=None,
                    lease_until=None)
        )  # fmt: skip
        deactivate(session, subscriber_id, reason)
        session.commit()


def release(engine: Engine, digest_ids: Iterable[int], *, owner: str) -> None:
    """Give back digests not being sent (shutdown): pending again, no attempt counted."""
    leased.release(engine, Digest, digest_ids, owner=owner)


def renew(
    engine: Engine,
    digest_ids: Iterable[int],
    *,
    owner: str,
    lease_seconds: float,
    now: datetime | None = None,
) -> None:
    leased.renew(engine, Digest, digest_ids, owner=owner, lease_seconds=lease_seconds, now=now)


def recover(
    engine: Engine,
    *,
    me: str,
    max_attempts: int,
    busy: Iterable[int] = (),
    now: datetime | None = None,
    is_dead: Callable[[str], bool] | None = None,
) -> int:
    """Return interrupted digests to pending (their parts already recorded stay sent)."""
    note = "interrupted mid-send (owner died or lease expired)"
    return leased.recover(
        engine, Digest, me=me, max_attempts=max_attempts, note=note, busy=busy, now=now,
        is_dead=is_dead,
    )  # fmt: skip
