"""Who receives alerts: subscribe, unsubscribe, deactivate, migrate. Sync, one transaction each.

A subscriber is a chat plus a forum topic (`thread_id`, 0 for none). Subscribing twice or
unsubscribing twice changes nothing and says so. Turning a subscriber off also skips its
pending deliveries in the same transaction, so the outbox never sends to a chat that left.
Every subscriber is a real chat: the console of a bot run without a token is no subscriber
(it follows the alerted stories through a cursor, bot/delivery/console.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot.storage.errors import StorageConflict
from bot.storage.models import Delivery, Subscriber, utcnow


@dataclass(frozen=True, slots=True)
class Chat:
    """Where a command came from, or where alerts go."""

    chat_id: int
    thread_id: int = 0
    chat_type: str = "private"


def _find(session: Session, chat_id: int, thread_id: int) -> Subscriber | None:
    query = select(Subscriber).where(
        Subscriber.chat_id == chat_id, Subscriber.thread_id == thread_id
    )
    return session.exec(query).first()


def _skip_pending(session: Session, subscriber_id: int, reason: str) -> None:
    """Unsent rows are skipped: pending ones, and those held for the chat's next digest."""
    session.execute(
        update(Delivery)
        .where(
            col(Delivery.subscriber_id) == subscriber_id,
            col(Delivery.state).in_(["pending", "held"]),
        )
        .values(state="skipped", last_error=reason[:500])
    )


def subscribe(engine: Engine, chat: Chat, *, now: datetime | None = None) -> bool:
    """Activate `chat`; True if this call turned it on, False if it already was."""
    now = now or utcnow()
    for _ in range(2):  # a concurrent insert of the same chat loses the race once, then finds it
        with Session(engine) as session:
            row = _find(session, chat.chat_id, chat.thread_id)
            if row is not None and row.active:
                return False
            if row is None:
                row = Subscriber(
                    chat_id=chat.chat_id,
                    thread_id=chat.thread_id,
                    chat_type=chat.chat_type,
                    created_at=now,
                    updated_at=now,
                )
            else:
                row.active, row.deactivated_reason, row.updated_at = True, None, now
                row.chat_type = chat.chat_type
            session.add(row)
            try:
                session.commit()
            except StorageConflict:
                session.rollback()
                continue
            return True
    return False


def unsubscribe(
    engine: Engine, chat_id: int, thread_id: int = 0, *, now: datetime | None = None
) -> bool:
    """Deactivate the chat (topic); True if it was active."""
    with Session(engine) as session:
        row = _find(session, chat_id, thread_id)
        if row is None or not row.active:
            return False
        _turn_off(session, row, "unsubscribed", now or utcnow())
        session.commit()
        return True


def _turn_off(session: Session, row: Subscriber, reason: str, now: datetime) -> None:
    row.active, row.deactivated_reason, row.updated_at = False, reason[:500], now
    session.add(row)
    assert row.id is not None
    _skip_pending(session, row.id, f"subscriber inactive: {reason}")


def is_active(engine: Engine, chat_id: int, thread_id: int = 0) -> bool:
    with Session(engine) as session:
        row = _find(session, chat_id, thread_id)
        return bool(row is not None and row.active)


def deactivate(
    session: Session, subscriber_id: int, reason: str, *, now: datetime | None = None
) -> None:
    """Turn a subscriber off inside the caller's transaction (Forbidden, chat gone)."""
    row = session.get(Subscriber, subscriber_id)
    if row is not None and row.active:
        _turn_off(session, row, reason, now or utcnow())


def deactivate_chat(engine: Engine, chat_id: int, reason: str) -> int:
    """Turn off every topic of a chat (the bot was blocked or removed); how many were on."""
    with Session(engine) as session:
        rows = session.exec(
            select(Subscriber).where(
                Subscriber.chat_id == chat_id, col(Subscriber.active).is_(True)
            )
        ).all()
        now = utcnow()
        for row in rows:
            _turn_off(session, row, reason, now)
        session.commit()
        return len(rows)


def migrate(engine: Engine, old_chat_id: int, new_chat_id: int) -> int:
    """A group became a supergroup: move its subscribers to the new id; how many moved.

    When the new id is already subscribed (same topic), the two rows merge into that one:
    the old row's unsent deliveries move to it, except for stories it already has a row
    for, which are skipped, so each story reaches the chat once. The old row is turned off.
    """
    moved = 0
    with Session(engine) as session:
        now = utcnow()
        for row in session.exec(select(Subscriber).where(Subscriber.chat_id == old_chat_id)).all():
            assert row.id is not None
            existing = _find(session, new_chat_id, row.thread_id)
            if existing is None:
                row.chat_id, row.chat_type, row.updated_at = new_chat_id, "supergroup", now
                session.add(row)
                moved += 1
                continue
            assert existing.id is not None
            _merge_deliveries(
                session, row.id, existing.id if existing.active else None, new_chat_id
            )
            if row.active:
                _turn_off(session, row, f"migrated to {new_chat_id}", now)
        session.commit()
    return moved


def _merge_deliveries(session: Session, old_id: int, new_id: int | None, new_chat: int) -> None:
    """Unsent rows of subscriber `old_id` go to `new_id`, skipped where it has the story
    already (all of them when the new chat's subscriber is off: `new_id` None)."""
    unsent = col(Delivery.state).in_(["pending", "sending"])
    skip = col(Delivery.subscriber_id) == old_id
    if new_id is not None:
        taken = select(Delivery.story_id).where(col(Delivery.subscriber_id) == new_id)
        skip = and_(skip, col(Delivery.story_id).in_(taken))
    reason = f"merged into chat {new_chat}"
    session.execute(
        update(Delivery)
        .where(skip, unsent)
        .values(state="skipped", last_error=reason, lease_owner=None, lease_until=None)
    )
    if new_id is not None:
        session.execute(
            update(Delivery)
            .where(col(Delivery.subscriber_id) == old_id, unsent)
            .values(subscriber_id=new_id)
        )
