"""The delivery outbox: claim due rows under a lease, then record what became of each send.

States: pending → sending (claimed, leased to one process) → sent | failed | skipped,
or back to pending (retry later, released at shutdown, or recovered after a crash).

Claiming is one UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED) … RETURNING, so
several processes on PostgreSQL never claim the same row; on SQLite the statement holds
the database's write lock, which gives the same guarantee. A process renews the leases of
its rows while it works. A row left `sending` by a process that died is the one ambiguity:
the request may or may not have reached Telegram. Policy: at least once. The row returns
to `pending` (its attempt counted) when its lease expires, or at once when its owner was a
process on this host that no longer exists; the duplicate window is therefore at most the
requests that were on the wire when the process died (see bot/telegram/deliver.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, or_, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot.owners import owner_is_dead
from bot.storage.models import Delivery, Subscriber, utcnow
from bot.storage.subscribers import CONSOLE, deactivate

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


def _due(now: datetime, console: bool) -> ColumnElement[bool]:
    kind = col(Subscriber.chat_type) == CONSOLE if console else col(Subscriber.chat_type) != CONSOLE
    return and_(
        col(Delivery.state) == "pending",
        col(Delivery.next_attempt_at) <= now,
        col(Subscriber.active).is_(True),
        kind,
    )


def claim(
    engine: Engine,
    *,
    owner: str,
    limit: int,
    lease_seconds: float,
    console: bool = False,
    now: datetime | None = None,
) -> list[Claimed]:
    """Lease up to `limit` due deliveries (oldest first) for Telegram, or for the console."""
    if limit <= 0:
        return []
    now = now or utcnow()
    pick = (
        select(Delivery.id)
        .join(Subscriber, col(Subscriber.id) == col(Delivery.subscriber_id))
        .where(_due(now, console))
        .order_by(col(Delivery.next_attempt_at), col(Delivery.id))
        .limit(limit)
        .with_for_update(skip_locked=True, of=Delivery)
    )
    with Session(engine) as session:
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
        where = (
            session.execute(
                select(
                    Subscriber.id, Subscriber.chat_id, Subscriber.thread_id, Subscriber.chat_type
                ).where(col(Subscriber.id).in_([r[2] for r in rows]))
            ).all()
            if rows
            else []
        )
        session.commit()
    chats = {sid: (chat_id, thread_id, chat_type) for sid, chat_id, thread_id, chat_type in where}
    claimed = [
        Claimed(delivery_id, story_id, subscriber_id, *chats[subscriber_id], attempts, timeouts)
        for delivery_id, story_id, subscriber_id, attempts, timeouts in rows
    ]
    return sorted(claimed, key=lambda c: c.delivery_id)


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
) -> None:
    """Sent, with Telegram's message id. Recorded even if the lease was lost meanwhile.
    `outlets_shown`: the story's duplicate items the message was rendered with (coverage
    edits, bot/storage/alerts.py, start from there)."""
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
    `timeouts`, which bounds how often such a row is sent again (bot/telegram/deliver.py).
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
    ids = list(delivery_ids)
    if not ids:
        return 0
    with Session(engine) as session:
        result = session.execute(
            update(Delivery)
            .where(
                col(Delivery.id).in_(ids),
                col(Delivery.state) == "sending",
                col(Delivery.lease_owner) == owner,
            )
            .values(state="pending", lease_owner=None, lease_until=None)
        )
        session.commit()
        return int(result.rowcount)  # type: ignore[attr-defined]


def renew(
    engine: Engine,
    delivery_ids: Iterable[int],
    *,
    owner: str,
    lease_seconds: float,
    now: datetime | None = None,
) -> int:
    """Extend this process's leases on the rows it is still working on; how many."""
    ids = list(delivery_ids)
    if not ids:
        return 0
    now = now or utcnow()
    with Session(engine) as session:
        result = session.execute(
            update(Delivery)
            .where(
                col(Delivery.id).in_(ids),
                col(Delivery.state) == "sending",
                col(Delivery.lease_owner) == owner,
            )
            .values(lease_until=now + timedelta(seconds=lease_seconds))
        )
        session.commit()
        return int(result.rowcount)  # type: ignore[attr-defined]


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
    now = now or utcnow()
    dead = is_dead or (lambda owner: owner_is_dead(owner, me=me))
    working = list(busy)
    with Session(engine) as session:
        owners = session.exec(
            select(Delivery.lease_owner).where(col(Delivery.state) == "sending").distinct()
        ).all()
        gone = [o for o in owners if o is not None and o != me and dead(o)]
        stale = and_(
            col(Delivery.state) == "sending",
            or_(
                col(Delivery.lease_until) < now,
                col(Delivery.lease_until).is_(None),
                col(Delivery.lease_owner).in_(gone),
            ),
            col(Delivery.id).not_in(working),
        )
        note = "interrupted mid-send (owner died or lease expired); outcome unknown"
        exhausted = session.execute(
            update(Delivery)
            .where(stale, col(Delivery.attempts) + 1 >= max_attempts)
            .values(
                state="failed",
                last_error=note,
                attempts=Delivery.attempts + 1,
                lease_owner=None,
                lease_until=None,
            )
        ).rowcount  # type: ignore[attr-defined]
        revived = session.execute(
            update(Delivery)
            .where(stale)
            .values(
                state="pending",
                last_error=note,
                attempts=Delivery.attempts + 1,
                next_attempt_at=now,
                lease_owner=None,
                lease_until=None,
            )
        ).rowcount  # type: ignore[attr-defined]
        session.commit()
        return int(exhausted) + int(revived)


def state_of(engine: Engine, delivery_id: int) -> str | None:
    with Session(engine) as session:
        return session.exec(select(Delivery.state).where(col(Delivery.id) == delivery_id)).first()
