"""What an alert needs besides its story: where it sits in a saga (the earlier alert a
follow-up replies to, or a mute that stops it), a chat's "Not news?" answers and muted
stories, a story's coverage, and the outbox of coverage edits. Sync, short sessions.

Edits are an outbox of their own on the sent delivery rows: a row whose story gained
duplicate items since the message was rendered (`item count > Delivery.outlets_shown`) is
due once `EditPolicy.settle` has passed since it was sent and its last edit, and at most
`EditPolicy.max_edits` times. A row is leased for editing (`lease_owner`/`lease_until`, the
state stays `sent`); after the edit (or after finding the message would not change)
`outlets_shown` takes the count the edit rendered. A process that dies mid-edit leaves a
lease that expires: the row is edited again with the same text, which Telegram answers
"message is not modified" and the row is settled without counting an edit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, func, or_, update
from sqlalchemy import select as sql_select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot.storage.errors import StorageConflict
from bot.storage.models import Delivery, Feed, Feedback, Item, Story, StoryMute, Subscriber

SAGA_DEPTH = 8  # earlier stories followed back at most
FOLLOW_WAIT = timedelta(minutes=10)  # a follow-up waits this long for its story's alert
FEEDBACK = ("irrelevant", "known")


@dataclass(frozen=True, slots=True)
class Thread:
    """Where one delivery sits in its story's saga, for its chat."""

    muted: bool  # the chat muted this story or one it follows up
    reply_to: int | None  # the chat's alert of the nearest earlier story of the saga
    wait_for: int | None  # that alert's story, when the alert is still on its way
    young: bool  # the delivery is recent enough to wait for it (`FOLLOW_WAIT`)
    language: str  # the chat's
    timezone: str  # the chat's (IANA)
    follows_title: str | None  # the title of the story it follows up, None when none


def _saga(session: Session, story_id: int) -> tuple[Story | None, list[Story]]:
    """The story and the earlier stories it follows up, nearest first."""
    story = session.get(Story, story_id)
    chain: list[Story] = []
    seen = {story_id}
    current = story
    while current is not None and current.follows_id is not None and len(chain) < SAGA_DEPTH:
        if current.follows_id in seen:
            break
        seen.add(current.follows_id)
        current = session.get(Story, current.follows_id)
        if current is not None:
            chain.append(current)
    return story, chain


def thread_of(engine: Engine, delivery_id: int, *, now: datetime) -> Thread:
    """The saga context of a delivery: mute, the alert to reply to, whether to wait for it."""
    with Session(engine) as session:
        delivery = session.get(Delivery, delivery_id)
        if delivery is None:
            return Thread(False, None, None, False, "en", "UTC", None)
        subscriber = session.get(Subscriber, delivery.subscriber_id)
        language = subscriber.language if subscriber is not None else "en"
        timezone = subscriber.timezone if subscriber is not None else "UTC"
        _story, chain = _saga(session, delivery.story_id)
        saga_ids = [delivery.story_id, *(s.id for s in chain if s.id is not None)]
        muted = session.exec(
            select(func.count())
            .select_from(StoryMute)
            .where(
                col(StoryMute.subscriber_id) == delivery.subscriber_id,
                col(StoryMute.story_id).in_(saga_ids),
            )
        ).one()
        follows_title = chain[0].title if chain else None
        earlier = {
            row.story_id: row
            for row in session.exec(
                select(Delivery).where(
                    col(Delivery.subscriber_id) == delivery.subscriber_id,
                    col(Delivery.story_id).in_(saga_ids[1:]),
                )
            ).all()
        }
    reply_to: int | None = None
    wait_for: int | None = None
    for story in chain:
        row = earlier.get(story.id or 0)
        if row is None:
            continue
        if row.state == "sent" and row.message_id is not None:
            reply_to = row.message_id
            break
        if row.state in ("pending", "sending"):
            wait_for = story.id
            break
    young = now - delivery.created_at < FOLLOW_WAIT
    return Thread(bool(muted), reply_to, wait_for, young, language, timezone, follows_title)


def _subscriber(session: Session, chat_id: int, thread_id: int) -> Subscriber | None:
    return session.exec(
        select(Subscriber).where(Subscriber.chat_id == chat_id, Subscriber.thread_id == thread_id)
    ).first()


def chat_language(engine: Engine, chat_id: int, thread_id: int = 0) -> str | None:
    """The language a subscribed chat chose (or was given), None for a chat never seen."""
    with Session(engine) as session:
        row = _subscriber(session, chat_id, thread_id) or _subscriber(session, chat_id, 0)
        return row.language if row is not None else None


def mute(engine: Engine, chat_id: int, thread_id: int, story_id: int) -> bool:
    """The chat (topic) mutes a story and its follow-ups; False when it already had, or the
    chat is not a subscriber, or the story does not exist."""
    with Session(engine) as session:
        row = _subscriber(session, chat_id, thread_id)
        if row is None or row.id is None or session.get(Story, story_id) is None:
            return False
        if session.get(StoryMute, (row.id, story_id)) is not None:
            return False
        session.add(StoryMute(subscriber_id=row.id, story_id=story_id))
        try:
            session.commit()
        except StorageConflict:  # pressed twice at once
            return False
        return True


def unmute(engine: Engine, chat_id: int, thread_id: int, story_id: int) -> bool:
    """The chat (topic) unmutes a story it muted; False when it had not muted it."""
    with Session(engine) as session:
        row = _subscriber(session, chat_id, thread_id)
        if row is None or row.id is None:
            return False
        gone = session.execute(
            delete(StoryMute).where(
                col(StoryMute.subscriber_id) == row.id, col(StoryMute.story_id) == story_id
            )
        )
        session.commit()
        return bool(gone.rowcount)  # type: ignore[attr-defined]


def record_feedback(engine: Engine, chat_id: int, story_id: int, verdict: str) -> bool:
    """A chat's "Not news?" answer about a story, with the story's first item; a second
    answer from the chat replaces the first. False for an unknown story or verdict."""
    if verdict not in FEEDBACK:
        return False
    with Session(engine) as session:
        if session.get(Story, story_id) is None:
            return False
        item_id = session.exec(
            select(Item.id)
            .where(col(Item.story_id) == story_id, col(Item.decision).in_(["new", "stale"]))
            .order_by(col(Item.id))
        ).first()
        row = session.exec(
            select(Feedback).where(Feedback.story_id == story_id, Feedback.chat_id == chat_id)
        ).first()
        if row is None:
            row = Feedback(story_id=story_id, item_id=item_id, chat_id=chat_id, verdict=verdict)
        else:
            row.verdict, row.item_id = verdict, item_id
        session.add(row)
        try:
            session.commit()
        except StorageConflict:  # the same chat answered twice at once: one answer stands
            return True
        return True


@dataclass(frozen=True, slots=True)
class Coverage:
    """One item of a story, for "All coverage"."""

    title: str
    outlet: str
    link: str
    language: str
    when: datetime  # published, else first seen


def coverage(engine: Engine, story_id: int, limit: int = 30) -> list[Coverage]:
    """The story's items (the first report and every duplicate), oldest first."""
    with Session(engine) as session:
        rows = session.execute(
            sql_select(
                col(Item.title),
                col(Item.outlet),
                col(Feed.name),
                col(Item.link),
                col(Item.language),
                col(Item.published),
                col(Item.first_seen),
            )
            .join(Feed, col(Feed.id) == col(Item.feed_id))
            .where(
                col(Item.story_id) == story_id,
                col(Item.decision).in_(["new", "stale", "duplicate"]),
            )
            .order_by(func.coalesce(col(Item.published), col(Item.first_seen)), col(Item.id))
            .limit(limit)
        ).all()
    return [
        Coverage(title, outlet or feed, link, language, published or seen)
        for title, outlet, feed, link, language, published, seen in rows
    ]


# -- the outbox of coverage edits -----------------------------------------------------------


@dataclass(frozen=True)
class EditPolicy:
    max_edits: int = 3  # edits of one alert at most
    settle: float = 60.0  # seconds after a send or an edit before the next edit
    lease_seconds: float = 30.0
    batch: int = 20  # rows claimed at once
    horizon: float = 2 * 86_400.0  # seconds: older alerts, and older coverage, are left be


@dataclass(frozen=True, slots=True)
class EditJob:
    delivery_id: int
    story_id: int
    subscriber_id: int
    chat_id: int
    message_id: int
    outlets_shown: int  # duplicate items the sent message was rendered with
    previews: bool = True  # the chat's link preview choice, kept by the edit


def claim_edits(
    engine: Engine, *, owner: str, now: datetime, policy: EditPolicy | None = None
) -> list[EditJob]:
    """Lease sent alerts whose story gained coverage since they were rendered.

    Only stories that gained an item within `policy.horizon` are looked at (through the
    index on an item's first sighting), so a round costs what recent coverage costs, not
    what the whole history of sent alerts does."""
    policy = policy or EditPolicy()
    settled = now - timedelta(seconds=policy.settle)
    since = now - timedelta(seconds=policy.horizon)
    recent = (
        select(Item.story_id)
        .where(col(Item.decision) == "duplicate", col(Item.first_seen) >= since)
        .distinct()
    )
    # each such story's duplicates counted once, not once per alert
    counts = (
        sql_select(col(Item.story_id).label("story_id"), func.count().label("duplicates"))
        .where(col(Item.decision) == "duplicate", col(Item.story_id).in_(recent))
        .group_by(col(Item.story_id))
        .subquery()
    )
    muted = select(StoryMute.story_id).where(
        col(StoryMute.subscriber_id) == col(Delivery.subscriber_id)
    )
    pick = (
        select(Delivery.id)
        .join(Subscriber, col(Subscriber.id) == col(Delivery.subscriber_id))
        .join(counts, counts.c.story_id == col(Delivery.story_id))
        .where(
            col(Delivery.state) == "sent",
            col(Delivery.message_id).is_not(None),
            col(Delivery.sent_at) >= since,
            col(Delivery.edits) < policy.max_edits,
            col(Delivery.sent_at) <= settled,
            col(Delivery.next_attempt_at) <= now,
            or_(col(Delivery.lease_until).is_(None), col(Delivery.lease_until) < now),
            col(Subscriber.active).is_(True),
            col(Delivery.story_id).not_in(muted),
            counts.c.duplicates > col(Delivery.outlets_shown),
        )
        .order_by(col(Delivery.sent_at), col(Delivery.id))
        .limit(policy.batch)
        .with_for_update(skip_locked=True, of=Delivery)
    )
    with Session(engine) as session:
        rows = session.execute(
            update(Delivery)
            .where(
                col(Delivery.id).in_(pick.scalar_subquery()),
                or_(col(Delivery.lease_until).is_(None), col(Delivery.lease_until) < now),
            )
            .values(lease_owner=owner, lease_until=now + timedelta(seconds=policy.lease_seconds))
            .returning(
                col(Delivery.id),
                col(Delivery.story_id),
                col(Delivery.subscriber_id),
                col(Delivery.message_id),
                col(Delivery.outlets_shown),
            )
        ).all()
        chats = (
            {
                sid: (chat_id, previews)
                for sid, chat_id, previews in session.execute(
                    select(Subscriber.id, Subscriber.chat_id, Subscriber.link_previews).where(
                        col(Subscriber.id).in_([r[2] for r in rows])
                    )
                ).all()
            }
            if rows
            else {}
        )
        session.commit()
    jobs = [
        EditJob(d, s, sub, chats[sub][0], int(m), shown, bool(chats[sub][1]))
        for d, s, sub, m, shown in rows
        if m is not None
    ]
    return sorted(jobs, key=lambda j: j.delivery_id)


def finish_edit(
    engine: Engine,
    delivery_id: int,
    *,
    owner: str,
    outlets_shown: int,
    edited: bool,
    now: datetime,
    policy: EditPolicy | None = None,
    give_up: bool = False,
) -> bool:
    """Settle an edit: the count the message now shows, an edit counted when one was made,
    the lease released. `give_up`: the message cannot be edited any more."""
    policy = policy or EditPolicy()
    values: dict[str, object] = {
        "outlets_shown": outlets_shown,
        "lease_owner": None,
        "lease_until": None,
        "next_attempt_at": now + timedelta(seconds=policy.settle),
    }
    if edited:
        values["edits"] = Delivery.edits + 1
    if give_up:
        values["edits"] = policy.max_edits
    with Session(engine) as session:
        result = session.execute(
            update(Delivery)
            .where(
                and_(
                    col(Delivery.id) == delivery_id,
                    col(Delivery.lease_owner) == owner,
                    col(Delivery.state) == "sent",
                )
            )
            .values(**values)
        )
        session.commit()
        return bool(result.rowcount)  # type: ignore[attr-defined]


def release_edit(engine: Engine, delivery_id: int, *, owner: str, at: datetime) -> None:
    """Try again at `at` (flood control, a network error): the lease goes, nothing counted."""
    with Session(engine) as session:
        session.execute(
            update(Delivery)
            .where(col(Delivery.id) == delivery_id, col(Delivery.lease_owner) == owner)
            .values(lease_owner=None, lease_until=None, next_attempt_at=at)
        )
        session.commit()
