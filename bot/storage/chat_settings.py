"""A chat's settings as /settings shows and changes them (issue 9). Sync, one transaction each.

The settings are columns of the chat's Subscriber row (topics, delivery, quiet hours, time
zone, silent, link previews). A chat that changes a setting before it subscribes keeps it on
an inactive row, as a language chosen early is kept (bot/storage/languages.py), so it holds
when the chat subscribes. Changing how or when digests come (mode, period, hour, time zone)
clears `next_digest_at`: the digest job starts the chat's next period from its new choice.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bot.storage.errors import StorageConflict
from bot.storage.models import Subscriber, utcnow
from bot.storage.subscribers import Chat

NOT_SUBSCRIBED = "settings chosen before subscribing"
_RESCHEDULE = frozenset({"delivery_mode", "digest_hours", "digest_at", "timezone"})


@dataclass(frozen=True, slots=True)
class ChatSettings:
    """What /settings shows: the defaults are a new chat's."""

    subscribed: bool = False
    language: str = "en"
    timezone: str = "UTC"
    topics: str = ""
    delivery_mode: str = "instant"
    digest_hours: int = 6
    digest_at: int = 480
    quiet_from: int | None = None
    quiet_to: int | None = None
    silent: bool = False
    link_previews: bool = True


CHOICES = tuple(f.name for f in fields(ChatSettings) if f.name not in ("subscribed", "language"))


def find(session: Session, chat: Chat) -> Subscriber | None:
    query = select(Subscriber).where(
        Subscriber.chat_id == chat.chat_id, Subscriber.thread_id == chat.thread_id
    )
    return session.exec(query).first()


def _view(row: Subscriber | None) -> ChatSettings:
    if row is None:
        return ChatSettings()
    return ChatSettings(
        subscribed=row.active,
        language=row.language,
        **{name: getattr(row, name) for name in CHOICES},
    )


def read(engine: Engine, chat: Chat) -> ChatSettings:
    with Session(engine) as session:
        return _view(find(session, chat))


def change(
    engine: Engine, chat: Chat, *, now: datetime | None = None, **values: Any
) -> ChatSettings:
    """Set some of the chat's settings (names of `CHOICES`); the settings after."""
    unknown = set(values) - set(CHOICES)
    if unknown:
        raise ValueError(f"not a chat setting: {', '.join(sorted(unknown))}")
    return keep(engine, chat, reason=NOT_SUBSCRIBED, now=now, **values)


def keep(
    engine: Engine, chat: Chat, *, reason: str, now: datetime | None = None, **values: Any
) -> ChatSettings:
    """Store columns of the chat's Subscriber row, on an inactive row (`reason`) for a chat
    not subscribed yet; the settings after."""
    now = now or utcnow()
    for _ in range(2):  # a concurrent first insert of the same chat loses once, then finds it
        with Session(engine) as session:
            row = find(session, chat)
            if row is None:
                row = Subscriber(
                    chat_id=chat.chat_id,
                    thread_id=chat.thread_id,
                    chat_type=chat.chat_type,
                    active=False,
                    deactivated_reason=reason,
                    created_at=now,
                )
            moved = any(getattr(row, k) != v for k, v in values.items() if k in _RESCHEDULE)
            for name, value in values.items():
                setattr(row, name, value)
            if moved:
                row.next_digest_at = None
            row.updated_at = now
            session.add(row)
            try:
                session.commit()
            except StorageConflict:
                session.rollback()
                continue
            session.refresh(row)
            return _view(row)
    raise StorageConflict("the chat's row kept changing under us")
