"""The delivery outbox: claim due rows under a lease, then record what became of each send.

States: pending → sending (claimed, leased to one process) → sent | failed | skipped,
or back to pending (retry later, released at shutdown, or recovered after a crash).
A digest chat's row is `held` instead (written so, or set aside at its claim), then
`digested` once its digest folds it in (bot/storage/digests.py). At the claim, the chat's
choices may also skip a row (topics, muted story) or put it back to pending until the
chat's quiet hours end (bot/delivery/choices.py).

Claiming is one UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED) … RETURNING, so
several processes on PostgreSQL never claim the same row; on SQLite the statement holds
the database's write lock, which gives the same guarantee. A process renews the leases of
its rows while it works. A row left `sending` by a process that died is the one ambiguity:
the request may or may not have reached Telegram. Policy: at least once. The row returns
to `pending` (its attempt counted) when its lease expires, or at once when its owner was a
process on this host that no longer exists; the duplicate window is therefore at most the
requests that were on the wire when the process died (see bot/delivery/worker.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, func, update
from sqlalchemy import select as sql_select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot.delivery import choices
from bot.storage import leased
from bot.storage.models import Delivery, Story, StoryMute, Subscriber, utcnow
from bot.storage.subscribers import deactivate

_ERROR_CHARS = 500


@dataclass(frozen=True, slots=True)
class Claimed:
    """A delivery this process holds the lease on, with where to send it."""

    delivery_id: int
    story_id: int
    subscriber_id: int
    chat_id: int
    thread_id: int
    chat_type: str
    attempts: int  # completed attempts before this one
    timeouts: int = 0  # earlier sends Telegram did not answer (they may have been delivered)
    # the chat's choices for this send (bot/delivery/choices.py)
    silent: bool = False  # no notification sound
    previews: bool = True  # link preview under the alert
    language: str = "en"


def _due(now: datetime) -> ColumnElement[bool]:
    return and_(
        col(Delivery.state) == "pending",
        col(Delivery.next_attempt_at) <= now,
        col(Subscriber.active).is_(True),
    )


MAX_ROUNDS = 8  # claims in one transaction while the chats' choices set rows aside
_Row = tuple[int, int, int, int, int]  # delivery, story, subscriber, attempts, timeouts


def claim(
    engine: Engine,
    *,
    owner: str,
    limit: int,
    lease_seconds: float,
    now: datetime | None = None,
) -> list[Claimed]:
    """Lease up to `limit` due deliveries, oldest due first
    and, among those, in the stories' publication order (the order they are returned in).

    Each chat's choices are applied in the same transaction (bot/delivery/choices.py): a row
    whose story the chat does not want is skipped, a digest chat's row is held for its next
    digest, a row in the chat's quiet hours waits until they end; only rows to send now are
    returned, with the chat's silent and preview choices.
    """
    if limit <= 0:
        return []
    now = now or utcnow()
    claimed: list[tuple[datetime, Claimed]] = []
    with Session(engine) as session:
        for _ in range(MAX_ROUNDS):
            want = limit - len(claimed)
            rows = _lease(session, owner, want, lease_seconds, now)
            claimed += _apply_choices(session, owner, rows, now)
            if len(rows) < want or len(claimed) >= limit:
                break
        session.commit()
    claimed.sort(key=lambda pair: (pair[0], pair[1].story_id, pair[1].delivery_id))
    return [job for _, job in claimed]


def _lease(
    session: Session, owner: str, limit: int, lease_seconds: float, now: datetime
) -> list[_Row]:
    published = func.coalesce(col(Story.published), col(Story.created_at))
    pick = (
        select(Delivery.id)
        .join(Subscriber, col(Subscriber.id) == col(Delivery.subscriber_id))
        .join(Story, col(Story.id) == col(Delivery.story_id))
        .where(_due(now))
        .order_by(col(Delivery.next_attempt_at), published, col(Delivery.id))
        .limit(limit)
        .with_for_update(skip_locked=True, of=Delivery)
    )
    rows = session.execute(
        update(Delivery)
        .where(col(Delivery.id).in_(pick.scalar_subquery()), col(Delivery.state) == "pending")
        .values(
            state="sending",
            lease_owner=owner,
            lease_until=now + timedelta(seconds=lease_seconds),
        )
        .returning(
            col(Delivery.id),
            col(Delivery.story_id),
            col(Delivery.subscriber_id),
            col(Delivery.attempts),
            col(Delivery.timeouts),
        )
    ).all()
    return [(int(r[0]), int(r[1]), int(r[2]), int(r[3]), int(r[4])) for r in rows]


def _apply_choices(
    session: Session, owner: str, rows: Sequence[_Row], now: datetime
) -> list[tuple[datetime, Claimed]]:
    """Settle the rows the chats' choices set aside; the rest, to send now."""
    if not rows:
        return []
    chats = {
        r.id: r
        for r in session.exec(
            select(Subscriber).where(col(Subscriber.id).in_({row[2] for row in rows}))
        ).all()
    }
    stories = {
        int(r[0]): (r[1] or "", r[2], r[3] or r[4])
        for r in session.execute(
            sql_select(
                col(Story.id),
                col(Story.topics),
                col(Story.follows_id),
                col(Story.published),
                col(Story.created_at),
            ).where(col(Story.id).in_({row[1] for row in rows}))
        ).all()
    }
    muted: dict[int, set[int]] = {}
    for subscriber_id, story_id in session.execute(
        select(StoryMute.subscriber_id, StoryMute.story_id).where(
            col(StoryMute.subscriber_id).in_(list(chats))
        )
    ).all():
        muted.setdefault(int(subscriber_id), set()).add(int(story_id))
    follows = _follows(session, stories) if muted else {}
    out: list[tuple[datetime, Claimed]] = []
    held: list[int] = []
    skipped: dict[str, list[int]] = {}
    deferred: dict[datetime, list[int]] = {}
    for delivery_id, story_id, subscriber_id, attempts, timeouts in rows:
        chat = chats[subscriber_id]
        topics, follows_id, published = stories.get(story_id, ("", None, now))
        choice = choices_of(chat)
        decision = choices.triage(
            choice,
            choices.StoryFacts(story_id, topics, follows_id),
            now,
            muted=muted.get(subscriber_id, ()),
            follows=follows,
        )
        if isinstance(decision, choices.Skip):
            skipped.setdefault(decision.reason, []).append(delivery_id)
        elif isinstance(decision, choices.Hold):
            held.append(delivery_id)
        elif isinstance(decision, choices.Defer):
            deferred.setdefault(decision.until, []).append(delivery_id)
        else:
            job = Claimed(
                delivery_id, story_id, subscriber_id, chat.chat_id, chat.thread_id,
                chat.chat_type, attempts, timeouts, silent=decision.silent,
                previews=decision.previews, language=chat.language,
            )  # fmt: skip
            out.append((published, job))
    for reason, ids in skipped.items():
        _set_aside(session, owner, ids, state="skipped", last_error=reason)
    _set_aside(session, owner, held, state="held")
    for until, ids in deferred.items():
        _set_aside(session, owner, ids, state="pending", next_attempt_at=until)
    return out


def _set_aside(session: Session, owner: str, ids: list[int], **values: object) -> None:
    """Claimed rows not sent now: their new state, the lease released, no attempt counted."""
    if ids:
        session.execute(
            update(Delivery)
            .where(col(Delivery.id).in_(ids), col(Delivery.lease_owner) == owner)
            .values(**values, lease_owner=None, lease_until=None)
        )


def _follows(
    session: Session, stories: dict[int, tuple[str, int | None, datetime]]
) -> dict[int, int | None]:
    """story → the story it follows up, for the stories given and their sagas' elders."""
    follows: dict[int, int | None] = {sid: facts[1] for sid, facts in stories.items()}
    for _ in range(choices.MAX_FOLLOWS):
        missing = {f for f in follows.values() if f is not None and f not in follows}
        if not missing:
            break
        for story_id, follows_id in session.execute(
            select(Story.id, Story.follows_id).where(col(Story.id).in_(missing))
        ).all():
            follows[int(story_id)] = follows_id
        follows.update({m: follows.get(m) for m in missing})
    return follows


def choices_of(chat: Subscriber) -> choices.Choices:
    """The delivery choices stored on a subscriber row."""
    return choices.Choices(
        timezone=chat.timezone,
        topics=chat.topics,
        delivery_mode=chat.delivery_mode,
        digest_hours=chat.digest_hours,
        digest_at=chat.digest_at,
        quiet_from=chat.quiet_from,
        quiet_to=chat.quiet_to,
        silent=chat.silent,
        link_previews=chat.link_previews,
    )


def _mine(delivery_id: int, owner: str) -> ColumnElement[bool]:
    return and_(
        col(Delivery.id) == delivery_id,
        col(Delivery.state) == "sending",
        col(Delivery.lease_owner) == owner,
    )


def mark_sent(
    engine: Engine,
    delivery_id: int,
    *,
    message_id: int,
    now: datetime | None = None,
    outlets_shown: int = 0,
    reply_to: int | None = None,
) -> None:
    """Sent, with Telegram's message id. Recorded even if the lease was lost meanwhile.
    `outlets_shown`: the story's duplicate items the message was rendered with (coverage
    edits, bot/storage/alerts.py, start from there); `reply_to`: the chat's earlier alert
    it was sent in reply to (a follow-up)."""
    with Session(engine) as session:
        session.execute(
            update(Delivery)
            .where(col(Delivery.id) == delivery_id)
            .values(
                state="sent",
                message_id=message_id,
                sent_at=now or utcnow(),
                last_error=None,
                outlets_shown=outlets_shown,
                reply_to=reply_to,
                attempts=Delivery.attempts + 1,
                lease_owner=None,
                lease_until=None,
            )
        )
        session.commit()


def _settle(
    session: Session, delivery_id: int, owner: str, *, attempt: bool, **values: object
) -> bool:
    """Give a claimed row its outcome and release the lease, if `owner` still holds it."""
    result = session.execute(
        update(Delivery)
        .where(_mine(delivery_id, owner))
        .values(
            **values,
            attempts=Delivery.attempts + (1 if attempt else 0),
            lease_owner=None,
            lease_until=None,
        )
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def retry_later(
    engine: Engine,
    delivery_id: int,
    *,
    owner: str,
    at: datetime,
    error: str,
    count_attempt: bool = True,
    timed_out: bool = False,
) -> bool:
    """Back to pending until `at`. A 429 does not count as an attempt; other errors do.

    `timed_out`: Telegram did not answer, so the send may have been delivered; counted in
    `timeouts`, which bounds how often such a row is sent again (bot/delivery/worker.py).
    """
    with Session(engine) as session:
        settled = _settle(
            session,
            delivery_id,
            owner,
            attempt=count_attempt,
            state="pending",
            next_attempt_at=at,
            last_error=error[:_ERROR_CHARS],
            timeouts=Delivery.timeouts + (1 if timed_out else 0),
        )
        session.commit()
        return settled


def mark_failed(engine: Engine, delivery_id: int, *, owner: str, error: str) -> bool:
    """Permanently failed (Telegram refused this message, or attempts ran out)."""
    with Session(engine) as session:
        settled = _settle(
            session,
            delivery_id,
            owner,
            attempt=True,
            state="failed",
            last_error=error[:_ERROR_CHARS],
        )
        session.commit()
        return settled


def mark_gone(
    engine: Engine, delivery_id: int, *, owner: str, subscriber_id: int, reason: str
) -> None:
    """The chat is gone for us (blocked, deactivated, kicked): skip and turn the subscriber off."""
    with Session(engine) as session:
        _settle(
            session,
            delivery_id,
            owner,
            attempt=True,
            state="skipped",
            last_error=reason[:_ERROR_CHARS],
        )
        deactivate(session, subscriber_id, reason)
        session.commit()


def release(engine: Engine, delivery_ids: Iterable[int], *, owner: str) -> int:
    """Give back rows never sent (shutdown): pending again, no attempt counted."""
    return leased.release(engine, Delivery, delivery_ids, owner=owner)


def renew(
    engine: Engine,
    delivery_ids: Iterable[int],
    *,
    owner: str,
    lease_seconds: float,
    now: datetime | None = None,
) -> int:
    """Extend this process's leases on the rows it is still working on; how many."""
    return leased.renew(
        engine, Delivery, delivery_ids, owner=owner, lease_seconds=lease_seconds, now=now
    )


def recover(
    engine: Engine,
    *,
    me: str,
    max_attempts: int,
    busy: Iterable[int] = (),
    now: datetime | None = None,
    is_dead: Callable[[str], bool] | None = None,
) -> int:
    """Return interrupted rows to pending (attempt counted; the send may be repeated).

    Interrupted: `sending` with an expired lease, or owned by a dead local process; never
    a row in `busy` (this process is still working on it).
    """
    note = "interrupted mid-send (owner died or lease expired); outcome unknown"
    return leased.recover(
        engine, Delivery, me=me, max_attempts=max_attempts, note=note, busy=busy, now=now,
        is_dead=is_dead,
    )  # fmt: skip


def state_of(engine: Engine, delivery_id: int) -> str | None:
    with Session(engine) as session:
        return session.exec(select(Delivery.state).where(col(Delivery.id) == delivery_id)).first()
